#pragma once
// ArtifactStore: the control plane's content-addressed artifact directory and its HTTP endpoint
// GET|HEAD /v1/artifacts/<sha256> (issue 6). Each artifact is a regular file named by the
// lowercase hex SHA-256 of its content; nothing else in the directory is ever served.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "controlplane/fleet.hpp"
#include "shared/core/error.hpp"
#include "shared/http/http.hpp"

namespace edge::controlplane {

/// Thread-safe: add() and handle() may run concurrently (add() writes only a temporary file
/// and publishes it with an atomic rename).
class ArtifactStore {
public:
    static constexpr std::string_view kPathPrefix = "/v1/artifacts/";

    /// dir is created by the first add() when missing.
    explicit ArtifactStore(std::filesystem::path dir);

    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

    /// Copies the file at source into the store while hashing it (temporary file in dir, fsync,
    /// rename to the digest, fsync dir) and returns its digest. A zstd file (by its magic) is
    /// decompressed once to record its content digest and size; a corrupt one is refused. Adding content already stored
    /// is harmless and returns the same digest. Errors (kIo) name the file.
    [[nodiscard]] Result<std::string> add(const std::filesystem::path& source) const;

    /// Whether a regular file for digest is stored (false for anything not a digest).
    [[nodiscard]] bool contains(std::string_view digest) const { return sizeOf(digest).has_value(); }
    /// The size of the regular file stored for digest; kNotFound otherwise (kIo for a non-digest).
    [[nodiscard]] Result<std::uint64_t> sizeOf(std::string_view digest) const;
    /// sizeOf, and for a zstd file what it decompresses to (recorded by add() in
    /// "<digest>.zst.json", which is never served: it is not a digest).
    [[nodiscard]] Result<StoredArtifact> describe(std::string_view digest) const;

    /// Serves request.path == kPathPrefix + <64 lowercase hex>: GET streams the file (200, or
    /// 206 with Content-Range for "Range: bytes=N-", "bytes=N-M" or "bytes=-N"; 416 with
    /// "Content-Range: bytes */size" when the range starts past the end), HEAD gives the same
    /// fields without the body. A path under the prefix that is not exactly a digest is 400;
    /// an unknown digest, a symlink or anything but a regular file under that name is 404;
    /// other methods are 405; other paths 404. Unparseable or multi-range Range fields are
    /// ignored (200, whole file), as RFC 9110 allows. Only opens files directly in dir, never
    /// through a symlink.
    [[nodiscard]] http::Response handle(const http::Request& request) const;

    /// True for exactly 64 lowercase hex characters.
    [[nodiscard]] static bool isDigest(std::string_view text);

private:
    std::filesystem::path dir_;
};

}  // namespace edge::controlplane
