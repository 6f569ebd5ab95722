#include "security/stream_writer.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace edge::security {
namespace {

/// Buffers in the ring: the hash worker may lag this many minus one chunks behind the writes.
constexpr std::size_t kBuffers = 4;
/// Written back to the kernel (not yet to the disk) in pieces of this size.
constexpr std::uint64_t kWritebackBytes = 8u << 20;

std::unexpected<Error> ioError(std::string_view what, const std::string& path, int err = errno) {
    return fail(SharedErrc::kIo, fmt::format("{} '{}': {}", what, path, std::strerror(err)));
}

}  // namespace

StreamWriter::StreamWriter(int fd, std::string what, StreamWriterOptions options)
    : fd_(fd), what_(std::move(what)), options_(std::move(options)) {
    if (options_.chunk_size == 0) options_.chunk_size = 1u << 20;
    for (std::size_t i = 0; i < kBuffers; ++i) {
        buffers_.push_back(std::make_unique_for_overwrite<char[]>(options_.chunk_size));
    }
}

StreamWriter::~StreamWriter() { hashing_.waitIdle(); }  // the worker may still read a buffer

Status StreamWriter::adopt(std::uint64_t bytes) {
    if (size() != 0) return fail(SharedErrc::kInvalidArgument, "adopt: bytes were appended before");
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (written_ < bytes) {
        if (filled_ >= kBuffers) hashing_.waitHashed(filled_ - kBuffers + 1);
        char* buffer = buffers_[filled_ % kBuffers].get();
        const auto want = static_cast<std::size_t>(
            std::min<std::uint64_t>(options_.chunk_size, bytes - written_));
        ssize_t n = 0;
        do {
            n = ::pread(fd_, buffer, want, static_cast<off_t>(written_));
        } while (n < 0 && errno == EINTR);
        if (n < 0) return ioError("read", what_);
        if (n == 0) break;  // shorter than that: continue from what is there
        hashing_.submit(std::string_view(buffer, static_cast<std::size_t>(n)));
        ++filled_;
        written_ += static_cast<std::uint64_t>(n);
    }
    hashing_.waitIdle();
    written_back_ = written_;
    checkpointed_ = written_;
    return {};
}

Status StreamWriter::restart() {
    hashing_.reset();
    staged_ = 0;
    written_ = 0;
    written_back_ = 0;
    checkpointed_ = 0;
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return ioError("stat", what_);
    if (S_ISREG(st.st_mode) && ::ftruncate(fd_, 0) != 0) return ioError("truncate", what_);
    // Nothing before is valid any more: a checkpoint taken earlier must not be resumed from.
    if (options_.on_checkpoint) options_.on_checkpoint(0);
    return {};
}

Status StreamWriter::append(std::string_view bytes) {
    while (!bytes.empty()) {
        if (staged_ == 0 && filled_ >= kBuffers) {
            hashing_.waitHashed(filled_ - kBuffers + 1);  // this buffer's last hash is done
        }
        char* buffer = buffers_[filled_ % kBuffers].get();
        const std::size_t n = std::min(bytes.size(), options_.chunk_size - staged_);
        std::memcpy(buffer + staged_, bytes.data(), n);
        staged_ += n;
        bytes.remove_prefix(n);
        if (staged_ == options_.chunk_size) {
            if (auto ok = flush(); !ok) return ok;
        }
    }
    return {};
}

Status StreamWriter::flush() {
    if (staged_ == 0) return {};
    const std::string_view data(buffers_[filled_ % kBuffers].get(), staged_);
    hashing_.submit(data);
    ++filled_;
    staged_ = 0;
    if (auto ok = writeOut(data); !ok) return ok;
    if (writeback_ && written_ - written_back_ >= kWritebackBytes) {
        // An early start only (errors surface in the fsync); unsupported is fine.
        if (::sync_file_range(fd_, static_cast<off_t>(written_back_),
                              static_cast<off_t>(written_ - written_back_),
                              SYNC_FILE_RANGE_WRITE) != 0) {
            writeback_ = false;
        }
        written_back_ = written_;
    }
    if (options_.checkpoint_bytes > 0 && written_ - checkpointed_ >= options_.checkpoint_bytes) {
        return checkpoint();
    }
    return {};
}

Status StreamWriter::writeOut(std::string_view data) {
    while (!data.empty()) {
        const auto n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(written_));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ioError("write", what_);
        if (n == 0) return fail(SharedErrc::kIo, fmt::format("write '{}': no room", what_));
        data.remove_prefix(static_cast<std::size_t>(n));
        written_ += static_cast<std::uint64_t>(n);
    }
    return {};
}

Status StreamWriter::checkpoint() {
    if (auto ok = flush(); !ok) return ok;
    if (checkpointed_ == written_) return {};
    if (::fdatasync(fd_) != 0) return ioError("fdatasync", what_);
    checkpointed_ = written_;
    if (options_.on_checkpoint) options_.on_checkpoint(written_);
    return {};
}

Result<std::string> StreamWriter::finish() {
    if (auto ok = flush(); !ok) return fail(std::move(ok.error()));
    if (::fsync(fd_) != 0) return ioError("fsync", what_);
    checkpointed_ = written_;
    return hashing_.finishHex();
}

}  // namespace edge::security
