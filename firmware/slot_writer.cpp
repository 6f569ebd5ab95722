#include "firmware/slot_writer.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "firmware/errors.hpp"
#include "security/crypto.hpp"
#include "shared/core/fs.hpp"

namespace edge::firmware {
namespace {

using Fd = fs::UniqueFd;

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

Result<std::unique_ptr<SlotStream>> SlotStream::open(const std::filesystem::path& slot,
                                                      const InstallOptions& options,
                                                      security::StreamWriterOptions writer) {
    if (options.chunk_size == 0) {
        return fail(FirmwareErrc::kInvalidArgument, "install: chunk_size is 0");
    }
    if (!options.active_slot.empty() && sameTarget(slot, options.active_slot)) {
        return fail(FirmwareErrc::kInvalidArgument,
                    fmt::format("refusing to write '{}': it is the active slot", slot.string()));
    }
    const int fd = ::open(slot.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ioError("open slot", slot);
    auto stream = std::unique_ptr<SlotStream>(new SlotStream(slot, fd, options, std::move(writer)));
    struct stat st {};
    if (::fstat(fd, &st) != 0) return ioError("stat slot", slot);
    stream->regular_ = S_ISREG(st.st_mode);
    return stream;
}

SlotStream::SlotStream(std::filesystem::path slot, int fd, const InstallOptions& options,
                       security::StreamWriterOptions writer)
    : slot_(std::move(slot)), fd_(fd), chunk_size_(options.chunk_size) {
    writer.chunk_size = options.chunk_size;
    writer.direct = options.direct_io;
    writer_ = std::make_unique<security::StreamWriter>(fd_, slot_.string(), std::move(writer));
}

SlotStream::~SlotStream() {
    writer_.reset();  // before the descriptor it writes
    if (fd_ >= 0) ::close(fd_);
}

Status SlotStream::finish(std::uint64_t expected_size, std::string_view expected_sha256,
                          bool read_back) {
    if (!security::isSha256Hex(expected_sha256)) {
        return fail(FirmwareErrc::kInvalidArgument,
                    fmt::format("slot '{}': expected sha256 '{}' is not 64 lowercase hex chars",
                                slot_.string(), expected_sha256));
    }
    const std::uint64_t taken = writer_->size();
    if (taken != expected_size) {
        return fail(FirmwareErrc::kSize,
                    fmt::format("slot '{}' got {} bytes, the image declares {}", slot_.string(),
                                taken, expected_size));
    }
    auto digest = writer_->finish();
    if (!digest) return fail(FirmwareErrc::kIo, digest.error().what());
    if (*digest != expected_sha256) {
        return fail(FirmwareErrc::kDigest,
                    fmt::format("the image written to slot '{}' has sha256 {}, expected {}",
                                slot_.string(), *digest, expected_sha256));
    }
    if (regular_ && ::ftruncate(fd_, static_cast<off_t>(expected_size)) != 0) {
        return ioError("truncate slot", slot_);
    }
    if (::fsync(fd_) != 0) return ioError("fsync slot", slot_);
    if (read_back) {
        // Read back from the device, not from the page cache we just filled.
        ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    }
    const int fd = fd_;
    writer_.reset();
    fd_ = -1;
    if (::close(fd) != 0) return ioError("close slot", slot_);  // deferred write errors
    if (!read_back) return {};
    return verifySlot(slot_, expected_size, expected_sha256, chunk_size_);
}

Status installImage(const std::filesystem::path& source, const std::filesystem::path& slot,
                    std::uint64_t expected_size, std::string_view expected_sha256,
                    const InstallOptions& options) {
    if (!security::isSha256Hex(expected_sha256)) {
        return fail(FirmwareErrc::kInvalidArgument,
                    fmt::format("install '{}': expected sha256 '{}' is not 64 lowercase hex chars",
                                source.string(), expected_sha256));
    }
    auto stream = SlotStream::open(slot, options);
    if (!stream) return fail(std::move(stream.error()));
    Fd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return ioError("open image", source);
    ::posix_fadvise(in.get(), 0, 0, POSIX_FADV_SEQUENTIAL);  // larger read-ahead; a hint only
    auto& out = (*stream)->writer();
    const auto buffer = std::make_unique_for_overwrite<char[]>(options.chunk_size);
    while (true) {
        // Ask for at most one byte past the declared end: enough to notice an oversized source.
        const std::uint64_t room = expected_size - out.size() + 1;
        const auto want =
            static_cast<std::size_t>(std::min<std::uint64_t>(options.chunk_size, room));
        const ssize_t n = readFull(in.get(), buffer.get(), want);
        if (n < 0) return ioError("read image", source);
        if (n == 0) break;
        if (out.size() + static_cast<std::uint64_t>(n) > expected_size) {
            return fail(FirmwareErrc::kSize,
                        fmt::format("image '{}' is larger than its declared {} bytes; cut off",
                                    source.string(), expected_size));
        }
        if (auto ok = out.append(std::string_view(buffer.get(), static_cast<std::size_t>(n))); !ok) {
            return fail(FirmwareErrc::kIo, ok.error().what());
        }
        if (options.progress) options.progress(out.size(), expected_size);
    }
    if (out.size() < expected_size) {
        return fail(FirmwareErrc::kSize,
                    fmt::format("image '{}' ended after {} of its declared {} bytes",
                                source.string(), out.size(), expected_size));
    }
    auto done = (*stream)->finish(expected_size, expected_sha256, options.read_back);
    if (!done && done.error().code() == FirmwareErrc::kDigest) {
        return fail(FirmwareErrc::kDigest,
                    fmt::format("image '{}': {}", source.string(), done.error().what()));
    }
    return done;
}

}  // namespace edge::firmware
