// edge_lazyfs (tests/tools/lazyfs.cpp), the file system of the OTA power-cut tests: after a power
// cut it holds what was synced and nothing else, with the ordering of ext4 mounted with
// noauto_da_alloc (file contents as of their last fsync; names and sizes as of the last journal
// commit).
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "tests/integration/lazy_fs.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;

namespace {

enum class Sync { kNone, kFsync, kFdatasync };

void write(const std::filesystem::path& path, const std::string& text, Sync sync, int flags = O_TRUNC) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    if (sync == Sync::kFsync) REQUIRE(::fsync(fd) == 0);
    if (sync == Sync::kFdatasync) REQUIRE(::fdatasync(fd) == 0);
    ::close(fd);
}

}  // namespace

TEST_CASE("edge_lazyfs: a power cut keeps what was synced and loses the rest", "[integration][lazyfs]") {
    test::TempDir tmp;
    const auto disk = tmp / "disk";
    const auto mnt = tmp / "mnt";
    std::filesystem::create_directories(disk);
    test::writeFile(disk / "old.txt", "on the disk before the mount");
    test::writeFile(disk / "cut.txt", "0123456789");
    test::LazyFs fs(disk, mnt, tmp / "log");

    CHECK(test::readFile(mnt / "old.txt") == "on the disk before the mount");
    write(mnt / "synced.txt", "synced", Sync::kFsync);
    write(mnt / "never-synced.txt", "written, never synced", Sync::kNone);
    write(mnt / "old.txt", "overwritten, never synced", Sync::kNone);
    REQUIRE(::truncate((mnt / "cut.txt").c_str(), 4) == 0);
    write(mnt / "renamed.txt", "content synced", Sync::kFsync);  // a journal commit
    // After the last commit: a rename (lost: the file keeps its old name), a directory, a file,
    // and an fdatasync of an overwrite that keeps the size (its content is kept, but it commits
    // no names).
    std::filesystem::rename(mnt / "renamed.txt", mnt / "new-name.txt");
    std::filesystem::create_directories(mnt / "dir");
    write(mnt / "dir/late.txt", "after the last sync", Sync::kNone);
    write(mnt / "synced.txt", "SYNCED", Sync::kFdatasync);
    // The programs see everything meanwhile.
    CHECK(test::readFile(mnt / "old.txt") == "overwritten, never synced");
    CHECK(std::filesystem::exists(mnt / "dir/late.txt"));

    fs.powerCut();
    // The disk as it came back (read straight from the backing directory).
    CHECK(test::readFile(disk / "synced.txt") == "SYNCED");
    // Rewritten in place (O_TRUNC) and never synced: the commit made the cut durable, not the
    // new content (ext4's zero-length file, with noauto_da_alloc).
    CHECK(test::readFile(disk / "old.txt").empty());
    // Its name was committed with the fsync of renamed.txt; its content never synced: empty, as
    // ext4 leaves a file whose data was never written back.
    CHECK(std::filesystem::exists(disk / "never-synced.txt"));
    CHECK(test::readFile(disk / "never-synced.txt").empty());
    // The size is metadata: the cut came with that commit.
    CHECK(test::readFile(disk / "cut.txt") == "0123");
    CHECK(test::readFile(disk / "renamed.txt") == "content synced");
    CHECK_FALSE(std::filesystem::exists(disk / "new-name.txt"));
    CHECK_FALSE(std::filesystem::exists(disk / "dir"));

    // A clean stop keeps everything.
    write(mnt / "unsynced-but-clean.txt", "kept", Sync::kNone);
    fs.stop();
    CHECK(test::readFile(disk / "unsynced-but-clean.txt") == "kept");
}

TEST_CASE("edge_lazyfs --torn: each unsynced page within the durable size reaches the disk or not, at random",
          "[integration][lazyfs]") {
    test::TempDir tmp;
    const auto disk = tmp / "disk";
    const auto mnt = tmp / "mnt";
    std::filesystem::create_directories(disk);
    constexpr std::size_t kPages = 64, kPage = 4096;
    test::LazyFs fs(disk, mnt, tmp / "log", 7);
    std::set<std::string> layouts;
    for (int cut = 0; cut < 3; ++cut) {
        CAPTURE(cut);
        write(mnt / "file", std::string(kPages * kPage, 'a'), Sync::kFsync);
        // Overwritten page by page (no sync), then grown by a page, and a whole new file.
        const int fd = ::open((mnt / "file").c_str(), O_WRONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        const std::string b(kPage, 'b');
        for (std::size_t p = 0; p <= kPages; ++p) {
            REQUIRE(::pwrite(fd, b.data(), b.size(), static_cast<off_t>(p * kPage)) == static_cast<ssize_t>(kPage));
        }
        ::close(fd);
        write(mnt / "unsynced-new", "never synced", Sync::kNone);

        fs.powerCut();
        // The size as of the last commit; each page whole, old or new; both kinds among 64.
        const auto got = test::readFile(disk / "file");
        REQUIRE(got.size() == kPages * kPage);
        std::string layout;
        for (std::size_t p = 0; p < kPages; ++p) {
            const auto page = got.substr(p * kPage, kPage);
            const bool old_page = page == std::string(kPage, 'a');
            CHECK((old_page || page == b));
            layout += old_page ? 'a' : 'b';
        }
        CHECK(layout.find('a') != std::string::npos);
        CHECK(layout.find('b') != std::string::npos);
        layouts.insert(layout);
        CHECK_FALSE(std::filesystem::exists(disk / "unsynced-new"));
    }
    CHECK(layouts.size() == 3);  // another tear at each cut
    CHECK_THAT(test::readFile(tmp / "log"), Catch::Contains("torn pages"));
    fs.stop();
}
