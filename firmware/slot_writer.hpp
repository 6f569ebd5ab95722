#pragma once
// Writing a firmware image into a slot: stream, hash, bound, fsync, verify by reading back.
// SlotStream is the one write path; installImage() feeds it from a file, a streamed update
// feeds it from the network (edged's fetchInto).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "security/stream_writer.hpp"
#include "shared/core/error.hpp"

namespace edge::firmware {

/// Called after each chunk reaches the slot: bytes written so far, and the declared total.
using InstallProgress = std::function<void(std::uint64_t written, std::uint64_t total)>;

struct InstallOptions {
    std::size_t chunk_size = 1u << 20;
    /// The slot the system runs from. When set, a slot path naming the same file or device is
    /// refused before anything is opened for writing.
    std::filesystem::path active_slot;
    InstallProgress progress;
    /// After the fsync, drop the slot from the page cache and hash it again as the device returns
    /// it: catches storage that corrupts writes silently, at the cost of a full re-read from the
    /// device (in install_bench about a quarter of the speed). Off by default, as in RAUC and
    /// Mender: the stream is hashed.
    bool read_back = false;
    /// Write past the page cache (O_DIRECT) where the file system allows it: an image as large
    /// as the device's memory does not evict what the running system has cached, and the copy
    /// into the cache is saved. Durability is unchanged (the slot is synced the same way).
    bool direct_io = true;
};

/// A slot open for writing an image from offset 0 on.
class SlotStream {
public:
    /// Opens slot (a file, created if missing, or a block device) for writing; refuses the
    /// active slot (options.active_slot) before anything is opened. options.chunk_size sizes
    /// the writer's buffers; writer carries the checkpoint settings.
    /// Errors: kInvalidArgument (the active slot, chunk_size 0), kIo.
    [[nodiscard]] static Result<std::unique_ptr<SlotStream>> open(
        const std::filesystem::path& slot, const InstallOptions& options,
        security::StreamWriterOptions writer = {});
    ~SlotStream();
    SlotStream(const SlotStream&) = delete;
    SlotStream& operator=(const SlotStream&) = delete;

    /// Where the image's bytes go, in order from offset 0 (adopt() continues a checkpoint).
    [[nodiscard]] security::StreamWriter& writer() { return *writer_; }

    /// After the last byte: exactly expected_size bytes were taken (else kSize), their SHA-256 is
    /// expected_sha256 (else kDigest), a regular file is truncated there, everything is fsynced;
    /// with read_back the slot is dropped from the page cache and hashed again as the device
    /// returns it. The same contract as installImage() on success.
    [[nodiscard]] Status finish(std::uint64_t expected_size, std::string_view expected_sha256,
                                bool read_back);

private:
    SlotStream(std::filesystem::path slot, int fd, const InstallOptions& options,
               security::StreamWriterOptions writer);

    std::filesystem::path slot_;
    int fd_;
    bool regular_ = false;
    std::size_t chunk_size_;
    std::unique_ptr<security::StreamWriter> writer_;
};

/// Copies source (a file, or anything readable: a pipe, a decompressor's output) into slot (a
/// file, created if missing, or a block device) in chunks while hashing it (on a second thread,
/// overlapping the writes), checks the digest, then fsyncs the slot; with read_back it also
/// drops the slot from the page cache and re-reads its first expected_size bytes to check the
/// digest again. A regular-file slot is truncated to expected_size; a block device keeps
/// whatever follows the image.
///
/// Contract: on success the slot's first expected_size bytes have SHA-256 expected_sha256 and
/// are on stable storage. On any error the slot's content is unspecified (the caller must have
/// made the slot unbootable before calling). Never reads more than expected_size + 1 bytes of
/// source: an endless or oversized source is cut off.
/// Errors, each naming the path: kInvalidArgument (digest not 64 hex chars, slot is the active
/// slot, chunk_size 0), kSize (source shorter or longer than expected_size), kDigest (source or
/// read-back digest differs), kIo (open/read/write/fsync failures).
/// Blocking and CPU/disk heavy: run it on a worker thread.
[[nodiscard]] Status installImage(const std::filesystem::path& source,
                                  const std::filesystem::path& slot, std::uint64_t expected_size,
                                  std::string_view expected_sha256,
                                  const InstallOptions& options = {});

}  // namespace edge::firmware
