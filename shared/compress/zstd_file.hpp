#pragma once
// zstd-compressed artifacts (issue 6): a firmware image or model may be stored and sent as a
// .zst file; what the signed bundle binds, and what is installed and measured, are the
// decompressed bytes. Streaming, bounded, hashed: never more than the declared size is written
// (a decompression bomb stops there), and the result is published only when its SHA-256 matches.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "shared/core/error.hpp"

namespace edge::compress {

/// True when the file starts with the zstd frame magic (28 b5 2f fd).
[[nodiscard]] bool isZstdFile(const std::filesystem::path& path);

/// What a .zst file decompresses to.
struct ContentInfo {
    std::string sha256;  // 64 lowercase hex
    std::uint64_t size = 0;
};

/// Decompresses src while hashing, without writing anything (artifact-add describes a .zst).
/// Errors: kIo, kParse (not zstd, corrupt, truncated), kInvalidArgument past max_size.
[[nodiscard]] Result<ContentInfo> describeZstd(const std::filesystem::path& src,
                                               std::uint64_t max_size = std::uint64_t{1} << 40);

/// Decompresses src into dest: dest + ".tmp" first, at most expected_size bytes (more is
/// kInvalidArgument, fewer or a corrupt frame kParse), SHA-256 compared with expected_sha256
/// (kInvalidArgument on a mismatch), fsync, rename to dest, fsync of the directory. On any error
/// the temporary file is removed and dest is untouched. Blocking.
[[nodiscard]] Status decompressZstd(const std::filesystem::path& src, const std::filesystem::path& dest,
                                    std::string_view expected_sha256, std::uint64_t expected_size);

}  // namespace edge::compress
