#pragma once
// Writing a firmware image into a slot: stream, hash, bound, fsync, verify by reading back.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string_view>

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
    /// it: catches storage that corrupts writes silently, at the cost of a full re-read (about
    /// halves install throughput). Off by default, as in RAUC and Mender: the stream is hashed.
    bool read_back = false;
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
