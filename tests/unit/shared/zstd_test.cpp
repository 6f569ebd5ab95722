#include <catch2/catch.hpp>

#include "security/crypto.hpp"
#include "shared/compress/zstd_file.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;

namespace {

/// Compresses with the zstd CLI (the format's reference implementation).
std::filesystem::path zstdOf(const test::TempDir& dir, const std::string& name, const std::string& content) {
    test::writeFile(dir / name, content);
    auto res = test::runCommand({"zstd", "-q", "-f", "-3", (dir / name).string(), "-o", (dir / (name + ".zst")).string()});
    INFO(res.err);
    REQUIRE(res.exit_code == 0);
    return dir / (name + ".zst");
}

std::string pattern(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + i / 977) & 0xff);
    return s;
}

}  // namespace

TEST_CASE("zstd: a compressed artifact decompresses to the declared bytes, checked") {
    test::TempDir dir;
    const auto content = pattern(3u << 20);
    const auto packed = zstdOf(dir, "model.onnx", content);
    CHECK(compress::isZstdFile(packed));
    CHECK_FALSE(compress::isZstdFile(dir / "model.onnx"));
    auto info = compress::describeZstd(packed);
    REQUIRE(info);
    CHECK(info->size == content.size());
    CHECK(info->sha256 == security::sha256Hex(content));

    const auto dest = dir / "out";
    REQUIRE(compress::decompressZstd(packed, dest, security::sha256Hex(content), content.size()));
    CHECK(test::readFile(dest) == content);
    CHECK_FALSE(std::filesystem::exists(dir / "out.tmp"));
}

TEST_CASE("zstd: a wrong digest, a wrong size, a bomb, a truncated or foreign file leave nothing behind") {
    test::TempDir dir;
    const auto content = pattern(1u << 20);
    const auto packed = zstdOf(dir, "a.bin", content);
    const auto sha = security::sha256Hex(content);
    const auto dest = dir / "out";
    auto expectRefused = [&](const std::filesystem::path& src, std::string_view digest, std::uint64_t size,
                             const std::string& mention) {
        auto st = compress::decompressZstd(src, dest, digest, size);
        REQUIRE_FALSE(st);
        CHECK_THAT(st.error().what(), Catch::Contains(mention));
        CHECK_FALSE(std::filesystem::exists(dest));
        CHECK_FALSE(std::filesystem::exists(dir / "out.tmp"));
    };
    expectRefused(packed, std::string(64, '0'), content.size(), "expected");
    expectRefused(packed, sha, content.size() + 1, "declares");
    expectRefused(packed, sha, content.size() - 1, "more than the declared");

    // 256 MiB of zeros in a few KiB: cut off at the declared size, not written out.
    const auto bomb = zstdOf(dir, "zeros", std::string(256u << 20, '\0'));
    CHECK(std::filesystem::file_size(bomb) < 64 * 1024);
    expectRefused(bomb, sha, 4096, "more than the declared");

    const auto whole = test::readFile(packed);
    test::writeFile(dir / "truncated.zst", whole.substr(0, whole.size() / 2));
    expectRefused(dir / "truncated.zst", sha, content.size(), "truncated");
    expectRefused(dir / "a.bin", sha, content.size(), "not a zstd file");
    test::writeFile(dir / "empty.zst", "");
    expectRefused(dir / "empty.zst", sha, 0, "empty");
}
