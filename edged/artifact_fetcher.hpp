#pragma once
// Downloading artifacts (firmware images, models) from the control plane's artifact store
// (GET /v1/artifacts/<sha256>, HTTPS with a client certificate): resumable, bounded by the
// declared size, verified before anything may use the file.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "security/stream_writer.hpp"
#include "shared/core/error.hpp"
#include "shared/http/http.hpp"

namespace edge::edged {

/// Errors of artifact downloads (transport failures keep their SharedErrc kHttp / kTimeout).
enum class FetchErrc {
    kInvalidArgument = 1,  // bad digest text, empty destination
    kSize,                 // the server sent or declared more or fewer bytes than expected
    kDigest,               // the downloaded bytes do not have the expected SHA-256
    kServer,               // an error status or a response that breaks the protocol
    kIo,                   // reading or writing the partial file or the destination failed
    kBusy,                 // another download of the same destination is running
    kStopped,              // FetchOptions::stop asked to stop (the bytes so far are kept)
};
const std::error_category& fetchCategory() noexcept;
std::error_code make_error_code(FetchErrc e) noexcept;

struct FetchProgress {
    std::uint64_t done = 0;          // bytes of the artifact in hand (on disk or about to be)
    std::uint64_t total = 0;         // the declared size
    std::uint64_t resumed_from = 0;  // bytes already in the partial file when this call began
};
/// Called on the fetching thread: once at the start, then about every MiB, then at the end.
/// Rate = (done - resumed_from) / elapsed; ETA = (total - done) / rate.
using FetchProgressFn = std::function<void(const FetchProgress&)>;

struct FetchOptions {
    /// timeout: connecting and each wait for more bytes (an idle timeout, not a total).
    http::ClientOptions client;
    /// Connections per call. After a broken connection a new one resumes at once, but only if
    /// the previous one brought new bytes; otherwise the call fails and the caller retries later.
    int max_attempts = 5;
    /// Asked before each chunk is taken: true stops the transfer with kStopped (a daemon that
    /// shuts down does not wait for a whole image).
    std::function<bool()> stop;
};

/// Downloads url into dest. Bytes go to dest + ".part" first; a .part left by an earlier call
/// (a broken connection, a restart) is re-hashed and continued with "Range: bytes=<size>-"
/// (a server that answers 200 instead restarts it from zero). At most expected_size bytes are
/// ever written: a declared length that does not match, or a body that goes on (an endless
/// stream), fails with kSize. Once expected_size bytes are in hand, the .part is fsynced, its
/// SHA-256 compared with expected_sha256, and only then renamed to dest (and the directory
/// fsynced). On a digest mismatch the .part is deleted and, when the download continued bytes
/// kept from before, done once more from byte 0; else (or again) kDigest, dest untouched.
/// A .part larger than expected_size is discarded. tls: for https:// URLs (CA, client cert).
/// Blocking (network, disk, hashing): run it on a worker thread.
[[nodiscard]] Status fetchArtifact(const std::string& url, std::string_view expected_sha256,
                                   std::uint64_t expected_size, const std::filesystem::path& dest,
                                   const http::TlsClientOptions* tls,
                                   const FetchProgressFn& progress = {},
                                   const FetchOptions& options = {});

/// True when file is a regular file (not a symlink) of exactly size bytes whose SHA-256 is
/// sha256: a download a crash left complete need not be fetched again. Hashes the whole file;
/// false as soon as stop() says so (a shutdown does not wait for a large image).
[[nodiscard]] bool holdsArtifact(const std::filesystem::path& file, std::string_view sha256,
                                 std::uint64_t size, const std::function<bool()>& stop = {});

/// The transfer loop of fetchArtifact() over any StreamWriter (a .part file, a firmware slot):
/// continues at out.size() with "Range: bytes=<size>-" (a 200 answer restarts out from zero),
/// appends at most expected_size bytes in all, cuts off a body that goes on (kSize), resumes
/// after a broken connection that brought new bytes (options.max_attempts), and returns once
/// out.size() == expected_size, everything flushed to out. out is neither finished nor checked:
/// its digest is the caller's to compare (out.finish()). A failure of out itself (write, sync)
/// is kIo. Blocking.
[[nodiscard]] Status fetchInto(const std::string& url, std::uint64_t expected_size,
                               security::StreamWriter& out, const http::TlsClientOptions* tls,
                               const FetchProgressFn& progress = {},
                               const FetchOptions& options = {});

/// What a bundle manifest says about one artifact.
struct ArtifactRef {
    std::string url;
    std::string sha256;
    std::uint64_t size = 0;
};

/// Seam for the update flows: tests substitute a fake.
class ArtifactFetcher {
public:
    virtual ~ArtifactFetcher() = default;
    /// Contract of fetchArtifact(); blocking.
    [[nodiscard]] virtual Status fetch(const ArtifactRef& artifact,
                                       const std::filesystem::path& dest,
                                       const FetchProgressFn& progress) = 0;
    /// Contract of fetchInto() (artifact.sha256 is not checked: out.finish() gives the digest).
    [[nodiscard]] virtual Status stream(const ArtifactRef& artifact, security::StreamWriter& out,
                                        const FetchProgressFn& progress) = 0;
};

/// ArtifactFetcher over HTTP(S) with fetchArtifact(). Thread-safe (no mutable state).
class HttpArtifactFetcher final : public ArtifactFetcher {
public:
    explicit HttpArtifactFetcher(std::optional<http::TlsClientOptions> tls,
                                 FetchOptions options = {})
        : tls_(std::move(tls)), options_(std::move(options)) {}
    [[nodiscard]] Status fetch(const ArtifactRef& artifact, const std::filesystem::path& dest,
                               const FetchProgressFn& progress) override {
        return fetchArtifact(artifact.url, artifact.sha256, artifact.size, dest,
                             tls_ ? &*tls_ : nullptr, progress, options_);
    }
    [[nodiscard]] Status stream(const ArtifactRef& artifact, security::StreamWriter& out,
                                const FetchProgressFn& progress) override {
        return fetchInto(artifact.url, artifact.size, out, tls_ ? &*tls_ : nullptr, progress,
                         options_);
    }

private:
    std::optional<http::TlsClientOptions> tls_;
    FetchOptions options_;
};

}  // namespace edge::edged

template <>
struct std::is_error_code_enum<edge::edged::FetchErrc> : std::true_type {};
