#pragma once
// Filesystem helpers with the guarantees the daemon relies on.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "shared/core/error.hpp"

namespace edge::fs {

/// Owns a file descriptor: closed when it goes (or on reset()).
class UniqueFd {
public:
    explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(other.release());
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;

    [[nodiscard]] int get() const noexcept { return fd_; }
    /// Gives the descriptor up without closing it.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the descriptor held (errors ignored) and holds fd.
    void reset(int fd = -1) noexcept;
    /// Closes the descriptor and returns close()'s result: some filesystems report deferred
    /// write errors there.
    int close() noexcept;

private:
    int fd_;
};

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
