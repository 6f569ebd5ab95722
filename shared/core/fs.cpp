#include "shared/core/fs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace edge::fs {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

int UniqueFd::close() noexcept {
    const int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc;
}
namespace {

std::unexpected<Error> ioError(std::string_view what, const std::filesystem::path& path) {
    return fail(SharedErrc::kIo,
                fmt::format("{} '{}': {}", what, path.string(), std::strerror(errno)));
}

}  // namespace

Status writeFileAtomic(const std::filesystem::path& path, std::string_view data, unsigned mode) {
    const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    const auto tmp = dir / fmt::format(".{}.tmp.{}", path.filename().string(), ::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return ioError("create", tmp);
    std::size_t done = 0;
    while (done < data.size()) {
        const auto n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            auto err = ioError("write", tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            return err;
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
        auto err = ioError("fsync", tmp);
        ::close(fd);
        ::unlink(tmp.c_str());
        return err;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        auto err = ioError("rename", path);
        ::unlink(tmp.c_str());
        return err;
    }
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return ioError("open directory", dir);
    const int rc = ::fsync(dfd);
    ::close(dfd);
    if (rc != 0) return ioError("fsync directory", dir);
    return {};
}

Result<std::string> readFile(const std::filesystem::path& path, std::size_t max_bytes) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) return fail(SharedErrc::kIo, fmt::format("read '{}': {}", path.string(), ec.message()));
    if (size > max_bytes) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("read '{}': {} bytes is over the limit of {}", path.string(), size,
                                max_bytes));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return ioError("open", path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

Result<std::filesystem::path> resolveInside(const std::filesystem::path& base,
                                            std::string_view relative) {
    const std::filesystem::path rel(relative);
    if (relative.empty() || rel.is_absolute()) {
        return fail(SharedErrc::kPathEscape,
                    fmt::format("path '{}' must be relative to '{}'", relative, base.string()));
    }
    std::error_code ec;
    const auto root = std::filesystem::weakly_canonical(base, ec);
    if (ec) return fail(SharedErrc::kIo, fmt::format("resolve '{}': {}", base.string(), ec.message()));
    const auto full = std::filesystem::weakly_canonical(root / rel, ec);
    if (ec) return fail(SharedErrc::kIo, fmt::format("resolve '{}': {}", relative, ec.message()));
    const auto [root_end, full_it] = std::mismatch(root.begin(), root.end(), full.begin(), full.end());
    if (root_end != root.end() || full == root) {
        return fail(SharedErrc::kPathEscape,
                    fmt::format("path '{}' escapes '{}'", relative, base.string()));
    }
    return full;
}

}  // namespace edge::fs
