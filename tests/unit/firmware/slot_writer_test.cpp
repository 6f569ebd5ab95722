#include "firmware/slot_writer.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "firmware/errors.hpp"
#include "security/crypto.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware {
namespace {

using test::readFile;
using test::TempDir;
using test::what;
using test::writeFile;

}  // namespace

TEST_CASE("Sha256Hasher: streaming in pieces gives sha256Hex of the whole", "[firmware]") {
    const auto data = test::imageBytes("BOOTS-OK", "hash", 100'000);
    security::Sha256Hasher hasher;
    for (std::size_t i = 0; i < data.size(); i += 7777) {
        hasher.update(std::string_view(data).substr(i, 7777));
    }
    CHECK(hasher.finishHex() == security::sha256Hex(data));
    CHECK(hasher.finishHex() == security::sha256Hex(""));  // starts over
}

TEST_CASE("installImage: a good image lands in the slot, verified, with progress", "[firmware]") {
    TempDir tmp;
    const auto img = test::makeImage(tmp.path(), "BOOTS-OK", "2.0", 100'000);
    writeFile(tmp / "slot-b", std::string(300'000, 'x'));  // an old, larger image
    std::vector<std::uint64_t> seen;
    InstallOptions options;
    options.chunk_size = 16 * 1024;
    options.active_slot = tmp / "slot-a";
    options.progress = [&](std::uint64_t done, std::uint64_t total) {
        CHECK(total == img.spec.size);
        seen.push_back(done);
    };
    auto st = installImage(img.file, tmp / "slot-b", img.spec.size, img.spec.sha256, options);
    INFO(what(st));
    REQUIRE(st);
    CHECK(readFile(tmp / "slot-b") == img.bytes);
    REQUIRE(seen.size() == 7);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
    CHECK(seen.back() == img.spec.size);
}

TEST_CASE("installImage: a wrong digest is refused, naming the image", "[firmware]") {
    TempDir tmp;
    const auto img = test::makeImage(tmp.path(), "BOOTS-OK", "2.0");
    const auto other = security::sha256Hex("something else");
    auto st = installImage(img.file, tmp / "slot-b", img.spec.size, other);
    REQUIRE_FALSE(st);
    CHECK(st.error().code() == FirmwareErrc::kDigest);
    CHECK_THAT(st.error().what(), Catch::Contains(img.file.string()) && Catch::Contains(other));
}

TEST_CASE("installImage: a source of the wrong size is refused", "[firmware]") {
    TempDir tmp;
    const auto img = test::makeImage(tmp.path(), "BOOTS-OK", "2.0", 50'000);
    SECTION("short") {
        auto st = installImage(img.file, tmp / "slot-b", img.spec.size + 1, img.spec.sha256);
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == FirmwareErrc::kSize);
        CHECK_THAT(st.error().what(),
                   Catch::Contains("ended after 50000 of its declared 50001 bytes"));
    }
    SECTION("oversized: cut off at the declared size") {
        auto st = installImage(img.file, tmp / "slot-b", img.spec.size - 1, img.spec.sha256,
                               {.chunk_size = 4096});
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == FirmwareErrc::kSize);
        CHECK_THAT(st.error().what(), Catch::Contains("larger than its declared 49999 bytes"));
        CHECK(std::filesystem::file_size(tmp / "slot-b") <= img.spec.size - 1);
    }
    SECTION("endless") {
        auto st = installImage("/dev/zero", tmp / "slot-b", 1 << 20, img.spec.sha256);
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == FirmwareErrc::kSize);
        CHECK(std::filesystem::file_size(tmp / "slot-b") <= (1u << 20));
    }
}

TEST_CASE("installImage: the active slot is never written", "[firmware]") {
    TempDir tmp;
    const auto img = test::makeImage(tmp.path(), "BOOTS-OK", "2.0");
    writeFile(tmp / "slot-a", "the running system");
    std::filesystem::create_symlink(tmp / "slot-a", tmp / "alias");
    for (const auto& target : {tmp / "slot-a", tmp / "alias", tmp / "." / "slot-a"}) {
        CAPTURE(target);
        InstallOptions options;
        options.active_slot = tmp / "slot-a";
        auto st = installImage(img.file, target, img.spec.size, img.spec.sha256, options);
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == FirmwareErrc::kInvalidArgument);
        CHECK_THAT(st.error().what(), Catch::Contains("active slot"));
        CHECK(readFile(tmp / "slot-a") == "the running system");
    }
}

TEST_CASE("installImage: unusable arguments and I/O errors name the path", "[firmware]") {
    TempDir tmp;
    const auto img = test::makeImage(tmp.path(), "BOOTS-OK", "2.0");
    auto upper = installImage(img.file, tmp / "slot-b", img.spec.size, "ABC");
    REQUIRE_FALSE(upper);
    CHECK(upper.error().code() == FirmwareErrc::kInvalidArgument);
    auto missing = installImage(tmp / "nope.img", tmp / "slot-b", img.spec.size, img.spec.sha256);
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == FirmwareErrc::kIo);
    CHECK_THAT(missing.error().what(), Catch::Contains((tmp / "nope.img").string()));
    auto no_dir = installImage(img.file, tmp / "no" / "slot-b", img.spec.size, img.spec.sha256);
    REQUIRE_FALSE(no_dir);
    CHECK_THAT(no_dir.error().what(), Catch::Contains((tmp / "no" / "slot-b").string()));
}

TEST_CASE("installImage: a multi-MiB image lands intact from a file and from a pipe",
          "[firmware]") {
    // Larger than the write-back window and the buffer ring, with a ragged last chunk: the
    // hashing thread, the buffer reuse and the early write-back all take part.
    TempDir tmp;
    const std::size_t size = (20u << 20) + 4321;
    const auto img = test::makeImage(tmp.path(), "BOOTS-OK", "3.0", size);

    SECTION("from a file, with read-back, progress once per chunk") {
        writeFile(tmp / "slot-b", std::string(30u << 20, 'x'));  // an old, larger image
        std::vector<std::uint64_t> seen;
        InstallOptions options;
        options.read_back = true;
        options.progress = [&](std::uint64_t done, std::uint64_t) { seen.push_back(done); };
        auto st = installImage(img.file, tmp / "slot-b", img.spec.size, img.spec.sha256, options);
        INFO(what(st));
        REQUIRE(st);
        CHECK(readFile(tmp / "slot-b") == img.bytes);
        CHECK(seen.size() == (size + options.chunk_size - 1) / options.chunk_size);
        CHECK(std::is_sorted(seen.begin(), seen.end()));
        CHECK(seen.back() == size);
    }
    SECTION("from a pipe written in uneven pieces, with an odd chunk size") {
        const auto fifo = tmp / "image.fifo";
        REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
        std::thread writer([&] {
            std::ofstream out(fifo, std::ios::binary);
            for (std::size_t at = 0, piece = 1000; at < size; at += piece, piece = piece * 3 % 700001 + 1) {
                out.write(img.bytes.data() + at, static_cast<std::streamsize>(std::min(piece, size - at)));
            }
        });
        auto st = installImage(fifo, tmp / "slot-b", img.spec.size, img.spec.sha256,
                               {.chunk_size = (256u << 10) + 1});
        writer.join();
        INFO(what(st));
        REQUIRE(st);
        CHECK(readFile(tmp / "slot-b") == img.bytes);
    }
    SECTION("one changed byte near the end is a digest error") {
        std::string bytes = img.bytes;
        bytes[size - 10] ^= 1;
        writeFile(tmp / "bad.img", bytes);
        auto st = installImage(tmp / "bad.img", tmp / "slot-b", img.spec.size, img.spec.sha256);
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == FirmwareErrc::kDigest);
    }
}

}  // namespace edge::firmware
