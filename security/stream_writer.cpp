#include "security/stream_writer.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <new>
#include <optional>
#include <thread>

namespace edge::security {
namespace {

/// Written back to the kernel (not yet to the disk) in pieces of this size.
constexpr std::uint64_t kWritebackBytes = 8u << 20;
/// Offsets and lengths of direct writes are multiples of this (the largest logical block size
/// of common devices), and the buffers start at one.
constexpr std::size_t kDirectAlign = 4096;

std::unexpected<Error> ioError(std::string_view what, const std::string& path, int err = errno) {
    return fail(SharedErrc::kIo, fmt::format("{} '{}': {}", what, path, std::strerror(err)));
}

}  // namespace

/// Writes the pieces it is handed, in order, on its own thread; keeps the first error.
class StreamWriter::WriteWorker {
public:
    explicit WriteWorker(StreamWriter& owner) : owner_(owner), thread_([this] { run(); }) {}

    ~WriteWorker() {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_worker_.notify_one();
        thread_.join();
    }

    /// The bytes must stay unchanged until written() counts the piece.
    void submit(std::string_view data, std::uint64_t offset) {
        {
            const std::lock_guard lock(mutex_);
            queue_.push_back({data, offset});
            ++submitted_;
        }
        wake_worker_.notify_one();
    }

    /// Blocks until at least count pieces (since construction) are done, written or not.
    void waitWritten(std::uint64_t count) {
        std::unique_lock lock(mutex_);
        wake_caller_.wait(lock, [&] { return written_ >= count; });
    }

    /// The first write error so far, without waiting.
    [[nodiscard]] Status check() {
        const std::lock_guard lock(mutex_);
        if (error_) return fail(*error_);
        return {};
    }

    /// Blocks until every piece is done; then the first write error, if any.
    [[nodiscard]] Status waitIdle() {
        std::unique_lock lock(mutex_);
        wake_caller_.wait(lock, [&] { return written_ == submitted_; });
        if (error_) return fail(*error_);
        return {};
    }

    /// Waits for every piece and forgets the error.
    void reset() {
        std::unique_lock lock(mutex_);
        wake_caller_.wait(lock, [&] { return written_ == submitted_; });
        error_.reset();
    }

private:
    struct Piece {
        std::string_view data;
        std::uint64_t offset;
    };

    void run() {
        ::pthread_setname_np(::pthread_self(), "edge-write");  // seen in top -H, perf, gdb
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_worker_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, nothing left
            const Piece piece = queue_.front();
            const bool skip = error_.has_value();  // after a failure nothing more is written
            lock.unlock();
            Status st = skip ? Status{} : owner_.writeAt(piece.data, piece.offset);
            lock.lock();
            if (!st && !error_) error_ = std::move(st.error());
            queue_.pop_front();
            ++written_;
            wake_caller_.notify_all();
        }
    }

    StreamWriter& owner_;
    std::mutex mutex_;
    std::condition_variable wake_worker_;
    std::condition_variable wake_caller_;
    std::deque<Piece> queue_;
    std::optional<Error> error_;
    bool stopping_ = false;
    std::uint64_t submitted_ = 0;
    std::uint64_t written_ = 0;
    std::thread thread_;  // last: starts once everything it uses exists
};

StreamWriter::StreamWriter(int fd, std::string what, StreamWriterOptions options)
    : fd_(fd), what_(std::move(what)), options_(std::move(options)) {
    if (options_.chunk_size == 0) options_.chunk_size = 1u << 20;
    for (std::size_t i = 0; i < kBuffers; ++i) {
        buffers_.emplace_back(static_cast<char*>(
            ::operator new[](options_.chunk_size, std::align_val_t(kDirectAlign))));
    }
    if (options_.chunk_size % kDirectAlign != 0) options_.direct = false;  // never whole blocks
    if (options_.direct) {
        setDirect(true);
        options_.direct = direct_;  // refused here: refused for good
    }
    writes_ = std::make_unique<WriteWorker>(*this);
}

void StreamWriter::FreeAligned::operator()(char* p) const {
    ::operator delete[](p, std::align_val_t(kDirectAlign));
}

void StreamWriter::setDirect(bool on) {
    if (!options_.direct) return;
    on = on && !direct_refused_;
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0) return;
    // A file system without direct I/O (tmpfs) refuses the flag: writes stay buffered.
    direct_ = ::fcntl(fd_, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT) == 0 && on;
}

StreamWriter::~StreamWriter() {
    // The workers may still use a buffer.
    hashing_.waitIdle();
    writes_->reset();
    setDirect(false);  // the descriptor is the caller's: left as it came
}

Status StreamWriter::adopt(std::uint64_t bytes) {
    if (size() != 0) return fail(SharedErrc::kInvalidArgument, "adopt: bytes were appended before");
    // Whole blocks only with direct writes, so that the next write starts on one. They are read
    // through the cache: the prefix may end before them (a short file).
    if (options_.direct) bytes -= bytes % kDirectAlign;
    const bool was_direct = direct_;
    setDirect(false);
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
        if (n < 0) {
            const int err = errno;
            if (was_direct) setDirect(true);
            return ioError("read", what_, err);
        }
        if (n == 0) break;  // shorter than that: continue from what is there
        hashing_.submit(std::string_view(buffer, static_cast<std::size_t>(n)));
        ++filled_;
        written_ += static_cast<std::uint64_t>(n);
    }
    hashing_.waitIdle();
    written_back_ = written_;
    checkpointed_ = written_;
    if (was_direct) setDirect(true);
    return {};
}

Status StreamWriter::restart() {
    hashing_.reset();
    writes_->reset();
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
        const auto room = prepare(bytes.size());
        const std::size_t n = room.size();
        // In place after prepare(); memmove, not memcpy: the bytes may come from this buffer.
        if (bytes.data() != room.data()) std::memmove(room.data(), bytes.data(), n);
        staged_ += n;
        bytes.remove_prefix(n);
        if (staged_ == options_.chunk_size) {
            if (auto ok = flush(); !ok) return ok;
        }
    }
    return {};
}

std::span<char> StreamWriter::prepare(std::size_t max) {
    if (staged_ == 0) waitForNextBuffer();
    char* buffer = buffers_[filled_ % kBuffers].get();
    return {buffer + staged_, std::min(max, options_.chunk_size - staged_)};
}

void StreamWriter::waitForNextBuffer() {
    if (filled_ < kBuffers) return;
    hashing_.waitHashed(filled_ - kBuffers + 1);
    writes_->waitWritten(write_ticket_[filled_ % kBuffers]);
}

Status StreamWriter::flush() { return handOver(false); }

Status StreamWriter::handOver(bool all) {
    if (auto ok = writes_->check(); !ok) return ok;
    if (staged_ == 0) return {};
    // With direct writes, a partial last block waits for the bytes that complete it (unless
    // the file is off the block grid already).
    const bool keep_partial = !all && options_.direct && written_ % kDirectAlign == 0;
    const std::size_t keep = keep_partial ? staged_ % kDirectAlign : 0;
    if (keep == staged_) return {};
    char* buffer = buffers_[filled_ % kBuffers].get();
    const std::string_view data(buffer, staged_ - keep);
    hashing_.submit(data);
    writes_->submit(data, written_);
    write_ticket_[filled_ % kBuffers] = ++write_pieces_;
    ++filled_;
    staged_ = 0;
    written_ += data.size();
    if (keep > 0) {
        // Into the next buffer (the workers read only up to the kept bytes of this one).
        waitForNextBuffer();
        std::memcpy(buffers_[filled_ % kBuffers].get(), buffer + data.size(), keep);
        staged_ = keep;
    }
    if (options_.checkpoint_bytes > 0 && written_ - checkpointed_ >= options_.checkpoint_bytes) {
        return checkpoint();
    }
    return {};
}

Status StreamWriter::writeAt(std::string_view data, std::uint64_t offset) {
    // A piece that is not whole blocks at a block offset goes through the cache; so does the
    // rest of one that a direct write cut short.
    const auto aligned = [&] { return offset % kDirectAlign == 0 && data.size() % kDirectAlign == 0; };
    if (direct_ && !aligned()) setDirect(false);
    while (!data.empty()) {
        const auto n = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EINVAL && direct_) {
            // The flag was taken but the write is not (a device with larger blocks): buffered.
            direct_refused_ = true;
            setDirect(false);
            continue;
        }
        if (n < 0) {
            const int err = errno;
            setDirect(true);
            return ioError("write", what_, err);
        }
        if (n == 0) {
            setDirect(true);
            return fail(SharedErrc::kIo, fmt::format("write '{}': no room", what_));
        }
        data.remove_prefix(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
        if (direct_ && !aligned()) setDirect(false);
    }
    if (options_.direct && !direct_ && !direct_refused_) setDirect(true);
    if (!direct_ && writeback_ && offset - written_back_ >= kWritebackBytes) {
        // An early start only (errors surface in the fsync); unsupported is fine.
        if (::sync_file_range(fd_, static_cast<off_t>(written_back_),
                              static_cast<off_t>(offset - written_back_),
                              SYNC_FILE_RANGE_WRITE) != 0) {
            writeback_ = false;
        }
        written_back_ = offset;
    }
    return {};
}

Status StreamWriter::checkpoint() {
    if (auto ok = flush(); !ok) return ok;
    if (checkpointed_ == written_) return {};
    if (auto ok = writes_->waitIdle(); !ok) return ok;
    if (::fdatasync(fd_) != 0) return ioError("fdatasync", what_);
    checkpointed_ = written_;
    if (options_.on_checkpoint) options_.on_checkpoint(written_);
    return {};
}

Result<std::string> StreamWriter::finish() {
    if (auto ok = handOver(true); !ok) return fail(std::move(ok.error()));
    if (auto ok = writes_->waitIdle(); !ok) return fail(std::move(ok.error()));
    if (::fsync(fd_) != 0) return ioError("fsync", what_);
    checkpointed_ = written_;
    return hashing_.finishHex();
}

}  // namespace edge::security
