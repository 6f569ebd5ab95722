#include "tests/support/swtpm.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <utility>

#include "tests/support/ports.hpp"

namespace edge::test {
namespace {

constexpr auto kStartTimeout = std::chrono::seconds(10);

bool portFree(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    return ok;
}

/// A port P with P+1 free too (swtpm's control port must be P+1).
int freePortPair() {
    for (int attempt = 0; attempt < 50; ++attempt) {
        const int port = freePort();
        if (port < 65535 && portFree(port + 1)) return port;
    }
    FAIL("no free loopback port pair for swtpm");
    return 0;
}

}  // namespace

Swtpm::Swtpm(std::filesystem::path state_dir) : dir_(std::move(state_dir)) {
    std::filesystem::create_directories(dir_);
    for (int attempt = 0; attempt < 3; ++attempt) {
        port_ = freePortPair();
        if (launch()) return;
        process_.kill();
    }
    FAIL("swtpm did not start; log:\n"
         << readFile(dir_ / "swtpm.log") << readFile(dir_ / "swtpm.out"));
}

Swtpm::~Swtpm() { stop(); }

std::string Swtpm::tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }

bool Swtpm::launch() {
    const std::string server = "type=tcp,port=" + std::to_string(port_) + ",bindaddr=127.0.0.1";
    const std::string ctrl = "type=tcp,port=" + std::to_string(port_ + 1) + ",bindaddr=127.0.0.1";
    process_ = Process::spawn(
        {"swtpm", "socket", "--tpm2", "--server", server, "--ctrl", ctrl, "--tpmstate",
         "dir=" + dir_.string(), "--flags", "not-need-init,startup-clear", "--log",
         "file=" + (dir_ / "swtpm.log").string() + ",level=1"},
        dir_ / "swtpm.out");
    waitUntil([&] { return !process_.running() || portAccepts(port_); }, kStartTimeout,
              std::chrono::milliseconds(10));
    return process_.running() && portAccepts(port_);
}

void Swtpm::stop() {
    if (!process_.running()) return;
    process_.signal(SIGTERM);
    if (!process_.wait(std::chrono::seconds(10))) process_.kill();
}

void Swtpm::kill() { process_.kill(); }

void Swtpm::start() {
    if (process_.running()) return;
    if (portFree(port_) && portFree(port_ + 1) && launch()) return;
    for (int attempt = 0; attempt < 3; ++attempt) {
        process_.kill();
        port_ = freePortPair();
        if (launch()) return;
    }
    FAIL("swtpm did not restart; log:\n"
         << readFile(dir_ / "swtpm.log") << readFile(dir_ / "swtpm.out"));
}

CommandResult runTpm2Tool(const std::string& tcti, std::vector<std::string> argv) {
    argv.insert(argv.begin(), {"env", "TPM2TOOLS_TCTI=" + tcti});
    return runCommand(argv);
}

}  // namespace edge::test
