#include "firmware/slot_writer.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <string>

#include "firmware/errors.hpp"
#include "security/crypto.hpp"

namespace edge::firmware {
namespace {

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    /// close() reports deferred write errors on some filesystems: check it for the slot.
    int close() {
        const int rc = ::close(fd_);
        fd_ = -1;
        return rc;
    }

private:
    int fd_;
};

std::unexpected<Error> ioError(std::string_view what, const std::filesystem::path& path) {
    return fail(FirmwareErrc::kIo,
                fmt::format("{} '{}': {}", what, path.string(), std::strerror(errno)));
}

// Same file or device: same inode, or (when either is missing) the same normalized path.
bool sameTarget(const std::filesystem::path& a, const std::filesystem::path& b) {
    std::error_code ec;
    if (std::filesystem::exists(a, ec) && std::filesystem::exists(b, ec)) {
        const bool same = std::filesystem::equivalent(a, b, ec);
        if (!ec) return same;
    }
    return std::filesystem::absolute(a, ec).lexically_normal() ==
           std::filesystem::absolute(b, ec).lexically_normal();
}

// Reads up to want bytes (fewer only at end of input).
ssize_t readFull(int fd, char* buf, std::size_t want) {
    std::size_t got = 0;
    while (got < want) {
        const ssize_t n = ::read(fd, buf + got, want - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    return static_cast<ssize_t>(got);
}

bool writeFull(int fd, const char* buf, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// Hashes the first size bytes of the slot as they are on the device.
Status verifySlot(const std::filesystem::path& slot, std::uint64_t size, std::string_view expected,
                  std::size_t chunk_size) {
    Fd fd(::open(slot.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return ioError("open for verification", slot);
    std::string buf(chunk_size, '\0');
    security::Sha256Hasher hasher;
    std::uint64_t done = 0;
    while (done < size) {
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk_size, size - done));
        const ssize_t n = readFull(fd.get(), buf.data(), want);
        if (n < 0) return ioError("read back", slot);
        if (n == 0) {
            return fail(FirmwareErrc::kSize, fmt::format("slot '{}' holds only {} of {} bytes",
                                                         slot.string(), done, size));
        }
        hasher.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
        done += static_cast<std::uint64_t>(n);
    }
    const auto digest = hasher.finishHex();
    if (digest != expected) {
        return fail(FirmwareErrc::kDigest,
                    fmt::format("slot '{}' reads back sha256 {}, expected {}", slot.string(),
                                digest, expected));
    }
    return {};
}

}  // namespace

Status installImage(const std::filesystem::path& source, const std::filesystem::path& slot,
                    std::uint64_t expected_size, std::string_view expected_sha256,
                    const InstallOptions& options) {
    if (!security::isSha256Hex(expected_sha256)) {
        return fail(FirmwareErrc::kInvalidArgument,
                    fmt::format("install '{}': expected sha256 '{}' is not 64 lowercase hex chars",
                                source.string(), expected_sha256));
    }
    if (options.chunk_size == 0) {
        return fail(FirmwareErrc::kInvalidArgument, "install: chunk_size is 0");
    }
    if (!options.active_slot.empty() && sameTarget(slot, options.active_slot)) {
        return fail(FirmwareErrc::kInvalidArgument,
                    fmt::format("refusing to write '{}': it is the active slot", slot.string()));
    }

    Fd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return ioError("open image", source);
    Fd out(::open(slot.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (out.get() < 0) return ioError("open slot", slot);
    struct stat st {};
    if (::fstat(out.get(), &st) != 0) return ioError("stat slot", slot);
    const bool regular = S_ISREG(st.st_mode);

    // Two buffers: while chunk i is written to the slot on this thread, it is hashed on a helper
    // thread (hashing and writing each take about as long), then chunk i+1 is read.
    std::string bufs[2] = {std::string(options.chunk_size, '\0'), std::string(options.chunk_size, '\0')};
    security::Sha256Hasher hasher;
    std::future<void> hashing;
    std::uint64_t written = 0;
    for (int turn = 0;; turn ^= 1) {
        std::string& buf = bufs[turn];
        // Ask for at most one byte past the declared end: enough to notice an oversized source.
        const std::uint64_t room = expected_size - written + 1;
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(options.chunk_size, room));
        const ssize_t n = readFull(in.get(), buf.data(), want);
        if (n < 0) return ioError("read image", source);
        if (n == 0) break;
        const auto got = static_cast<std::uint64_t>(n);
        if (written + got > expected_size) {
            return fail(FirmwareErrc::kSize,
                        fmt::format("image '{}' is larger than its declared {} bytes; cut off",
                                    source.string(), expected_size));
        }
        if (hashing.valid()) hashing.get();  // the other buffer's hash is done: it may be reused
        const std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
        hashing = std::async(std::launch::async, [&hasher, chunk] { hasher.update(chunk); });
        if (!writeFull(out.get(), chunk.data(), chunk.size())) {
            hashing.get();
            return ioError("write slot", slot);
        }
        written += got;
        if (options.progress) options.progress(written, expected_size);
    }
    if (hashing.valid()) hashing.get();
    if (written < expected_size) {
        return fail(FirmwareErrc::kSize,
                    fmt::format("image '{}' ended after {} of its declared {} bytes",
                                source.string(), written, expected_size));
    }
    const auto digest = hasher.finishHex();
    if (digest != expected_sha256) {
        return fail(FirmwareErrc::kDigest, fmt::format("image '{}' has sha256 {}, expected {}",
                                                       source.string(), digest, expected_sha256));
    }
    if (regular && ::ftruncate(out.get(), static_cast<off_t>(expected_size)) != 0) {
        return ioError("truncate slot", slot);
    }
    if (::fsync(out.get()) != 0) return ioError("fsync slot", slot);
    if (!options.read_back) {
        if (out.close() != 0) return ioError("close slot", slot);
        return {};
    }
    // Read back from the device, not from the page cache we just filled.
    ::posix_fadvise(out.get(), 0, 0, POSIX_FADV_DONTNEED);
    if (out.close() != 0) return ioError("close slot", slot);
    return verifySlot(slot, expected_size, expected_sha256, options.chunk_size);
}

}  // namespace edge::firmware
