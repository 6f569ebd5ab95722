#pragma once
// Signing keys, signatures, hashing and encodings. Free of vendor types: the only adapter is
// security/openssl/openssl_crypto.cpp.
//
// Signatures are always in JWS form (RFC 7518): Ed25519 64 bytes, ES256 the raw r||s pair
// (2 x 32 bytes), never DER.
//
// Thread safety: key objects are immutable after construction; copies share the underlying key.
// Any method may be called concurrently from several threads.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "security/errors.hpp"
#include "shared/core/error.hpp"

namespace edge::security {

enum class Algorithm { kEd25519, kEs256 };

/// "EdDSA" / "ES256".
[[nodiscard]] std::string_view jwsAlgName(Algorithm alg);
/// Inverse of jwsAlgName; kMalformed on an unknown name.
[[nodiscard]] Result<Algorithm> algorithmFromJws(std::string_view name);
/// CLI names "ed25519" / "es256"; kKey on an unknown name.
[[nodiscard]] Result<Algorithm> algorithmFromName(std::string_view name);

/// Opaque key owned by the crypto adapter.
class KeyHandle;

class PrivateKey;

class PublicKey {
public:
    /// SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") of an Ed25519 or P-256 key; kKey otherwise.
    [[nodiscard]] static Result<PublicKey> fromPem(std::string_view pem);

    [[nodiscard]] std::string toPem() const;
    [[nodiscard]] Algorithm algorithm() const { return algorithm_; }
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (64 chars).
    [[nodiscard]] std::string keyId() const { return key_id_; }
    /// JWS-form signature over data. Any mismatch or wrong length -> kBadSignature.
    [[nodiscard]] Status verify(std::string_view data, std::string_view signature) const;

private:
    friend class PrivateKey;
    PublicKey(std::shared_ptr<const KeyHandle> handle, Algorithm alg, std::string key_id)
        : handle_(std::move(handle)), algorithm_(alg), key_id_(std::move(key_id)) {}

    std::shared_ptr<const KeyHandle> handle_;
    Algorithm algorithm_;
    std::string key_id_;
};

class PrivateKey {
public:
    [[nodiscard]] static Result<PrivateKey> generate(Algorithm alg);
    /// Unencrypted PKCS#8 PEM ("BEGIN PRIVATE KEY"); encrypted keys are refused (kKey).
    [[nodiscard]] static Result<PrivateKey> fromPem(std::string_view pem);
    [[nodiscard]] static Result<PrivateKey> loadFile(const std::filesystem::path& path);

    /// Unencrypted PKCS#8 PEM.
    [[nodiscard]] Result<std::string> toPem() const;
    /// Writes the PEM with mode 0600 atomically (tmp file, fsync, rename, fsync dir).
    [[nodiscard]] Status saveFile(const std::filesystem::path& path) const;
    [[nodiscard]] Algorithm algorithm() const { return algorithm_; }
    /// A public-only key (it does not keep the private key alive).
    [[nodiscard]] PublicKey publicKey() const;
    /// JWS-form signature over data (64 bytes for both algorithms).
    [[nodiscard]] Result<std::string> sign(std::string_view data) const;

private:
    PrivateKey(std::shared_ptr<const KeyHandle> handle, Algorithm alg)
        : handle_(std::move(handle)), algorithm_(alg) {}

    std::shared_ptr<const KeyHandle> handle_;
    Algorithm algorithm_;
};

/// 32 raw bytes.
[[nodiscard]] std::string sha256(std::string_view data);
/// 64 lowercase hex chars.
[[nodiscard]] std::string sha256Hex(std::string_view data);
/// Lowercase hex.
[[nodiscard]] std::string toHex(std::string_view bytes);
/// True for exactly 64 lowercase hex characters (how SHA-256 digests are written everywhere).
[[nodiscard]] bool isSha256Hex(std::string_view text);
/// Incremental SHA-256, for data streamed in pieces (firmware images, artifacts). One object per
/// stream; not thread-safe. Like sha256(), aborts if the crypto library cannot hash.
class Sha256Hasher {
public:
    Sha256Hasher();
    ~Sha256Hasher();
    Sha256Hasher(Sha256Hasher&& other) noexcept;
    Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
    Sha256Hasher(const Sha256Hasher&) = delete;
    Sha256Hasher& operator=(const Sha256Hasher&) = delete;

    void update(std::string_view data);
    /// 32 raw bytes over everything passed to update() since construction or the last finish();
    /// the hasher then starts over.
    [[nodiscard]] std::string finish();
    /// finish() as 64 lowercase hex chars.
    [[nodiscard]] std::string finishHex() { return toHex(finish()); }

private:
    struct State;  // defined by the crypto adapter
    std::unique_ptr<State> state_;
};
/// RFC 4648 §5 alphabet, no padding.
[[nodiscard]] std::string base64UrlEncode(std::string_view bytes);
/// Strict inverse of base64UrlEncode: padding, characters outside the alphabet, an impossible
/// length or non-zero unused trailing bits -> kMalformed.
[[nodiscard]] Result<std::string> base64UrlDecode(std::string_view text);
/// Cryptographically secure random bytes. Aborts the process if the system RNG fails: nothing
/// secure can be done without it.
[[nodiscard]] std::string randomBytes(std::size_t n);

}  // namespace edge::security
