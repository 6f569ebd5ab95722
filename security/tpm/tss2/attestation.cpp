// Verifier side of TPM attestation: OpenSSL 3 for the cryptography, libtss2-mu for the TPM wire
// structures. Nothing here talks to a TPM.
#include "security/tpm/attestation.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tpm2_types.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <string_view>

#include "security/openssl/ossl_ptr.hpp"

namespace edge::security::tpm {

/// One parsed P-256 public key. Immutable; OpenSSL 3 allows concurrent verifies with it.
class AkKey : public ossl::PkeyHolder {
public:
    using PkeyHolder::PkeyHolder;
};

namespace {

using ossl::BioPtr;
using ossl::CipherCtxPtr;
using ossl::Deleter;
using ossl::EcdsaSigPtr;
using ossl::MdCtxPtr;
using ossl::PkeyCtxPtr;
using ossl::PkeyPtr;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<&OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<&OSSL_PARAM_free>>;
using ossl::BignumPtr;

constexpr std::size_t kP256CoordBytes = 32;
constexpr std::size_t kMaxCredentialSecret = 32;  // digest size of the EK's name algorithm
constexpr std::size_t kMaxPcrIndex = 23;

using ossl::drainErrors;

std::unexpected<Error> cryptoFail(std::string_view what) {
    return fail(TpmErrc::kCrypto, std::string(what) + ": " + drainErrors());
}

// OpenSSL wants a non-null pointer even for empty input.
const unsigned char* ptr(const Bytes& b) {
    static const unsigned char kEmpty = 0;
    return b.empty() ? &kEmpty : b.data();
}

void putU16(Bytes& out, std::size_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

void putU32(Bytes& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<std::uint8_t>(v >> shift));
}

const EVP_MD* digestFor(TPMI_ALG_HASH alg) {
    switch (alg) {
        case TPM2_ALG_SHA1:
            return EVP_sha1();
        case TPM2_ALG_SHA256:
            return EVP_sha256();
        case TPM2_ALG_SHA384:
            return EVP_sha384();
        case TPM2_ALG_SHA512:
            return EVP_sha512();
        default:
            return nullptr;
    }
}

/// A marshalled TPM2B_PUBLIC: the TPMT_PUBLIC must fill its size exactly and nothing may follow.
Result<TPMT_PUBLIC> parsePublic(const Bytes& bytes) {
    if (bytes.size() < 2)
        return fail(TpmErrc::kMalformed, "TPM2B_PUBLIC: shorter than its size field");
    const std::size_t size = (std::size_t{bytes[0]} << 8) | bytes[1];
    if (size == 0 || size + 2 != bytes.size()) {
        return fail(TpmErrc::kMalformed, "TPM2B_PUBLIC: size field " + std::to_string(size) +
                                             " does not match " + std::to_string(bytes.size()) +
                                             " bytes");
    }
    TPMT_PUBLIC pub{};
    std::size_t offset = 0;
    const TSS2_RC rc = Tss2_MU_TPMT_PUBLIC_Unmarshal(bytes.data() + 2, size, &offset, &pub);
    if (rc != TSS2_RC_SUCCESS || offset != size) {
        return fail(TpmErrc::kMalformed, "TPM2B_PUBLIC: TPMT_PUBLIC does not unmarshal");
    }
    return pub;
}

Result<TPMS_ATTEST> parseAttest(const Bytes& attest) {
    if (attest.empty()) return fail(TpmErrc::kMalformed, "TPMS_ATTEST is empty");
    TPMS_ATTEST out{};
    std::size_t offset = 0;
    const TSS2_RC rc = Tss2_MU_TPMS_ATTEST_Unmarshal(attest.data(), attest.size(), &offset, &out);
    if (rc != TSS2_RC_SUCCESS) {
        return fail(TpmErrc::kMalformed, "TPMS_ATTEST does not unmarshal");
    }
    if (offset != attest.size()) {
        return fail(
            TpmErrc::kMalformed,
            "TPMS_ATTEST followed by " + std::to_string(attest.size() - offset) + " extra bytes");
    }
    if (out.magic != TPM2_GENERATED_VALUE)
        return fail(TpmErrc::kNotAQuote, "magic is not TPM_GENERATED_VALUE");
    if (out.type != TPM2_ST_ATTEST_QUOTE)
        return fail(TpmErrc::kNotAQuote, "attestation type is not a quote");
    return out;
}

Result<Bytes> parseEcdsaSignatureToDer(const Bytes& signature) {
    if (signature.empty()) return fail(TpmErrc::kMalformed, "TPMT_SIGNATURE is empty");
    TPMT_SIGNATURE sig{};
    std::size_t offset = 0;
    const TSS2_RC rc =
        Tss2_MU_TPMT_SIGNATURE_Unmarshal(signature.data(), signature.size(), &offset, &sig);
    if (rc != TSS2_RC_SUCCESS || offset != signature.size()) {
        return fail(TpmErrc::kMalformed, "TPMT_SIGNATURE does not unmarshal");
    }
    if (sig.sigAlg != TPM2_ALG_ECDSA || sig.signature.ecdsa.hash != TPM2_ALG_SHA256) {
        return fail(TpmErrc::kBadSignature, "signature is not ECDSA-SHA256");
    }
    const auto& r = sig.signature.ecdsa.signatureR;
    const auto& s = sig.signature.ecdsa.signatureS;
    if (r.size == 0 || s.size == 0 || r.size > kP256CoordBytes || s.size > kP256CoordBytes) {
        return fail(TpmErrc::kBadSignature, "ECDSA r or s has the wrong size");
    }
    EcdsaSigPtr ecdsa(ECDSA_SIG_new());
    BignumPtr bn_r(BN_bin2bn(r.buffer, r.size, nullptr));
    BignumPtr bn_s(BN_bin2bn(s.buffer, s.size, nullptr));
    if (!ecdsa || !bn_r || !bn_s || ECDSA_SIG_set0(ecdsa.get(), bn_r.get(), bn_s.get()) != 1) {
        return cryptoFail("ECDSA_SIG");
    }
    bn_r.release();  // owned by ecdsa now
    bn_s.release();
    const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
    if (len <= 0) return cryptoFail("i2d_ECDSA_SIG");
    Bytes der(static_cast<std::size_t>(len));
    unsigned char* p = der.data();
    if (i2d_ECDSA_SIG(ecdsa.get(), &p) != len) return cryptoFail("i2d_ECDSA_SIG");
    return der;
}

Result<PkeyPtr> p256Key(const TPMS_ECC_POINT& point) {
    if (point.x.size > kP256CoordBytes || point.y.size > kP256CoordBytes) {
        return fail(TpmErrc::kUnsupportedKey, "ECC point coordinates longer than P-256");
    }
    unsigned char encoded[1 + 2 * kP256CoordBytes] = {0x04};
    std::memcpy(encoded + 1 + kP256CoordBytes - point.x.size, point.x.buffer, point.x.size);
    std::memcpy(encoded + 1 + 2 * kP256CoordBytes - point.y.size, point.y.buffer, point.y.size);
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, encoded,
                                         sizeof encoded) != 1) {
        return cryptoFail("OSSL_PARAM_BLD");
    }
    ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1)
        return cryptoFail("EVP_PKEY_fromdata_init");
    EVP_PKEY* pkey = nullptr;
    if (EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        ERR_clear_error();
        return fail(TpmErrc::kUnsupportedKey, "ECC point is not on P-256");
    }
    return PkeyPtr(pkey);
}

Result<PkeyPtr> rsaKey(const TPMT_PUBLIC& pub) {
    const std::uint32_t exponent =
        pub.parameters.rsaDetail.exponent == 0 ? 65537U : pub.parameters.rsaDetail.exponent;
    BignumPtr n(BN_bin2bn(pub.unique.rsa.buffer, pub.unique.rsa.size, nullptr));
    BignumPtr e(BN_new());
    ParamBldPtr bld(OSSL_PARAM_BLD_new());
    if (!n || !e || !bld || BN_set_word(e.get(), exponent) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
        return cryptoFail("OSSL_PARAM_BLD");
    }
    ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1)
        return cryptoFail("EVP_PKEY_fromdata_init");
    EVP_PKEY* pkey = nullptr;
    if (EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        ERR_clear_error();
        return fail(TpmErrc::kUnsupportedKey, "RSA modulus not usable");
    }
    return PkeyPtr(pkey);
}

Result<std::string> toPem(EVP_PKEY* pkey) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), pkey) != 1)
        return cryptoFail("PEM_write_bio_PUBKEY");
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len));
}

Result<Bytes> hmacSha256(const Bytes& key, const Bytes& data) {
    Bytes out(EVP_MAX_MD_SIZE);
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), ptr(key), static_cast<int>(key.size()), ptr(data), data.size(),
             out.data(), &len) == nullptr) {
        return cryptoFail("HMAC");
    }
    out.resize(len);
    return out;
}

/// TPM 2.0 Part 1, 11.4.10.2: KDFa with HMAC-SHA256, counter mode, label with its NUL.
Result<Bytes> kdfaSha256(const Bytes& key, std::string_view label, const Bytes& context_u,
                         const Bytes& context_v, std::uint32_t bits) {
    Bytes out;
    const std::size_t want = bits / 8;
    for (std::uint32_t counter = 1; out.size() < want; ++counter) {
        Bytes block;
        putU32(block, counter);
        block.insert(block.end(), label.begin(), label.end());
        block.push_back(0);
        block.insert(block.end(), context_u.begin(), context_u.end());
        block.insert(block.end(), context_v.begin(), context_v.end());
        putU32(block, bits);
        auto mac = hmacSha256(key, block);
        if (!mac) return fail(std::move(mac.error()));
        out.insert(out.end(), mac->begin(), mac->end());
    }
    out.resize(want);
    return out;
}

Result<Bytes> rsaOaepIdentity(EVP_PKEY* ek, const Bytes& seed) {
    PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek, nullptr));
    if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1) {
        return cryptoFail("RSA-OAEP setup");
    }
    static constexpr char kLabel[] = "IDENTITY";  // sizeof includes the NUL the TPM expects
    auto* label = static_cast<unsigned char*>(OPENSSL_memdup(kLabel, sizeof kLabel));
    if (label == nullptr ||
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, sizeof kLabel) != 1) {
        OPENSSL_free(label);
        return cryptoFail("RSA-OAEP label");
    }
    std::size_t len = 0;
    if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, seed.data(), seed.size()) != 1)
        return cryptoFail("RSA-OAEP");
    Bytes out(len);
    if (EVP_PKEY_encrypt(ctx.get(), out.data(), &len, seed.data(), seed.size()) != 1)
        return cryptoFail("RSA-OAEP");
    out.resize(len);
    return out;
}

Result<Bytes> aes128CfbEncrypt(const Bytes& key, const Bytes& plain) {
    CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
    const unsigned char iv[16] = {};
    Bytes out(plain.size() + 16);
    int len = 0;
    int tail = 0;
    if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_128_cfb128(), nullptr, key.data(), iv) != 1 ||
        EVP_EncryptUpdate(ctx.get(), out.data(), &len, plain.data(),
                          static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(ctx.get(), out.data() + len, &tail) != 1) {
        return cryptoFail("AES-128-CFB");
    }
    out.resize(static_cast<std::size_t>(len + tail));
    return out;
}

}  // namespace

Result<Bytes> objectName(const Bytes& tpm2b_public) {
    auto pub = parsePublic(tpm2b_public);
    if (!pub) return fail(std::move(pub.error()));
    const EVP_MD* md = digestFor(pub->nameAlg);
    if (md == nullptr) return fail(TpmErrc::kMalformed, "unsupported name algorithm");
    Bytes name;
    putU16(name, pub->nameAlg);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(tpm2b_public.data() + 2, tpm2b_public.size() - 2, digest, &len, md, nullptr) !=
        1) {
        return cryptoFail("EVP_Digest");
    }
    name.insert(name.end(), digest, digest + len);
    return name;
}

Result<AkInfo> checkAkPublic(const Bytes& tpm2b_public) {
    auto pub = parsePublic(tpm2b_public);
    if (!pub) return fail(std::move(pub.error()).wrap("AK public"));
    if (pub->type != TPM2_ALG_ECC) return fail(TpmErrc::kUnsupportedKey, "AK is not an ECC key");
    if (pub->nameAlg != TPM2_ALG_SHA256)
        return fail(TpmErrc::kUnsupportedKey, "AK name algorithm is not SHA-256");
    constexpr TPMA_OBJECT kRequired = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                      TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_RESTRICTED |
                                      TPMA_OBJECT_SIGN_ENCRYPT;
    if ((pub->objectAttributes & kRequired) != kRequired ||
        (pub->objectAttributes & TPMA_OBJECT_DECRYPT) != 0) {
        return fail(
            TpmErrc::kUnsupportedKey,
            "AK must be fixedTPM|fixedParent|sensitiveDataOrigin|restricted|sign and not decrypt");
    }
    const auto& ecc = pub->parameters.eccDetail;
    if (ecc.curveID != TPM2_ECC_NIST_P256)
        return fail(TpmErrc::kUnsupportedKey, "AK curve is not NIST P-256");
    if (ecc.scheme.scheme != TPM2_ALG_ECDSA ||
        ecc.scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256) {
        return fail(TpmErrc::kUnsupportedKey, "AK scheme is not ECDSA-SHA256");
    }
    if (ecc.symmetric.algorithm != TPM2_ALG_NULL)
        return fail(TpmErrc::kUnsupportedKey, "AK has a symmetric algorithm");
    auto pkey = p256Key(pub->unique.ecc);
    if (!pkey) return fail(std::move(pkey.error()).wrap("AK public"));
    auto pem = toPem(pkey->get());
    if (!pem) return fail(std::move(pem.error()));
    auto name = objectName(tpm2b_public);
    if (!name) return fail(std::move(name.error()));
    return AkInfo{std::make_shared<const AkKey>(pkey->release()), std::move(*pem),
                  std::move(*name), (pub->objectAttributes & TPMA_OBJECT_NODA) != 0};
}

Result<Credential> makeCredential(const Bytes& ek_public, const Bytes& ak_name,
                                  const Bytes& secret) {
    auto pub = parsePublic(ek_public);
    if (!pub) return fail(std::move(pub.error()).wrap("EK public"));
    constexpr TPMA_OBJECT kStorage = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    const auto& rsa = pub->parameters.rsaDetail;
    if (pub->type != TPM2_ALG_RSA || pub->nameAlg != TPM2_ALG_SHA256 ||
        (pub->objectAttributes & kStorage) != kStorage || rsa.keyBits != 2048 ||
        pub->unique.rsa.size != 256 || rsa.symmetric.algorithm != TPM2_ALG_AES ||
        rsa.symmetric.keyBits.aes != 128 || rsa.symmetric.mode.aes != TPM2_ALG_CFB) {
        return fail(
            TpmErrc::kUnsupportedKey,
            "EK is not an RSA-2048 storage key with SHA-256 and AES-128-CFB (template L-1)");
    }
    if (ak_name.size() != 34 || ak_name[0] != 0x00 || ak_name[1] != TPM2_ALG_SHA256) {
        return fail(TpmErrc::kBadArgument, "AK name is not a SHA-256 object name");
    }
    if (secret.empty() || secret.size() > kMaxCredentialSecret) {
        return fail(TpmErrc::kBadArgument, "credential secret must be 1..32 bytes");
    }
    auto ek = rsaKey(*pub);
    if (!ek) return fail(std::move(ek.error()).wrap("EK public"));

    Bytes seed(32);
    if (RAND_bytes(seed.data(), static_cast<int>(seed.size())) != 1)
        return cryptoFail("RAND_bytes");
    auto enc_seed = rsaOaepIdentity(ek->get(), seed);
    if (!enc_seed) return fail(std::move(enc_seed.error()));
    auto sym_key = kdfaSha256(seed, "STORAGE", ak_name, {}, 128);
    auto hmac_key = kdfaSha256(seed, "INTEGRITY", {}, {}, 256);
    OPENSSL_cleanse(seed.data(), seed.size());
    if (!sym_key) return fail(std::move(sym_key.error()));
    if (!hmac_key) return fail(std::move(hmac_key.error()));

    Bytes plain;  // the credential as a marshalled TPM2B_DIGEST
    putU16(plain, secret.size());
    plain.insert(plain.end(), secret.begin(), secret.end());
    auto enc_identity = aes128CfbEncrypt(*sym_key, plain);
    OPENSSL_cleanse(plain.data(), plain.size());
    if (!enc_identity) return fail(std::move(enc_identity.error()));
    Bytes mac_input = *enc_identity;
    mac_input.insert(mac_input.end(), ak_name.begin(), ak_name.end());
    auto outer_hmac = hmacSha256(*hmac_key, mac_input);
    if (!outer_hmac) return fail(std::move(outer_hmac.error()));

    Credential out;
    putU16(out.credential_blob, 2 + outer_hmac->size() + enc_identity->size());
    putU16(out.credential_blob, outer_hmac->size());
    out.credential_blob.insert(out.credential_blob.end(), outer_hmac->begin(), outer_hmac->end());
    out.credential_blob.insert(out.credential_blob.end(), enc_identity->begin(),
                               enc_identity->end());
    putU16(out.encrypted_secret, enc_seed->size());
    out.encrypted_secret.insert(out.encrypted_secret.end(), enc_seed->begin(), enc_seed->end());
    return out;
}

Sha256Digest pcrCompositeDigest(const PcrValues& pcrs) {
    Sha256Digest out{};
    MdCtxPtr ctx(EVP_MD_CTX_new());
    unsigned int len = 0;
    // Failure here means OpenSSL cannot hash at all; the all-zero digest then matches nothing.
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return out;
    for (const auto& [index, value] : pcrs) EVP_DigestUpdate(ctx.get(), value.data(), value.size());
    EVP_DigestFinal_ex(ctx.get(), out.data(), &len);
    return out;
}

Result<Bytes> quotedPcrDigest(const Bytes& attest) {
    auto parsed = parseAttest(attest);
    if (!parsed) return fail(std::move(parsed.error()));
    const auto& d = parsed->attested.quote.pcrDigest;
    return Bytes(d.buffer, d.buffer + d.size);
}

Result<QuoteInfo> verifyQuote(const AkInfo& ak, const Bytes& attest, const Bytes& signature,
                              const Bytes& expected_nonce, const PcrValues& pcrs) {
    if (!ak.key) return fail(TpmErrc::kBadArgument, "no AK key");
    auto der = parseEcdsaSignatureToDer(signature);
    if (!der) return fail(std::move(der.error()));
    MdCtxPtr md(EVP_MD_CTX_new());
    if (!md || EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, ak.key->get()) != 1) {
        return cryptoFail("EVP_DigestVerifyInit");
    }
    if (EVP_DigestVerify(md.get(), der->data(), der->size(), ptr(attest), attest.size()) != 1) {
        ERR_clear_error();
        return fail(TpmErrc::kBadSignature, "quote signature does not verify with the AK");
    }

    auto parsed = parseAttest(attest);
    if (!parsed) return fail(std::move(parsed.error()));
    const TPMS_ATTEST& a = *parsed;
    if (a.extraData.size != expected_nonce.size() ||
        !std::equal(expected_nonce.begin(), expected_nonce.end(), a.extraData.buffer)) {
        return fail(TpmErrc::kNonceMismatch, "quote is not over the expected nonce");
    }

    const TPML_PCR_SELECTION& sel = a.attested.quote.pcrSelect;
    std::vector<int> quoted;
    int sha256_selections = 0;
    for (std::uint32_t i = 0; i < sel.count && i < TPM2_NUM_PCR_BANKS; ++i) {
        const auto& s = sel.pcrSelections[i];
        const std::size_t bytes = std::min<std::size_t>(s.sizeofSelect, sizeof s.pcrSelect);
        std::vector<int> bits;
        for (std::size_t b = 0; b < bytes * 8; ++b) {
            if ((s.pcrSelect[b / 8] >> (b % 8)) & 1U) bits.push_back(static_cast<int>(b));
        }
        if (bits.empty()) continue;
        if (s.hash != TPM2_ALG_SHA256 || ++sha256_selections > 1) {
            return fail(TpmErrc::kPcrSelectionMismatch,
                        "quote selects PCRs outside one SHA-256 bank");
        }
        quoted = std::move(bits);
    }
    std::vector<int> given;
    for (const auto& [index, value] : pcrs) given.push_back(index);
    if (quoted != given) {
        return fail(TpmErrc::kPcrSelectionMismatch,
                    "quote covers other PCRs than the values given");
    }
    const Sha256Digest composite = pcrCompositeDigest(pcrs);
    const auto& digest = a.attested.quote.pcrDigest;
    if (digest.size != composite.size() ||
        !std::equal(composite.begin(), composite.end(), digest.buffer)) {
        return fail(TpmErrc::kPcrDigestMismatch, "PCR values do not match the quoted digest");
    }

    QuoteInfo info;
    info.clock = a.clockInfo.clock;
    info.reset_count = a.clockInfo.resetCount;
    info.restart_count = a.clockInfo.restartCount;
    info.safe = a.clockInfo.safe != 0;
    info.firmware_version = a.firmwareVersion;
    info.qualified_signer.assign(a.qualifiedSigner.name,
                                 a.qualifiedSigner.name + a.qualifiedSigner.size);
    info.pcrs = pcrs;
    return info;
}

Result<QuoteInfo> verifyQuote(const Bytes& ak_public, const Bytes& attest, const Bytes& signature,
                              const Bytes& expected_nonce, const PcrValues& pcrs) {
    auto ak = checkAkPublic(ak_public);
    if (!ak) return fail(std::move(ak.error()));
    return verifyQuote(*ak, attest, signature, expected_nonce, pcrs);
}

Sha256Digest replayPcr(const std::vector<Sha256Digest>& digests, const Sha256Digest& from) {
    Sha256Digest value = from;
    for (const auto& d : digests) {
        unsigned char block[64];
        std::memcpy(block, value.data(), 32);
        std::memcpy(block + 32, d.data(), 32);
        unsigned int len = 0;
        EVP_Digest(block, sizeof block, value.data(), &len, EVP_sha256(), nullptr);
    }
    return value;
}

Result<Bytes> checkquotePcrsFile(const PcrValues& pcrs) {
    // tpm2-tools dumps its C structs as they lie in memory, converted to little-endian.
    static_assert(std::endian::native == std::endian::little,
                  "checkquotePcrsFile writes the tpm2-tools structs of a little-endian host");
    TPML_PCR_SELECTION selection;
    std::memset(&selection, 0, sizeof selection);  // padding bytes too
    selection.count = 1;
    selection.pcrSelections[0].hash = TPM2_ALG_SHA256;
    selection.pcrSelections[0].sizeofSelect = 3;
    for (const auto& [index, value] : pcrs) {
        if (index < 0 || static_cast<std::size_t>(index) > kMaxPcrIndex) {
            return fail(TpmErrc::kBadArgument,
                        "PCR index " + std::to_string(index) + " out of range");
        }
        selection.pcrSelections[0].pcrSelect[index / 8] |= static_cast<BYTE>(1U << (index % 8));
    }
    std::vector<TPML_DIGEST> lists;
    for (const auto& [index, value] : pcrs) {
        if (lists.empty() || lists.back().count == 8) {
            lists.emplace_back();
            std::memset(&lists.back(), 0, sizeof(TPML_DIGEST));
        }
        auto& d = lists.back().digests[lists.back().count++];
        d.size = static_cast<UINT16>(value.size());
        std::memcpy(d.buffer, value.data(), value.size());
    }
    Bytes out(sizeof selection + sizeof(UINT32) + lists.size() * sizeof(TPML_DIGEST));
    std::size_t at = 0;
    std::memcpy(out.data(), &selection, sizeof selection);
    at += sizeof selection;
    const auto count = static_cast<UINT32>(lists.size());
    std::memcpy(out.data() + at, &count, sizeof count);
    at += sizeof count;
    for (const auto& list : lists) {
        std::memcpy(out.data() + at, &list, sizeof list);
        at += sizeof list;
    }
    return out;
}

namespace {
Status writeBytes(const std::filesystem::path& path, const void* data, std::size_t size) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.close();
    if (!out) return fail(TpmErrc::kIo, "cannot write " + path.string());
    return {};
}
}  // namespace

Status exportForCheckquote(const std::filesystem::path& dir, const AkInfo& ak, const Quote& quote) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(TpmErrc::kIo, "cannot create " + dir.string() + ": " + ec.message());
    auto pcrs = checkquotePcrsFile(quote.pcrs);
    if (!pcrs) return fail(std::move(pcrs.error()));
    for (auto status :
         {writeBytes(dir / "ak.pem", ak.pem.data(), ak.pem.size()),
          writeBytes(dir / "quote.msg", quote.attest.data(), quote.attest.size()),
          writeBytes(dir / "quote.sig", quote.signature.data(), quote.signature.size()),
          writeBytes(dir / "pcrs.bin", pcrs->data(), pcrs->size())}) {
        if (!status) return status;
    }
    return {};
}

}  // namespace edge::security::tpm
