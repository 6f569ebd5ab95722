#include "security/secure_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "security/crypto.hpp"

namespace edge::security::detail {

namespace {

std::string errnoText(int err) { return std::strerror(err); }

// Closes the descriptor on scope exit unless released.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    [[nodiscard]] int get() const { return fd_; }
    /// Closes now and reports the result (close can report a deferred write error).
    int close() {
        const int rc = ::close(fd_);
        fd_ = -1;
        return rc;
    }

private:
    int fd_;
};

Status writeAll(int fd, std::string_view content) {
    while (!content.empty()) {
        const ssize_t n = ::write(fd, content.data(), content.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return std::unexpected(Error({errno, std::generic_category()}, errnoText(errno)));
        }
        content.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

}  // namespace

Result<std::string> readFileLimited(const std::filesystem::path& path, std::size_t max_bytes,
                                    SecurityErrc code) {
    const std::string where = "read " + path.string() + ": ";
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return fail(code, where + errnoText(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail(code, where + errnoText(errno));
    if (!S_ISREG(st.st_mode)) return fail(code, where + "not a regular file");
    if (static_cast<std::size_t>(st.st_size) > max_bytes) {
        return fail(code, where + "file larger than " + std::to_string(max_bytes) + " bytes");
    }
    std::string out;
    char buf[8192];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(code, where + errnoText(errno));
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > max_bytes) {
            return fail(code, where + "file larger than " + std::to_string(max_bytes) + " bytes");
        }
    }
    return out;
}

Status writeFileAtomic(const std::filesystem::path& path, std::string_view content, unsigned mode,
                       SecurityErrc code) {
    const std::string where = "write " + path.string() + ": ";
    const std::filesystem::path dir =
        path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    std::filesystem::path tmp = path;
    tmp += ".tmp-" + toHex(randomBytes(8));

    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, static_cast<mode_t>(mode)));
    if (fd.get() < 0) return fail(code, where + "create temporary file: " + errnoText(errno));
    auto cleanup = [&](std::string message) {
        ::unlink(tmp.c_str());
        return fail(code, where + message);
    };
    // The umask only removes bits; fchmod makes the mode exact whatever the umask is.
    if (::fchmod(fd.get(), static_cast<mode_t>(mode)) != 0) return cleanup(errnoText(errno));
    if (auto st = writeAll(fd.get(), content); !st) return cleanup(st.error().message());
    if (::fsync(fd.get()) != 0) return cleanup("fsync: " + errnoText(errno));
    if (fd.close() != 0) return cleanup("close: " + errnoText(errno));
    if (::rename(tmp.c_str(), path.c_str()) != 0) return cleanup("rename: " + errnoText(errno));

    Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0) {
        return fail(code, where + "fsync directory: " + errnoText(errno));
    }
    return {};
}

}  // namespace edge::security::detail
