#pragma once
// StreamWriter: writes a byte stream into an open file or block device from offset 0 on, while
// hashing it (SHA-256 on a HashWorker thread). The one write path of downloads (the .part file)
// and of firmware slots, whether the image comes from a file or straight from the network.
//
// Bytes are staged in a ring of buffers; a full buffer is handed to the hash worker and to the
// write worker (pwrite, on its own thread) while the next ones fill. Buffered writes ask the
// kernel to start writing back every few MiB (sync_file_range), so that the disk works during
// the copy instead of only in the final fsync; direct writes (StreamWriterOptions::direct) go
// to the disk as they are made. A checkpoint makes what was written durable (fdatasync) and reports its length, so that
// a caller can persist it and resume there after a crash (adopt()).
//
// Not thread-safe; the descriptor is the caller's and must outlive the writer.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "security/hash_worker.hpp"
#include "shared/core/error.hpp"

namespace edge::security {

struct StreamWriterOptions {
    std::size_t chunk_size = 1u << 20;
    /// Every this many bytes a checkpoint is taken by itself (0: only when checkpoint() is
    /// called): fdatasync, then on_checkpoint(bytes durable from offset 0).
    std::uint64_t checkpoint_bytes = 0;
    std::function<void(std::uint64_t durable)> on_checkpoint;
    /// Writes bypass the page cache (O_DIRECT) where the file system allows it: an image as
    /// large as the device's memory does not evict what the running system has cached, and the
    /// copy into the page cache (the largest CPU cost of a write) is saved. So that writes stay
    /// whole 4 KiB blocks at block offsets, flush() and checkpoint() keep a last partial block
    /// staged and adopt() takes whole blocks only; finish() writes the end of the image through
    /// the cache. A file system that refuses direct writes gets buffered ones. Durability is
    /// unchanged: checkpoint() and finish() still sync the file (and the device's write cache).
    bool direct = false;
};

class StreamWriter {
public:
    /// fd open for reading and writing (adopt() reads); what: the path, for messages.
    StreamWriter(int fd, std::string what, StreamWriterOptions options = {});
    ~StreamWriter();
    StreamWriter(const StreamWriter&) = delete;
    StreamWriter& operator=(const StreamWriter&) = delete;

    /// Takes the first `bytes` already in the file as written (an earlier run's, up to its last
    /// checkpoint): hashes them and continues after them. Adopts fewer when the file is shorter,
    /// and with direct writes only whole 4 KiB blocks: the caller continues from size().
    /// Only before the first append. Errors: SharedErrc::kIo.
    [[nodiscard]] Status adopt(std::uint64_t bytes);

    /// Bytes taken: written plus staged.
    [[nodiscard]] std::uint64_t size() const { return written_ + staged_; }

    /// Forgets everything: the next byte is byte 0 again. A regular file is truncated to 0, and
    /// on_checkpoint(0) says that no earlier checkpoint holds.
    [[nodiscard]] Status restart();

    /// Stages bytes, writing each buffer that fills up. Bytes that are already where prepare()
    /// said the next ones go (a prefix of its span) are taken without a copy.
    [[nodiscard]] Status append(std::string_view bytes);

    /// Where the next bytes go: room for at most max bytes in the staging buffer, so that a
    /// producer (a network read) can put them there and append() a prefix of it, saving a copy.
    /// Waits like append() for the workers to release the buffer. Empty only when max is 0 or
    /// after a write error (a full buffer that could not be handed over). Valid until the next
    /// call of any other member; only a prefix of it counts as in place.
    [[nodiscard]] std::span<char> prepare(std::size_t max);

    /// Hands the staged bytes to the workers (hashed and written as they go); with direct
    /// writes, a last partial 4 KiB block stays staged. A write error is returned by the next
    /// append(), flush(), checkpoint() or finish(); it leaves the hash ahead of the file: the
    /// caller gives up on this writer.
    [[nodiscard]] Status flush();

    /// flush(), waits for the writes, fdatasync, then on_checkpoint(bytes durable): size(), or
    /// with direct writes size() less the partial block flush() kept.
    [[nodiscard]] Status checkpoint();

    /// flush(), fsync, and the hex SHA-256 of every byte since offset 0.
    [[nodiscard]] Result<std::string> finish();

private:
    class WriteWorker;

    /// Buffers in the ring: the workers may lag this many minus one buffers behind.
    static constexpr std::size_t kBuffers = 4;

    /// The write worker's: writes data at offset, starts writeback. Errors: SharedErrc::kIo.
    [[nodiscard]] Status writeAt(std::string_view data, std::uint64_t offset);
    /// flush(); all: the partial block too.
    [[nodiscard]] Status handOver(bool all);
    /// Blocks until the buffer the next byte goes into is no longer read by the workers.
    void waitForNextBuffer();
    /// Turns O_DIRECT on or off on the descriptor (no-op when direct writes are not in use).
    /// The write worker's while it writes; the caller's only while it is idle.
    void setDirect(bool on);

    struct FreeAligned {
        void operator()(char* p) const;
    };

    int fd_;
    std::string what_;
    StreamWriterOptions options_;
    std::vector<std::unique_ptr<char[], FreeAligned>> buffers_;  // 4 KiB aligned (O_DIRECT)
    std::uint64_t filled_ = 0;        // buffers handed to the hash worker (since construction)
    std::uint64_t write_pieces_ = 0;  // pieces handed to the write worker (since construction)
    std::array<std::uint64_t, kBuffers> write_ticket_{};  // by buffer: its last piece's write_pieces_
    std::size_t staged_ = 0;          // bytes in the current buffer
    std::uint64_t written_ = 0;       // bytes handed to the write worker, offsets [0, written_)
    std::uint64_t checkpointed_ = 0;  // durable up to here
    // The write worker's (the caller's only while it is idle):
    std::uint64_t written_back_ = 0;  // sync_file_range started up to here
    bool writeback_ = true;           // sync_file_range works on this descriptor
    bool direct_ = false;             // O_DIRECT is set on fd_ and accepted by its file system
    bool direct_refused_ = false;     // a direct write failed with EINVAL: buffered from then on
    // After the buffers: joined before they go.
    HashWorker hashing_;
    std::unique_ptr<WriteWorker> writes_;
};

}  // namespace edge::security
