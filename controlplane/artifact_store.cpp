#include "controlplane/artifact_store.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "security/crypto.hpp"
#include "shared/compress/zstd_file.hpp"
#include "shared/core/fs.hpp"

namespace edge::controlplane {

namespace {
constexpr const char* kZstdMetaSuffix = ".zst.json";
}  // namespace

namespace {

/// Closes a descriptor unless released.
class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    int release() { return std::exchange(fd_, -1); }

private:
    int fd_;
};

std::unexpected<Error> ioError(std::string_view what, const std::filesystem::path& path,
                               int err = errno) {
    return fail(SharedErrc::kIo,
                fmt::format("{} '{}': {}", what, path.string(), std::strerror(err)));
}

Status writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        const auto n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(SharedErrc::kIo, std::strerror(errno));
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

/// [first, last] of a satisfiable range; or unsatisfiable; or nullopt: serve the whole file.
struct ByteRange {
    bool satisfiable = true;
    std::uint64_t first = 0;
    std::uint64_t last = 0;
};

std::optional<std::uint64_t> parseNumber(std::string_view text) {
    std::uint64_t value = 0;
    if (text.empty() || text.size() > 19) return std::nullopt;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// RFC 9110 §14.1.2 single byte range; what cannot be used is nullopt (ignored).
std::optional<ByteRange> parseRange(std::string_view field, std::uint64_t size) {
    field = trim(field);
    constexpr std::string_view kUnit = "bytes=";
    if (field.size() < kUnit.size() ||
        !std::ranges::equal(field.substr(0, kUnit.size()), kUnit, [](char a, char b) {
            return (a >= 'A' && a <= 'Z' ? char(a - 'A' + 'a') : a) == b;
        })) {
        return std::nullopt;
    }
    const auto spec = trim(field.substr(kUnit.size()));
    if (spec.find(',') != std::string_view::npos) return std::nullopt;  // multipart: not offered
    const auto dash = spec.find('-');
    if (dash == std::string_view::npos) return std::nullopt;
    const auto first_text = trim(spec.substr(0, dash));
    const auto last_text = trim(spec.substr(dash + 1));
    if (first_text.empty()) {  // suffix: the last N bytes
        const auto suffix = parseNumber(last_text);
        if (!suffix) return std::nullopt;
        if (*suffix == 0 || size == 0) return ByteRange{false};
        return ByteRange{true, size - std::min(*suffix, size), size - 1};
    }
    const auto first = parseNumber(first_text);
    if (!first) return std::nullopt;
    std::uint64_t last = size == 0 ? 0 : size - 1;
    if (!last_text.empty()) {
        const auto parsed = parseNumber(last_text);
        if (!parsed || *parsed < *first) return std::nullopt;  // invalid: ignore the field
        last = std::min(last, *parsed);
    }
    if (*first >= size) return ByteRange{false};
    return ByteRange{true, *first, last};
}

}  // namespace

ArtifactStore::ArtifactStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

bool ArtifactStore::isDigest(std::string_view text) { return security::isSha256Hex(text); }

Result<std::string> ArtifactStore::add(const std::filesystem::path& source) const {
    const std::string what = fmt::format("add artifact '{}'", source.string());
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) {
        return fail(
            Error(SharedErrc::kIo, fmt::format("create '{}': {}", dir_.string(), ec.message()))
                .wrap(what));
    }
    const Fd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC));
    if (in.get() < 0) return fail(ioError("open", source).error().wrap(what));
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("{}: not a regular file", what));
    }

    // The temporary name is never a digest, so handle() can never serve a partial copy.
    std::string tmp = (dir_ / ".incoming.XXXXXX").string();
    const Fd out(::mkstemp(tmp.data()));
    if (out.get() < 0) return fail(ioError("create", tmp).error().wrap(what));
    const auto cleanup = [&](std::unexpected<Error> err) {
        ::unlink(tmp.c_str());
        return fail(std::move(err.error()).wrap(what));
    };

    security::Sha256Hasher hasher;
    std::vector<char> buffer(1u << 20);
    for (;;) {
        const auto n = ::read(in.get(), buffer.data(), buffer.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return cleanup(ioError("read", source));
        }
        if (n == 0) break;
        const std::string_view chunk(buffer.data(), static_cast<std::size_t>(n));
        hasher.update(chunk);
        if (auto ok = writeAll(out.get(), chunk); !ok) {
            return cleanup(fail(std::move(ok.error()).wrap(fmt::format("write '{}'", tmp))));
        }
    }
    if (::fchmod(out.get(), 0644) != 0 || ::fsync(out.get()) != 0) {
        return cleanup(ioError("fsync", tmp));
    }
    const std::string digest = hasher.finishHex();
    const auto final_path = dir_ / digest;
    if (compress::isZstdFile(tmp)) {
        auto content = compress::describeZstd(tmp);
        if (!content) return cleanup(fail(std::move(content.error())));
        const nlohmann::json meta = {{"compression", "zstd"}, {"sha256", content->sha256}, {"size", content->size}};
        if (auto st = fs::writeFileAtomic(dir_ / (digest + kZstdMetaSuffix), meta.dump()); !st) {
            return cleanup(fail(std::move(st.error())));
        }
    }
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
        return cleanup(ioError("rename to", final_path));
    }
    const Fd dir_fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() < 0 || ::fsync(dir_fd.get()) != 0) {
        return fail(ioError("fsync directory", dir_).error().wrap(what));
    }
    return digest;
}

Result<StoredArtifact> ArtifactStore::describe(std::string_view digest) const {
    auto size = sizeOf(digest);
    if (!size) return fail(std::move(size.error()));
    StoredArtifact out{*size};
    const auto meta_path = dir_ / (std::string(digest) + kZstdMetaSuffix);
    if (!std::filesystem::exists(meta_path)) return out;
    auto text = fs::readFile(meta_path, 4096);
    if (!text) return fail(std::move(text.error()));
    const auto meta = nlohmann::json::parse(*text, nullptr, false);
    if (meta.is_discarded() || !meta.is_object() || !meta.contains("sha256") || !meta["sha256"].is_string() ||
        !security::isSha256Hex(meta["sha256"].get<std::string>()) || !meta.contains("size") ||
        !meta["size"].is_number_unsigned()) {
        return fail(SharedErrc::kParse, fmt::format("'{}' is unreadable: add the artifact again", meta_path.string()));
    }
    out.zstd = true;
    out.content_sha256 = meta["sha256"].get<std::string>();
    out.content_size = meta["size"].get<std::uint64_t>();
    return out;
}

Result<std::uint64_t> ArtifactStore::sizeOf(std::string_view digest) const {
    if (!isDigest(digest)) return fail(SharedErrc::kIo, fmt::format("'{}' is not a sha256 digest", digest));
    struct stat st {};
    if (::lstat((dir_ / digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return fail(SharedErrc::kNotFound, fmt::format("no artifact {} in {}", digest, dir_.string()));
    }
    return static_cast<std::uint64_t>(st.st_size);
}

http::Response ArtifactStore::handle(const http::Request& request) const {
    if (!request.path.starts_with(kPathPrefix)) return http::errorResponse(404, "no such endpoint");
    const std::string_view digest = std::string_view(request.path).substr(kPathPrefix.size());
    if (!isDigest(digest)) {
        return http::errorResponse(400, "an artifact is named by its sha256: 64 lowercase hex");
    }
    if (request.method != "GET" && request.method != "HEAD") {
        return http::errorResponse(405, "use GET or HEAD");
    }
    const Fd dir_fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir_fd.get() < 0) return http::errorResponse(404, "no such artifact");
    // O_NOFOLLOW: a symlink under a digest name is refused, not followed out of the store.
    // O_NONBLOCK: a FIFO under a digest name must not hang the loop; fstat then refuses it.
    const std::string name(digest);
    Fd fd(::openat(dir_fd.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
        return http::errorResponse(404, "no such artifact");
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);

    http::Response response;
    response.content_type = "application/octet-stream";
    response.headers = {{"Accept-Ranges", "bytes"}, {"ETag", fmt::format("\"{}\"", digest)}};
    std::uint64_t first = 0;
    std::uint64_t length = size;
    if (const auto field = http::findHeader(request.headers, "Range")) {
        if (const auto range = parseRange(*field, size)) {
            if (!range->satisfiable) {
                auto refused = http::errorResponse(416, "the range starts past the artifact's end");
                refused.headers.emplace_back("Content-Range", fmt::format("bytes */{}", size));
                return refused;
            }
            first = range->first;
            length = range->last - range->first + 1;
            response.status = 206;
            response.headers.emplace_back(
                "Content-Range", fmt::format("bytes {}-{}/{}", range->first, range->last, size));
        }
    }
    response.file = std::make_shared<http::FileBody>(fd.release(), first, length);
    return response;
}

}  // namespace edge::controlplane
