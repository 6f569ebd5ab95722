#include "security/stream_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "security/crypto.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace edge::security {
namespace {

std::string pattern(std::size_t size) {
    std::string out(size, '\0');
    std::uint32_t x = 88172645u;
    for (auto& c : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    return out;
}

struct File {
    explicit File(const std::filesystem::path& path) : fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
        REQUIRE(fd >= 0);
    }
    ~File() { ::close(fd); }
    int fd;
};

}  // namespace

TEST_CASE("StreamWriter: bytes appended in any pieces are written in order and hashed", "[security]") {
    test::TempDir tmp;
    const auto path = tmp.path() / "out";
    const auto data = pattern(3 * 4096 + 123);
    File file(path);
    std::vector<std::uint64_t> checkpoints;
    StreamWriterOptions options;
    options.chunk_size = 4096;
    options.checkpoint_bytes = 8192;
    options.on_checkpoint = [&](std::uint64_t durable) { checkpoints.push_back(durable); };
    StreamWriter writer(file.fd, path.string(), options);
    for (std::size_t at = 0; at < data.size(); at += 1000) REQUIRE(writer.append(std::string_view(data).substr(at, 1000)));
    CHECK(writer.size() == data.size());
    auto digest = writer.finish();
    REQUIRE(digest);
    CHECK(*digest == sha256Hex(data));
    CHECK(test::readFile(path) == data);
    CHECK(checkpoints == std::vector<std::uint64_t>{8192});  // every 8 KiB written
}

TEST_CASE("StreamWriter: adopt continues what an earlier run wrote, restart starts over", "[security]") {
    test::TempDir tmp;
    const auto path = tmp.path() / "out";
    const auto data = pattern(50'000);
    test::writeFile(path, data.substr(0, 20'000) + "bytes past the checkpoint");
    File file(path);
    StreamWriterOptions options;
    options.chunk_size = 4096;
    {
        StreamWriter writer(file.fd, path.string(), options);
        REQUIRE(writer.adopt(20'000));
        CHECK(writer.size() == 20'000);
        REQUIRE(writer.append(std::string_view(data).substr(20'000)));
        auto digest = writer.finish();
        REQUIRE(digest);
        CHECK(*digest == sha256Hex(data));  // the adopted prefix was hashed from the file
        CHECK(test::readFile(path) == data);
    }
    {
        // A file shorter than the checkpoint says: only what is there is adopted.
        REQUIRE(::ftruncate(file.fd, 7000) == 0);
        StreamWriter writer(file.fd, path.string(), options);
        REQUIRE(writer.adopt(20'000));
        CHECK(writer.size() == 7000);
        REQUIRE(writer.restart());
        CHECK(writer.size() == 0);
        CHECK(test::readFile(path).empty());  // a regular file is truncated
        REQUIRE(writer.append("abc"));
        auto digest = writer.finish();
        REQUIRE(digest);
        CHECK(*digest == sha256Hex("abc"));
    }
}

/// A file open read-only: every write to it fails.
struct ReadOnlyTarget {
    ReadOnlyTarget() {
        test::writeFile(path, "");
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        REQUIRE(fd >= 0);
        options.chunk_size = 4096;
    }
    test::TempDir tmp;
    std::filesystem::path path = tmp.path() / "read-only";
    int fd = -1;
    StreamWriterOptions options;
};

TEST_CASE("StreamWriter: a write error is reported with the path", "[security]") {
    ReadOnlyTarget target;
    const int fd = target.fd;
    const auto& path = target.path;
    StreamWriter writer(fd, path.string(), target.options);
    // Writes run on the writer's own thread: the error comes with the next call, at the latest
    // with finish().
    Status st = writer.append(pattern(5000));
    Result<std::string> digest = std::string();
    if (st) digest = writer.finish();
    ::close(fd);
    const Error error = st ? digest.error() : st.error();
    REQUIRE_FALSE((st && digest));
    CHECK(error.code() == SharedErrc::kIo);
    CHECK_THAT(error.what(), Catch::Contains(path.string()));
}

TEST_CASE("StreamWriter: a write error stops the appends within the ring", "[security]") {
    ReadOnlyTarget target;
    StreamWriter writer(target.fd, target.path.string(), target.options);
    Status st;
    for (int i = 0; i < 16 && st; ++i) st = writer.append(pattern(4096));
    ::close(target.fd);
    REQUIRE_FALSE(st);
    CHECK(st.error().code() == SharedErrc::kIo);
}

TEST_CASE("StreamWriter: direct writes give the same file, with an unaligned end and resume",
          "[security]") {
    // O_DIRECT where the file system takes it (ext4 here; tmpfs refuses it, then writes are
    // buffered): whole 4 KiB blocks go direct, the tail through the cache.
    test::TempDir tmp;
    const auto path = tmp.path() / "slot";
    const std::string data = pattern(3 * 8192 + 123);
    std::vector<std::uint64_t> checkpoints;
    {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        StreamWriterOptions options;
        options.chunk_size = 8192;
        options.checkpoint_bytes = 8192;
        options.direct = true;
        options.on_checkpoint = [&](std::uint64_t at) { checkpoints.push_back(at); };
        StreamWriter writer(fd, path.string(), options);
        REQUIRE(writer.append(std::string_view(data).substr(0, 1000)));
        // Less than a block: it stays staged, nothing is durable yet.
        REQUIRE(writer.checkpoint());
        CHECK(writer.size() == 1000);
        CHECK(checkpoints.empty());
        REQUIRE(writer.append(std::string_view(data).substr(1000, 20000)));
        auto digest = writer.finish();
        // Where the file system has direct I/O, the descriptor is left in that mode.
        const int probe = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
        if (probe >= 0) {
            ::close(probe);
            CHECK((::fcntl(fd, F_GETFL) & O_DIRECT) != 0);
        }
        ::close(fd);
        REQUIRE(digest);
        CHECK(*digest == sha256Hex(std::string_view(data).substr(0, 21000)));
    }
    CHECK(test::readFile(path) == data.substr(0, 21000));
    CHECK(checkpoints == std::vector<std::uint64_t>{8192, 16384});
    // Resumed after the second checkpoint, the rest appended in odd pieces.
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    StreamWriterOptions options;
    options.chunk_size = 8192;
    options.direct = true;
    StreamWriter writer(fd, path.string(), options);
    REQUIRE(writer.adopt(16384 + 1000));  // whole blocks only: the next write starts on one
    CHECK(writer.size() == 16384);
    REQUIRE(writer.append(std::string_view(data).substr(16384, 777)));
    REQUIRE(writer.append(std::string_view(data).substr(16384 + 777)));
    auto digest = writer.finish();
    ::close(fd);
    REQUIRE(digest);
    CHECK(*digest == sha256Hex(data));
    CHECK(test::readFile(path) == data);
}

}  // namespace edge::security

namespace edge::security {

TEST_CASE("StreamWriter: bytes put where prepare() says are taken in place, among copied ones",
          "[security]") {
    const bool direct = GENERATE(false, true);
    INFO("direct " << direct);
    test::TempDir tmp;
    const auto path = tmp.path() / "out";
    const std::string data = pattern(10 * 8192 + 321);
    File file(path);
    StreamWriterOptions options;
    options.chunk_size = 8192;
    options.direct = direct;
    StreamWriter writer(file.fd, path.string(), options);
    CHECK(writer.prepare(0).empty());
    std::size_t at = 0;
    int followed = 0;        // prepare() checked to continue right after the bytes in place
    int kept_blocks = 0;     // checkpoints that left a partial block staged
    for (int step = 0; at < data.size(); ++step) {
        const std::size_t want = std::min<std::size_t>(data.size() - at, step % 3 == 2 ? 1234 : 3000);
        if (step % 3 == 2) {  // a copied piece now and then
            REQUIRE(writer.append(std::string_view(data).substr(at, want)));
            at += want;
            continue;
        }
        const auto room = writer.prepare(want);
        REQUIRE_FALSE(room.empty());
        CHECK(room.size() <= want);
        // Fill the room, but hand over only part of it sometimes (a short network read).
        const std::size_t got = step % 5 == 4 ? room.size() / 2 + 1 : room.size();
        std::memcpy(room.data(), data.data() + at, got);
        REQUIRE(writer.append(std::string_view(room.data(), got)));
        at += got;
        CHECK(writer.size() == at);
        if (got < room.size()) {  // the buffer has room left: the next bytes go right after
            CHECK(writer.prepare(1).data() == room.data() + got);
            ++followed;
        }
        if (step % 4 == 1) {
            REQUIRE(writer.checkpoint());
            // Buffers start on 4 KiB; a checkpoint hands everything over (direct writes: but
            // the partial block, which moves to the start of the next buffer).
            const auto next = reinterpret_cast<std::uintptr_t>(writer.prepare(1).data());
            CHECK(next % 4096 == (direct ? at % 4096 : 0));
            if (direct && at % 4096 != 0) ++kept_blocks;
        }
    }
    CHECK(followed >= 3);
    if (direct) CHECK(kept_blocks >= 3);
    auto digest = writer.finish();
    REQUIRE(digest);
    CHECK(*digest == sha256Hex(data));
    CHECK(test::readFile(path) == data);
}

}  // namespace edge::security
