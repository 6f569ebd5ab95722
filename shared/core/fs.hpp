#pragma once
// Filesystem helpers with the guarantees the daemon relies on.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "shared/core/error.hpp"

namespace edge::fs {

/// Writes data so that a crash leaves either the old file or the new one: tmp file in the same
/// directory, fsync, rename over the target, fsync the directory.
[[nodiscard]] Status writeFileAtomic(const std::filesystem::path& path, std::string_view data,
                                     unsigned mode = 0644);
/// Reads a whole file; refuses files larger than max_bytes.
[[nodiscard]] Result<std::string> readFile(const std::filesystem::path& path,
                                           std::size_t max_bytes = 64u << 20);
/// Resolves a relative path from the outside world under base; fails with kPathEscape when it
/// is absolute or leaves base (through "..", or a symlink pointing outside).
[[nodiscard]] Result<std::filesystem::path> resolveInside(const std::filesystem::path& base,
                                                          std::string_view relative);

}  // namespace edge::fs
