#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "shared/core/fs.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;

TEST_CASE("fs: writeFileAtomic replaces the file whole, with the mode asked") {
    test::TempDir dir;
    const auto path = dir / "f.txt";
    REQUIRE(fs::writeFileAtomic(path, "one", 0600));
    REQUIRE(fs::writeFileAtomic(path, "two", 0600));
    CHECK(*fs::readFile(path) == "two");
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    // No temporary file is left behind.
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), {}) == 1);
}

TEST_CASE("fs: resolveInside keeps outside paths inside their directory") {
    test::TempDir dir;
    std::filesystem::create_directories(dir / "a");
    CHECK(fs::resolveInside(dir.path(), "a/b.rego"));
    CHECK(fs::resolveInside(dir.path(), "../x").error().code() == SharedErrc::kPathEscape);
    CHECK(fs::resolveInside(dir.path(), "a/../../x").error().code() == SharedErrc::kPathEscape);
    CHECK(fs::resolveInside(dir.path(), "/etc/passwd").error().code() == SharedErrc::kPathEscape);
    CHECK(fs::resolveInside(dir.path(), "").error().code() == SharedErrc::kPathEscape);
    std::filesystem::create_directory_symlink("/etc", dir / "a/link");
    CHECK(fs::resolveInside(dir.path(), "a/link/passwd").error().code() == SharedErrc::kPathEscape);
}

TEST_CASE("fs: readFile refuses files over the limit") {
    test::TempDir dir;
    REQUIRE(fs::writeFileAtomic(dir / "big", std::string(100, 'x')));
    CHECK_FALSE(fs::readFile(dir / "big", 10));
    CHECK(fs::readFile(dir / "big", 100));
}
