#include "tests/integration/lazy_fs.hpp"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/vfs.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "tests/integration/fleet_harness.hpp"

namespace edge::test {
namespace {

using namespace std::chrono_literals;
constexpr long kFuseSuperMagic = 0x65735546;
constexpr const char* kCanary = "lazyfs-canary";

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

LazyFs::LazyFs(std::filesystem::path backing, std::filesystem::path mountpoint, std::filesystem::path log,
               std::optional<std::uint64_t> torn_seed)
    : backing_(std::move(backing)), mountpoint_(std::move(mountpoint)), log_(std::move(log)), torn_seed_(torn_seed) {
    std::filesystem::create_directories(backing_);
    std::filesystem::create_directories(mountpoint_);
    mount();
}

LazyFs::~LazyFs() {
    if (proc_.running()) {
        proc_.signal(SIGTERM);
        if (!proc_.wait(10s)) proc_.kill();
    }
    // A tool that died leaves a dead mount ("Transport endpoint is not connected").
    struct statfs st {};
    const int rc = ::statfs(mountpoint_.c_str(), &st);
    if ((rc == 0 && st.f_type == kFuseSuperMagic) || (rc != 0 && errno == ENOTCONN)) {
        ::umount2(mountpoint_.c_str(), MNT_DETACH);
    }
}

bool LazyFs::mounted() const {
    struct statfs st {};
    return ::statfs(mountpoint_.c_str(), &st) == 0 && st.f_type == kFuseSuperMagic;
}

std::filesystem::path LazyFs::pidFile() const { return log_.string() + ".pid"; }

void LazyFs::mount() {
    std::vector<std::string> argv{binary("edge_lazyfs").string(), backing_.string(), mountpoint_.string()};
    if (torn_seed_) argv.insert(argv.end(), {"--torn", std::to_string(*torn_seed_ + static_cast<std::uint64_t>(power_cuts_))});
    proc_ = Process::spawn(argv, log_);
    const bool up = waitUntil([&] { return mounted() || !proc_.running(); }, 10s) && mounted();
    if (!up) {
        proc_.kill();
        ::umount2(mountpoint_.c_str(), MNT_DETACH);
    }
    INFO("edge_lazyfs needs /dev/fuse and the right to mount; its log: " << readFile(log_));
    REQUIRE(up);
    writeFile(pidFile(), std::to_string(proc_.pid()));
}

std::string LazyFs::powerCutCommand() const {
    return fmt::format("echo lost > {}\nkill -USR1 $(cat {})\n", (mountpoint_ / kCanary).string(), pidFile().string());
}

void LazyFs::powerCut() {
    writeFile(mountpoint_ / kCanary, "lost");
    proc_.signal(SIGUSR1);
    remountAfterPowerCut();
}

void LazyFs::remountAfterPowerCut() {
    const auto code = proc_.wait(20s);
    const auto log = readFile(log_);
    INFO("edge_lazyfs log: " << log);
    REQUIRE(code == 0);
    ++power_cuts_;
    REQUIRE(count(log, "power cut:") == static_cast<std::size_t>(power_cuts_));
    // The canary was written after the last sync: the disk must not have it.
    REQUIRE_FALSE(std::filesystem::exists(backing_ / kCanary));
    mount();
}

std::size_t LazyFs::tornPages() const {
    const auto log = readFile(log_);
    std::size_t total = 0;
    for (auto at = log.find(" torn pages"); at != std::string::npos; at = log.find(" torn pages", at + 1)) {
        const auto from = log.rfind(", ", at);
        if (from != std::string::npos) total += std::stoull(log.substr(from + 2, at - from - 2));
    }
    return total;
}

void LazyFs::stop() {
    proc_.signal(SIGTERM);
    REQUIRE(proc_.wait(20s) == 0);
    REQUIRE_FALSE(mounted());
}

}  // namespace edge::test
