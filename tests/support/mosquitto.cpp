#include "tests/support/mosquitto.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <utility>

#include "tests/support/ports.hpp"

namespace edge::test {
namespace {

constexpr const char* kMosquittoBinary = "/usr/sbin/mosquitto";  // Debian's location
constexpr auto kStartTimeout = std::chrono::seconds(10);

std::string currentUser() {
    const passwd* pw = ::getpwuid(::geteuid());
    return pw != nullptr ? pw->pw_name : "root";
}

}  // namespace

Mosquitto::Mosquitto(std::filesystem::path dir) : dir_(std::move(dir)) {
    std::filesystem::create_directories(dir_);
    // The free port may be taken before mosquitto binds it: then try another one.
    for (int attempt = 0; attempt < 3; ++attempt) {
        port_ = freePort();
        writeConfig();
        if (launch()) return;
        process_.kill();
    }
    FAIL("mosquitto did not start; log:\n"
         << readFile(dir_ / "mosquitto.out") << readFile(dir_ / "mosquitto.log"));
}

Mosquitto::~Mosquitto() { stop(); }

void Mosquitto::writeConfig() const {
    std::ofstream conf(dir_ / "mosquitto.conf", std::ios::trunc);
    conf << "listener " << port_ << " 127.0.0.1\n"
         << "allow_anonymous true\n"
         << "persistence false\n"
         // Started as root, mosquitto drops to user "mosquitto" unless told otherwise.
         << "user " << currentUser() << "\n"
         << "log_dest file " << (dir_ / "mosquitto.log").string() << "\n"
         << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
         << "connection_messages true\n";
}

bool Mosquitto::launch() {
    const std::string binary =
        ::access(kMosquittoBinary, X_OK) == 0 ? kMosquittoBinary : "mosquitto";
    process_ =
        Process::spawn({binary, "-c", (dir_ / "mosquitto.conf").string()}, dir_ / "mosquitto.out");
    waitUntil([&] { return !process_.running() || portAccepts(port_); }, kStartTimeout,
              std::chrono::milliseconds(20));
    return process_.running() && portAccepts(port_);
}

void Mosquitto::stop() {
    if (!process_.running()) return;
    process_.signal(SIGTERM);
    if (!process_.wait(std::chrono::seconds(10))) process_.kill();
}

void Mosquitto::start() {
    if (process_.running()) return;
    const bool up = launch();
    INFO("mosquitto log:\n"
         << readFile(dir_ / "mosquitto.out") << readFile(dir_ / "mosquitto.log"));
    REQUIRE(up);
}

}  // namespace edge::test
