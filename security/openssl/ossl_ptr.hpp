#pragma once
// unique_ptr owners for OpenSSL objects and the error queue's text, for the .cpp files that use
// OpenSSL directly (never include from a public header: OpenSSL stays behind security/crypto.hpp).
#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>

namespace edge::security::ossl {

template <auto Free>
struct Deleter {
    template <class T>
    void operator()(T* p) const {
        Free(p);
    }
};
using BioPtr = std::unique_ptr<BIO, Deleter<&BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<&EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<&EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<&EVP_MD_CTX_free>>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, Deleter<&EVP_CIPHER_CTX_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<&ECDSA_SIG_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<&BN_free>>;

/// The first queued OpenSSL error as text; empties the thread's error queue.
inline std::string drainErrors() {
    const unsigned long code = ERR_get_error();
    std::string text = "no details";
    if (code != 0) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        text = buf;
    }
    ERR_clear_error();
    return text;
}

/// Owns one EVP_PKEY for the lifetime of a parsed key. Immutable after construction: OpenSSL 3
/// allows concurrent sign and verify with the same EVP_PKEY.
class PkeyHolder {
public:
    explicit PkeyHolder(EVP_PKEY* pkey) : pkey_(pkey) {}
    PkeyHolder(const PkeyHolder&) = delete;
    PkeyHolder& operator=(const PkeyHolder&) = delete;
    ~PkeyHolder() { EVP_PKEY_free(pkey_); }
    [[nodiscard]] EVP_PKEY* get() const { return pkey_; }

private:
    EVP_PKEY* pkey_;
};

}  // namespace edge::security::ossl
