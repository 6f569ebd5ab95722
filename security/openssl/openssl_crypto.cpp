// OpenSSL 3 adapter for security/crypto.hpp: the only file that sees OpenSSL key types.
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "security/crypto.hpp"

#include "security/openssl/ossl_ptr.hpp"

namespace edge::security {

/// Owns one EVP_PKEY (security/openssl/ossl_ptr.hpp).
class KeyHandle : public ossl::PkeyHolder {
public:
    using PkeyHolder::PkeyHolder;
};

namespace {

using ossl::BignumPtr;
using ossl::BioPtr;
using ossl::Deleter;
using ossl::EcdsaSigPtr;
using ossl::MdCtxPtr;
using ossl::PkeyPtr;

constexpr std::size_t kMaxPemBytes = 64 * 1024;
constexpr std::size_t kSignatureBytes = 64;
constexpr int kEs256CoordBytes = 32;

using ossl::drainErrors;

// OpenSSL wants a non-null pointer even for empty input.
const unsigned char* bytes(std::string_view s) {
    static const unsigned char kEmpty = 0;
    return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* mutableBytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// Refuses encrypted PEM instead of prompting on the terminal.
int noPassword(char*, int, int, void*) { return -1; }

Result<BioPtr> readBio(std::string_view pem) {
    if (pem.size() > kMaxPemBytes) return fail(SecurityErrc::kKey, "PEM text too large");
    BioPtr bio(BIO_new_mem_buf(bytes(pem), static_cast<int>(pem.size())));
    if (!bio) return fail(SecurityErrc::kCrypto, "BIO_new_mem_buf: " + drainErrors());
    return bio;
}

std::string bioText(BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    return len > 0 ? std::string(data, static_cast<std::size_t>(len)) : std::string();
}

Result<Algorithm> detectAlgorithm(EVP_PKEY* pkey) {
    if (EVP_PKEY_is_a(pkey, "ED25519")) return Algorithm::kEd25519;
    if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[80] = {};
        std::size_t len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &len) == 1) {
            const std::string_view name(group, len);
            if (name == "prime256v1" || name == "P-256") return Algorithm::kEs256;
            return fail(SecurityErrc::kKey, "unsupported EC curve '" + std::string(name) + "' (only P-256)");
        }
        ERR_clear_error();
        return fail(SecurityErrc::kKey, "EC key without a named curve");
    }
    return fail(SecurityErrc::kKey, "unsupported key type (expected Ed25519 or EC P-256)");
}

Result<std::string> publicDer(EVP_PKEY* pkey) {
    const int len = i2d_PUBKEY(pkey, nullptr);
    if (len <= 0) return fail(SecurityErrc::kCrypto, "i2d_PUBKEY: " + drainErrors());
    std::string der(static_cast<std::size_t>(len), '\0');
    unsigned char* out = mutableBytes(der);
    if (i2d_PUBKEY(pkey, &out) != len) return fail(SecurityErrc::kCrypto, "i2d_PUBKEY: " + drainErrors());
    return der;
}

// ECDSA: OpenSSL speaks DER SEQUENCE{r, s}; JWS wants fixed-width r||s.
Result<std::string> derToRaw(std::string_view der) {
    const unsigned char* in = bytes(der);
    EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &in, static_cast<long>(der.size())));
    if (!sig) return fail(SecurityErrc::kCrypto, "d2i_ECDSA_SIG: " + drainErrors());
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    std::string raw(kSignatureBytes, '\0');
    if (BN_bn2binpad(r, mutableBytes(raw), kEs256CoordBytes) != kEs256CoordBytes ||
        BN_bn2binpad(s, mutableBytes(raw) + kEs256CoordBytes, kEs256CoordBytes) != kEs256CoordBytes) {
        return fail(SecurityErrc::kCrypto, "ECDSA signature component too large");
    }
    return raw;
}

Result<std::string> rawToDer(std::string_view raw) {
    BignumPtr r(BN_bin2bn(bytes(raw), kEs256CoordBytes, nullptr));
    BignumPtr s(BN_bin2bn(bytes(raw) + kEs256CoordBytes, kEs256CoordBytes, nullptr));
    EcdsaSigPtr sig(ECDSA_SIG_new());
    if (!r || !s || !sig) return fail(SecurityErrc::kCrypto, "ECDSA_SIG: " + drainErrors());
    if (ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
        return fail(SecurityErrc::kCrypto, "ECDSA_SIG_set0: " + drainErrors());
    }
    (void)r.release();  // owned by sig now
    (void)s.release();
    const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
    if (len <= 0) return fail(SecurityErrc::kCrypto, "i2d_ECDSA_SIG: " + drainErrors());
    std::string der(static_cast<std::size_t>(len), '\0');
    unsigned char* out = mutableBytes(der);
    if (i2d_ECDSA_SIG(sig.get(), &out) != len) {
        return fail(SecurityErrc::kCrypto, "i2d_ECDSA_SIG: " + drainErrors());
    }
    return der;
}

const EVP_MD* digestFor(Algorithm alg) {
    // Ed25519 hashes internally and must be given no digest.
    return alg == Algorithm::kEs256 ? EVP_sha256() : nullptr;
}

std::shared_ptr<const KeyHandle> own(PkeyPtr pkey) {
    return std::make_shared<KeyHandle>(pkey.release());
}

}  // namespace

// ---- PublicKey ----

Result<PublicKey> PublicKey::fromPem(std::string_view pem) {
    auto bio = readBio(pem);
    if (!bio) return fail(std::move(bio.error()));
    PkeyPtr pkey(PEM_read_bio_PUBKEY(bio->get(), nullptr, &noPassword, nullptr));
    if (!pkey) return fail(SecurityErrc::kKey, "not a PEM public key: " + drainErrors());
    auto alg = detectAlgorithm(pkey.get());
    if (!alg) return fail(std::move(alg.error()));
    auto der = publicDer(pkey.get());
    if (!der) return fail(std::move(der.error()));
    return PublicKey(own(std::move(pkey)), *alg, sha256Hex(*der));
}

std::string PublicKey::toPem() const {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), handle_->get()) != 1) {
        ERR_clear_error();
        return {};
    }
    return bioText(bio.get());
}

Status PublicKey::verify(std::string_view data, std::string_view signature) const {
    if (signature.size() != kSignatureBytes) {
        return fail(SecurityErrc::kBadSignature, "signature must be 64 bytes, got " +
                                                     std::to_string(signature.size()));
    }
    std::string der;
    std::string_view sig = signature;
    if (algorithm_ == Algorithm::kEs256) {
        auto converted = rawToDer(signature);
        if (!converted) return fail(SecurityErrc::kBadSignature, converted.error().message());
        der = std::move(*converted);
        sig = der;
    }
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, digestFor(algorithm_), nullptr,
                                     handle_->get()) != 1) {
        return fail(SecurityErrc::kCrypto, "EVP_DigestVerifyInit: " + drainErrors());
    }
    const int rc = EVP_DigestVerify(ctx.get(), bytes(sig), sig.size(), bytes(data), data.size());
    ERR_clear_error();
    if (rc != 1) return fail(SecurityErrc::kBadSignature, "signature does not verify");
    return {};
}

// ---- PrivateKey ----

Result<PrivateKey> PrivateKey::generate(Algorithm alg) {
    PkeyPtr pkey(alg == Algorithm::kEd25519
                     ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                     : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", const_cast<char*>("P-256")));
    if (!pkey) return fail(SecurityErrc::kCrypto, "key generation failed: " + drainErrors());
    return PrivateKey(own(std::move(pkey)), alg);
}

Result<PrivateKey> PrivateKey::fromPem(std::string_view pem) {
    auto bio = readBio(pem);
    if (!bio) return fail(std::move(bio.error()));
    PkeyPtr pkey(PEM_read_bio_PrivateKey(bio->get(), nullptr, &noPassword, nullptr));
    if (!pkey) {
        return fail(SecurityErrc::kKey,
                    "not an unencrypted PEM private key: " + drainErrors());
    }
    auto alg = detectAlgorithm(pkey.get());
    if (!alg) return fail(std::move(alg.error()));
    return PrivateKey(own(std::move(pkey)), *alg);
}

Result<std::string> PrivateKey::toPem() const {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PKCS8PrivateKey(bio.get(), handle_->get(), nullptr, nullptr, 0,
                                              nullptr, nullptr) != 1) {
        return fail(SecurityErrc::kCrypto, "PEM_write_bio_PKCS8PrivateKey: " + drainErrors());
    }
    return bioText(bio.get());
}

PublicKey PrivateKey::publicKey() const {
    auto der = publicDer(handle_->get());
    if (der) {
        const unsigned char* in = bytes(*der);
        PkeyPtr pub(d2i_PUBKEY(nullptr, &in, static_cast<long>(der->size())));
        if (pub) return PublicKey(own(std::move(pub)), algorithm_, sha256Hex(*der));
    }
    // Only on allocation failure: the private handle verifies just as well.
    ERR_clear_error();
    return PublicKey(handle_, algorithm_, der ? sha256Hex(*der) : std::string());
}

Result<std::string> PrivateKey::sign(std::string_view data) const {
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, digestFor(algorithm_), nullptr,
                                   handle_->get()) != 1) {
        return fail(SecurityErrc::kCrypto, "EVP_DigestSignInit: " + drainErrors());
    }
    std::size_t len = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &len, bytes(data), data.size()) != 1) {
        return fail(SecurityErrc::kCrypto, "EVP_DigestSign: " + drainErrors());
    }
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), mutableBytes(sig), &len, bytes(data), data.size()) != 1) {
        return fail(SecurityErrc::kCrypto, "EVP_DigestSign: " + drainErrors());
    }
    sig.resize(len);
    if (algorithm_ == Algorithm::kEs256) return derToRaw(sig);
    if (sig.size() != kSignatureBytes) {
        return fail(SecurityErrc::kCrypto, "unexpected Ed25519 signature length");
    }
    return sig;
}

// ---- hashing and randomness ----

std::string sha256(std::string_view data) {
    std::string out(EVP_MAX_MD_SIZE, '\0');
    unsigned int len = 0;
    if (EVP_Digest(bytes(data), data.size(), mutableBytes(out), &len, EVP_sha256(), nullptr) != 1) {
        // A linked OpenSSL that cannot hash is a broken installation, not an input error.
        std::fprintf(stderr, "fatal: SHA-256 failed: %s\n", drainErrors().c_str());
        std::abort();
    }
    out.resize(len);
    return out;
}

std::string sha256Hex(std::string_view data) { return toHex(sha256(data)); }

struct Sha256Hasher::State {
    MdCtxPtr ctx{EVP_MD_CTX_new()};
};

namespace {
[[noreturn]] void hashFailed() {
    std::fprintf(stderr, "fatal: SHA-256 failed: %s\n", drainErrors().c_str());
    std::abort();
}
}  // namespace

Sha256Hasher::Sha256Hasher() : state_(std::make_unique<State>()) {
    if (!state_->ctx || EVP_DigestInit_ex(state_->ctx.get(), EVP_sha256(), nullptr) != 1) hashFailed();
}

Sha256Hasher::~Sha256Hasher() = default;
Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept = default;
Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept = default;

void Sha256Hasher::update(std::string_view data) {
    if (EVP_DigestUpdate(state_->ctx.get(), data.data(), data.size()) != 1) hashFailed();
}

std::string Sha256Hasher::finish() {
    std::string out(EVP_MAX_MD_SIZE, '\0');
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(state_->ctx.get(), mutableBytes(out), &len) != 1 ||
        EVP_DigestInit_ex(state_->ctx.get(), EVP_sha256(), nullptr) != 1) {
        hashFailed();
    }
    out.resize(len);
    return out;
}

std::string randomBytes(std::size_t n) {
    std::string out(n, '\0');
    std::size_t done = 0;
    while (done < n) {
        const int chunk = static_cast<int>(std::min<std::size_t>(n - done, INT_MAX));
        if (RAND_bytes(mutableBytes(out) + done, chunk) != 1) {
            std::fprintf(stderr, "fatal: the system random generator failed: %s\n",
                         drainErrors().c_str());
            std::abort();
        }
        done += static_cast<std::size_t>(chunk);
    }
    return out;
}

}  // namespace edge::security
