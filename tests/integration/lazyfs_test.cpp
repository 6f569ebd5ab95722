// edge_lazyfs (tests/tools/lazyfs.cpp), the file system of the OTA power-cut test: after a power
// cut it holds what was synced and nothing else, with ext4's ordering (file contents as of their
// last fsync; names as of the last fsync of anything).
#include <catch2/catch.hpp>
#include <csignal>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/integration/fleet_harness.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;
using namespace std::chrono_literals;

namespace {

bool mounted(const std::filesystem::path& mountpoint) {
    return test::readFile("/proc/self/mounts").find(" " + mountpoint.string() + " ") != std::string::npos;
}

void writeSynced(const std::filesystem::path& path, const std::string& text, bool sync) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    if (sync) REQUIRE(::fsync(fd) == 0);
    ::close(fd);
}

}  // namespace

TEST_CASE("edge_lazyfs: a power cut keeps what was synced and loses the rest", "[integration][lazyfs]") {
    test::TempDir tmp;
    const auto disk = tmp / "disk";
    const auto mnt = tmp / "mnt";
    std::filesystem::create_directories(disk);
    std::filesystem::create_directories(mnt);
    test::writeFile(disk / "old.txt", "on the disk before the mount");
    auto fs = test::Process::spawn({test::binary("edge_lazyfs").string(), disk.string(), mnt.string()}, tmp / "log");
    INFO("edge_lazyfs needs /dev/fuse and the right to mount");
    REQUIRE(test::waitUntil([&] { return mounted(mnt); }, 10s));

    CHECK(test::readFile(mnt / "old.txt") == "on the disk before the mount");
    writeSynced(mnt / "synced.txt", "synced", true);
    writeSynced(mnt / "synced.txt.tmp", "written, never synced", false);
    writeSynced(mnt / "old.txt", "overwritten, never synced", false);
    writeSynced(mnt / "renamed.txt", "content synced", true);  // the last sync
    // After the last sync: a rename (lost: the file keeps its old name), a directory and a file.
    std::filesystem::rename(mnt / "renamed.txt", mnt / "new-name.txt");
    std::filesystem::create_directories(mnt / "dir");
    writeSynced(mnt / "dir/late.txt", "after the last sync", false);
    // What the programs see meanwhile is everything.
    CHECK(test::readFile(mnt / "old.txt") == "overwritten, never synced");
    CHECK(std::filesystem::exists(mnt / "dir/late.txt"));

    fs.signal(SIGUSR1);
    REQUIRE(fs.wait(20s) == 0);
    CHECK_FALSE(mounted(mnt));
    CHECK_THAT(test::readFile(tmp / "log"), Catch::Contains("power cut"));
    // The disk as it comes back.
    CHECK(test::readFile(disk / "synced.txt") == "synced");
    CHECK(test::readFile(disk / "old.txt") == "on the disk before the mount");
    // Its name was committed by the fsync of renamed.txt, its content never synced: empty, as
    // ext4 leaves a file whose data was never written back.
    CHECK(test::readFile(disk / "synced.txt.tmp").empty());
    CHECK(std::filesystem::exists(disk / "renamed.txt"));
    CHECK(test::readFile(disk / "renamed.txt") == "content synced");
    CHECK_FALSE(std::filesystem::exists(disk / "new-name.txt"));
    CHECK_FALSE(std::filesystem::exists(disk / "dir"));

    // A clean stop keeps everything.
    fs = test::Process::spawn({test::binary("edge_lazyfs").string(), disk.string(), mnt.string()}, tmp / "log2");
    REQUIRE(test::waitUntil([&] { return mounted(mnt); }, 10s));
    writeSynced(mnt / "unsynced-but-clean.txt", "kept", false);
    fs.signal(SIGTERM);
    REQUIRE(fs.wait(20s) == 0);
    CHECK(test::readFile(disk / "unsynced-but-clean.txt") == "kept");
    if (mounted(mnt)) ::umount2(mnt.c_str(), MNT_DETACH);
}
