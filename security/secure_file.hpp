#pragma once
// File helpers for key and trust-root files (internal to the security module).
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "security/errors.hpp"
#include "shared/core/error.hpp"

namespace edge::security::detail {

/// Reads a whole regular file; larger than max_bytes is an error. Errors carry `code` and name
/// the path.
[[nodiscard]] Result<std::string> readFileLimited(const std::filesystem::path& path,
                                                  std::size_t max_bytes, SecurityErrc code);

/// Atomic replace: a uniquely named tmp file next to path created with `mode` (not widened by a
/// permissive umask), write, fsync, rename over path, fsync the directory. A crash leaves either
/// the old or the new content. Errors carry `code` and name the path.
[[nodiscard]] Status writeFileAtomic(const std::filesystem::path& path, std::string_view content,
                                     unsigned mode, SecurityErrc code);

}  // namespace edge::security::detail
