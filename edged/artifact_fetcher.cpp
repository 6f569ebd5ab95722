#include "edged/artifact_fetcher.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <optional>

#include "security/crypto.hpp"
#include "shared/core/fs.hpp"
#include "shared/core/log.hpp"
#include "shared/core/text.hpp"
#include "security/stream_writer.hpp"

namespace edge::edged {

namespace {

class FetchCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "edge.fetch"; }
    std::string message(int c) const override {
        switch (static_cast<FetchErrc>(c)) {
            case FetchErrc::kInvalidArgument:
                return "invalid argument";
            case FetchErrc::kSize:
                return "artifact size mismatch";
            case FetchErrc::kDigest:
                return "artifact digest mismatch";
            case FetchErrc::kServer:
                return "artifact server error";
            case FetchErrc::kIo:
                return "i/o error";
            case FetchErrc::kBusy:
                return "download already running";
            case FetchErrc::kStopped:
                return "download stopped";
        }
        return "unknown fetch error";
    }
};

/// Progress is reported about this often.
constexpr std::size_t kProgressBytes = 1u << 20;

std::unexpected<Error> ioError(std::string_view what, const std::filesystem::path& path,
                               int err = errno) {
    return fail(FetchErrc::kIo,
                fmt::format("{} '{}': {}", what, path.string(), std::strerror(err)));
}

std::optional<std::uint64_t> parseNumber(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

struct ContentRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    std::optional<std::uint64_t> total;  // "*": unknown
};

/// "bytes first-last/total".
std::optional<ContentRange> parseContentRange(std::string_view text) {
    constexpr std::string_view kUnit = "bytes ";
    if (!text.starts_with(kUnit)) return std::nullopt;
    text.remove_prefix(kUnit.size());
    const auto dash = text.find('-');
    const auto slash = text.find('/');
    if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
        return std::nullopt;
    }
    ContentRange out;
    const auto first = parseNumber(text.substr(0, dash));
    const auto last = parseNumber(text.substr(dash + 1, slash - dash - 1));
    if (!first || !last || *last < *first) return std::nullopt;
    out.first = *first;
    out.last = *last;
    const auto total_text = text.substr(slash + 1);
    if (total_text != "*") {
        out.total = parseNumber(total_text);
        if (!out.total) return std::nullopt;
    }
    return out;
}

bool isDigest(std::string_view text) { return security::isSha256Hex(text); }

/// A StreamWriter failure (SharedErrc::kIo) as this module's kIo; other errors unchanged.
Error asFetchError(Error err) {
    if (err.code() == SharedErrc::kIo) return Error(FetchErrc::kIo, err.message());
    return err;
}

/// The partial file: an open, locked descriptor and the StreamWriter that continues it.
class PartFile {
public:
    explicit PartFile(std::filesystem::path path) : path_(std::move(path)) {}
    ~PartFile() {
        writer_.reset();  // before the descriptor it writes
        if (fd_ >= 0) ::close(fd_);
    }
    PartFile(const PartFile&) = delete;
    PartFile& operator=(const PartFile&) = delete;

    /// Opens (creating) and locks the file, then hashes what an earlier run left in it (all of
    /// it, or nothing when it is larger than the artifact: not ours, or an older version).
    Status open(std::uint64_t expected_size) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd_ < 0) return ioError("open", path_);
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                return fail(
                    FetchErrc::kBusy,
                    fmt::format("'{}' is being downloaded by someone else", path_.string()));
            }
            return ioError("lock", path_);
        }
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return ioError("stat", path_);
        if (!S_ISREG(st.st_mode)) {
            return fail(FetchErrc::kIo, fmt::format("'{}' is not a regular file", path_.string()));
        }
        writer_ = std::make_unique<security::StreamWriter>(fd_, path_.string());
        const auto size = static_cast<std::uint64_t>(st.st_size);
        if (size > expected_size) return writer_->restart();
        if (auto ok = writer_->adopt(size); !ok) return ok;
        // Shrank under us: continue from what is there.
        if (writer_->size() != size && ::ftruncate(fd_, static_cast<off_t>(writer_->size())) != 0) {
            return ioError("truncate", path_);
        }
        return {};
    }

    [[nodiscard]] security::StreamWriter& writer() { return *writer_; }

private:
    std::filesystem::path path_;
    int fd_ = -1;
    std::unique_ptr<security::StreamWriter> writer_;
};

Status fsyncDirectory(const std::filesystem::path& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ioError("open directory", dir);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return ioError("fsync directory", dir, err);
    return {};
}

/// Checks a 2xx head against what the part file needs next; may restart the part file (a 200
/// to a range request). Errors are final (no retry).
Status acceptHead(const http::StreamResult& head, security::StreamWriter& part,
                  std::uint64_t expected_size) {
    const auto length_field = http::findHeader(head.headers, "Content-Length");
    const auto length = length_field ? parseNumber(*length_field) : std::nullopt;
    if (head.status == 200) {
        if (part.size() != 0) {
            if (auto ok = part.restart(); !ok) return fail(asFetchError(ok.error()));
        }
    } else if (head.status == 206) {
        const auto field = http::findHeader(head.headers, "Content-Range");
        const auto range = field ? parseContentRange(*field) : std::nullopt;
        if (!range) {
            return fail(FetchErrc::kServer,
                        fmt::format("206 with a bad Content-Range '{}'",
                                    untrustedText(field.value_or(""))));
        }
        if (range->first != part.size()) {
            return fail(FetchErrc::kServer,
                        fmt::format("asked for bytes from {}, the server sent from {}", part.size(),
                                    range->first));
        }
        if ((range->total && *range->total != expected_size) || range->last >= expected_size) {
            return fail(FetchErrc::kSize,
                        fmt::format("the server has '{}', the artifact should have {} bytes",
                                    untrustedText(*field), expected_size));
        }
    } else {
        return fail(FetchErrc::kServer, fmt::format("unexpected status {}", head.status));
    }
    if (length_field && (!length || *length != expected_size - part.size())) {
        return fail(FetchErrc::kSize,
                    fmt::format("the server declares {} bytes from offset {}, the artifact "
                                "has {} bytes",
                                untrustedText(*length_field), part.size(), expected_size));
    }
    return {};
}

}  // namespace

const std::error_category& fetchCategory() noexcept {
    static const FetchCategory category;
    return category;
}

std::error_code make_error_code(FetchErrc e) noexcept {
    return {static_cast<int>(e), fetchCategory()};
}

Status fetchInto(const std::string& url, std::uint64_t expected_size, security::StreamWriter& part,
                 const http::TlsClientOptions* tls, const FetchProgressFn& progress,
                 const FetchOptions& options) {
    const std::uint64_t resumed_from = part.size();
    std::uint64_t reported = resumed_from;  // progress is reported about every kProgressBytes
    const auto report = [&] {
        if (progress) progress(FetchProgress{part.size(), expected_size, resumed_from});
    };
    report();
    if (part.size() > expected_size) {
        return fail(FetchErrc::kInvalidArgument,
                    fmt::format("{} bytes in hand, more than the artifact's {}", part.size(),
                                expected_size));
    }

    for (int attempt = 1; part.size() < expected_size; ++attempt) {
        const std::uint64_t start = part.size();
        http::Headers headers;
        if (start > 0) headers.emplace_back("Range", fmt::format("bytes={}-", start));
        std::optional<Error> own_error;  // from acceptHead or the sink: final, never retried
        const auto on_head = [&](const http::StreamResult& head) -> Status {
            if (auto ok = acceptHead(head, part, expected_size); !ok) {
                own_error = ok.error();
                return ok;
            }
            return {};
        };
        const auto sink = [&](std::string_view chunk) -> Status {
            if (options.stop && options.stop()) {
                own_error = Error(FetchErrc::kStopped, "stopped by the caller");
                return fail(*own_error);
            }
            const std::uint64_t room = expected_size - part.size();
            const bool over = chunk.size() > room;
            if (auto ok = part.append(over ? chunk.substr(0, static_cast<std::size_t>(room)) : chunk);
                !ok) {
                own_error = asFetchError(ok.error());
                return ok;
            }
            if (over) {
                own_error = Error(FetchErrc::kSize,
                                  fmt::format("the server sent more than the declared {} bytes; "
                                              "cut off",
                                              expected_size));
                return fail(*own_error);
            }
            if (part.size() - reported >= kProgressBytes) {
                reported = part.size();
                report();
            }
            return {};
        };
        // The transport limit is the whole size (a 200 restart needs it) plus one byte, so that
        // the sink sees a body that goes on and cuts it at the exact end itself.
        const std::uint64_t max_body = expected_size + (expected_size < UINT64_MAX ? 1 : 0);
        // The body is read straight into the writer's staging buffer (no copy in append()).
        const http::BodyBuffer lend = [&part](std::size_t max) { return part.prepare(max); };
        auto result =
            http::downloadTo(url, headers, tls, options.client, sink, max_body, on_head, lend);
        // What arrived is a prefix of the artifact as far as anyone knows: keep it for resume.
        if (auto ok = part.flush(); !ok && !own_error) own_error = asFetchError(ok.error());
        report();
        if (own_error) return fail(std::move(*own_error));
        if (result && result->status == 416 && start > 0) {
            // The server's file ends before our bytes do: not the same artifact. Start over.
            if (auto ok = part.restart(); !ok) return fail(asFetchError(ok.error()));
        } else if (result && (result->status < 200 || result->status >= 300)) {
            return fail(FetchErrc::kServer, fmt::format("the server answered {}: {}", result->status,
                                                        untrustedText(result->error_body, 512)));
        } else if (result && part.size() < expected_size) {
            result = fail(FetchErrc::kSize, fmt::format("the body ended after {} of {} bytes",
                                                        part.size(), expected_size));
        }
        if (!result) {
            const bool progressed = part.size() > start;
            if (!progressed || attempt >= options.max_attempts) {
                return fail(
                    std::move(result.error())
                        .wrap(fmt::format("{} of {} bytes in hand", part.size(), expected_size)));
            }
        } else if (attempt >= options.max_attempts && part.size() < expected_size) {
            return fail(FetchErrc::kServer, "the server kept restarting the download");
        }
    }
    return {};
}

bool holdsArtifact(const std::filesystem::path& file, std::string_view sha256, std::uint64_t size,
                   const std::function<bool()>& stop) {
    const fs::UniqueFd owned(::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    const int fd = owned.get();
    if (fd < 0) return false;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != size) {
        return false;
    }
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    std::string buf(1u << 20, '\0');
    security::Sha256Hasher hasher;
    std::uint64_t done = 0;
    while (done < size) {
        if (stop && stop()) return false;
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        hasher.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
        done += static_cast<std::uint64_t>(n);
    }
    return done == size && hasher.finishHex() == sha256;
}

Status fetchArtifact(const std::string& url, std::string_view expected_sha256,
                     std::uint64_t expected_size, const std::filesystem::path& dest,
                     const http::TlsClientOptions* tls, const FetchProgressFn& progress,
                     const FetchOptions& options) {
    const std::string what = fmt::format("fetch {} into '{}'", url, dest.string());
    const auto failed = [&](Error err) { return fail(std::move(err).wrap(what)); };
    if (!isDigest(expected_sha256)) {
        return fail(FetchErrc::kInvalidArgument,
                    fmt::format("{}: the expected sha256 '{}' is not 64 lowercase hex", what,
                                expected_sha256));
    }
    if (dest.empty() || !dest.has_filename()) {
        return fail(FetchErrc::kInvalidArgument, fmt::format("{}: no destination file", what));
    }
    const std::filesystem::path part_path = dest.string() + ".part";
    std::uint64_t resumed_from = 0;
    for (bool again = false;; again = true) {
        PartFile part(part_path);
        if (auto ok = part.open(expected_size); !ok) return failed(asFetchError(ok.error()));
        resumed_from = part.writer().size();
        if (auto ok = fetchInto(url, expected_size, part.writer(), tls, progress, options); !ok) {
            return failed(std::move(ok.error()));
        }
        auto digest = part.writer().finish();
        if (!digest) return failed(asFetchError(digest.error()));
        if (*digest == expected_sha256) break;
        ::unlink(part_path.c_str());
        if (resumed_from > 0 && !again) {
            // The kept bytes were not the artifact's (a power cut can leave stale blocks in a
            // file that was not synced yet): once more from byte 0 before blaming the server.
            log::warn("{}: the {} bytes downloaded have sha256 {}, expected {}; the {} bytes "
                      "kept from before were not right: downloading again from byte 0",
                      what, expected_size, *digest, expected_sha256, resumed_from);
            continue;
        }
        return failed(Error(FetchErrc::kDigest,
                            fmt::format("the {} bytes downloaded have sha256 {}, expected {}; "
                                        "the partial file was removed",
                                        expected_size, *digest, expected_sha256)));
    }
    if (::rename(part_path.c_str(), dest.c_str()) != 0) {
        return failed(ioError("rename to", dest).error());
    }
    const auto dir = dest.has_parent_path() ? dest.parent_path() : std::filesystem::path(".");
    if (auto ok = fsyncDirectory(dir); !ok) return failed(std::move(ok.error()));
    if (progress) progress(FetchProgress{expected_size, expected_size, resumed_from});  // in place
    return {};
}

}  // namespace edge::edged
