#include "firmware/slot_writer.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "firmware/errors.hpp"
#include "security/crypto.hpp"
#include "security/hash_worker.hpp"

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

using security::HashWorker;

/// Starts the kernel writing the slot's dirty pages back while later chunks are still being
/// written and hashed, so that the disk works during the copy instead of only in the final
/// fsync (the page cache would otherwise hold the whole image until then: on a machine with
/// plenty of memory no background writeback starts for a few hundred MiB). Only an early
/// start: durability still comes from the fsync, which also reports any write error.
class Writeback {
public:
    explicit Writeback(int fd) : fd_(fd) {}

    /// The slot now holds written bytes from offset 0.
    void advance(std::uint64_t written) {
        if (!enabled_ || written - started_ < kWindow) return;
        // Not supported (some file systems, old kernels): leave it all to the fsync.
        if (::sync_file_range(fd_, static_cast<off_t>(started_),
                              static_cast<off_t>(written - started_),
                              SYNC_FILE_RANGE_WRITE) != 0) {
            enabled_ = false;
            return;
        }
        started_ = written;
    }

private:
    static constexpr std::uint64_t kWindow = 8u << 20;
    int fd_;
    bool enabled_ = true;
    std::uint64_t started_ = 0;
};

// Hashes the first size bytes of the slot as they are on the device.
Status verifySlot(const std::filesystem::path& slot, std::uint64_t size, std::string_view expected,
                  std::size_t chunk_size) {
    Fd fd(::open(slot.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return ioError("open for verification", slot);
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
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
    ::posix_fadvise(in.get(), 0, 0, POSIX_FADV_SEQUENTIAL);  // larger read-ahead; a hint only
    Fd out(::open(slot.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (out.get() < 0) return ioError("open slot", slot);
    struct stat st {};
    if (::fstat(out.get(), &st) != 0) return ioError("stat slot", slot);
    const bool regular = S_ISREG(st.st_mode);

    // A ring of buffers: chunk i is read into buffer i % kBuffers, handed to the hash worker and
    // written to the slot on this thread; the buffer is reused only once its hash is done. The
    // worker may lag a few chunks behind, so neither side waits for the other chunk by chunk.
    constexpr std::size_t kBuffers = 4;
    std::vector<std::unique_ptr<char[]>> buffers;
    for (std::size_t i = 0; i < kBuffers; ++i) {
        buffers.push_back(std::make_unique_for_overwrite<char[]>(options.chunk_size));
    }
    Writeback writeback(out.get());
    std::uint64_t written = 0;
    std::string digest;
    {
        HashWorker hashing;  // joined before the buffers go, on every path out of this block
        for (std::uint64_t i = 0;; ++i) {
            if (i >= kBuffers) hashing.waitHashed(i - kBuffers + 1);
            char* buf = buffers[i % kBuffers].get();
            // Ask for at most one byte past the declared end: enough to notice an oversized
            // source.
            const std::uint64_t room = expected_size - written + 1;
            const auto want =
                static_cast<std::size_t>(std::min<std::uint64_t>(options.chunk_size, room));
            const ssize_t n = readFull(in.get(), buf, want);
            if (n < 0) return ioError("read image", source);
            if (n == 0) break;
            const auto got = static_cast<std::uint64_t>(n);
            if (written + got > expected_size) {
                return fail(FirmwareErrc::kSize,
                            fmt::format("image '{}' is larger than its declared {} bytes; cut off",
                                        source.string(), expected_size));
            }
            const std::string_view chunk(buf, static_cast<std::size_t>(n));
            hashing.submit(chunk);
            if (!writeFull(out.get(), chunk.data(), chunk.size())) {
                return ioError("write slot", slot);
            }
            written += got;
            writeback.advance(written);
            if (options.progress) options.progress(written, expected_size);
        }
        digest = hashing.finishHex();
    }
    if (written < expected_size) {
        return fail(FirmwareErrc::kSize,
                    fmt::format("image '{}' ended after {} of its declared {} bytes",
                                source.string(), written, expected_size));
    }
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
