#pragma once
// StreamWriter: writes a byte stream into an open file or block device from offset 0 on, while
// hashing it (SHA-256 on a HashWorker thread). The one write path of downloads (the .part file)
// and of firmware slots, whether the image comes from a file or straight from the network.
//
// Bytes are staged in a ring of buffers; a full buffer is handed to the hash worker and written
// (pwrite) while the next ones fill, and the kernel is asked to start writing back every few
// MiB (sync_file_range), so that the disk works during the copy instead of only in the final
// fsync. A checkpoint makes what was written durable (fdatasync) and reports its length, so that
// a caller can persist it and resume there after a crash (adopt()).
//
// Not thread-safe; the descriptor is the caller's and must outlive the writer.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
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
};

class StreamWriter {
public:
    /// fd open for reading and writing (adopt() reads); what: the path, for messages.
    StreamWriter(int fd, std::string what, StreamWriterOptions options = {});
    ~StreamWriter();
    StreamWriter(const StreamWriter&) = delete;
    StreamWriter& operator=(const StreamWriter&) = delete;

    /// Takes the first `bytes` already in the file as written (an earlier run's, up to its last
    /// checkpoint): hashes them and continues after them. Adopts fewer when the file is shorter.
    /// Only before the first append. Errors: SharedErrc::kIo.
    [[nodiscard]] Status adopt(std::uint64_t bytes);

    /// Bytes taken: written plus staged.
    [[nodiscard]] std::uint64_t size() const { return written_ + staged_; }

    /// Forgets everything: the next byte is byte 0 again. A regular file is truncated to 0, and
    /// on_checkpoint(0) says that no earlier checkpoint holds.
    [[nodiscard]] Status restart();

    /// Stages bytes, writing each buffer that fills up.
    [[nodiscard]] Status append(std::string_view bytes);

    /// Writes the staged bytes (hashed as they go). A write error leaves the hash ahead of the
    /// file: the caller gives up on this writer.
    [[nodiscard]] Status flush();

    /// flush(), fdatasync, then on_checkpoint(size()).
    [[nodiscard]] Status checkpoint();

    /// flush(), fsync, and the hex SHA-256 of every byte since offset 0.
    [[nodiscard]] Result<std::string> finish();

private:
    [[nodiscard]] Status writeOut(std::string_view data);

    int fd_;
    std::string what_;
    StreamWriterOptions options_;
    std::vector<std::unique_ptr<char[]>> buffers_;
    std::uint64_t filled_ = 0;        // buffers handed to the hash worker (since the last reset)
    std::size_t staged_ = 0;          // bytes in the current buffer
    std::uint64_t written_ = 0;       // bytes written at offsets [0, written_)
    std::uint64_t written_back_ = 0;  // sync_file_range started up to here
    std::uint64_t checkpointed_ = 0;  // durable up to here
    bool writeback_ = true;           // sync_file_range works on this descriptor
    HashWorker hashing_;              // after the buffers: joined before they go
};

}  // namespace edge::security
