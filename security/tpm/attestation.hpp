#pragma once
// Verifier side of TPM attestation (control plane): object names, AK checks, software
// TPM2_MakeCredential, quote verification, measurement-log replay and tpm2-tools exports.
// OpenSSL 3 and libtss2-mu only (no ESAPI, no TPM needed). Every parser takes arbitrary bytes
// and answers with an Error (TpmErrc) on anything it does not accept; it is fuzzed
// (tests/fuzz/quote_fuzz.cpp).
//
// Thread safety: free functions are reentrant; an AkInfo may be shared by threads verifying
// quotes concurrently.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "security/tpm/tpm.hpp"

namespace edge::security::tpm {

/// nameAlg (2 bytes, big-endian) || H_nameAlg(marshalled TPMT_PUBLIC) of a marshalled
/// TPM2B_PUBLIC. SHA-256 (and SHA-1/384/512) name algorithms; kMalformed otherwise.
[[nodiscard]] Result<Bytes> objectName(const Bytes& tpm2b_public);

/// Parsed OpenSSL key, opaque outside attestation.cpp.
class AkKey;

/// An attestation key the verifier accepted.
struct AkInfo {
    std::shared_ptr<const AkKey> key;  // parsed once; reuse it for every quote of the device
    std::string pem;                   // SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY")
    Bytes name;                        // as objectName()
    bool no_da = false;                // noDA: usable while the TPM is in dictionary-attack lockout
};

/// Parses a marshalled TPM2B_PUBLIC and accepts only an AK fit for attestation: ECC NIST P-256,
/// ECDSA-SHA256 scheme, SHA-256 name algorithm, restricted|sign|fixedTPM|fixedParent|
/// sensitiveDataOrigin, not decrypt. kMalformed / kUnsupportedKey otherwise.
[[nodiscard]] Result<AkInfo> checkAkPublic(const Bytes& tpm2b_public);

/// A credential for TPM2_ActivateCredential, both marshalled.
struct Credential {
    Bytes credential_blob;   // TPM2B_ID_OBJECT
    Bytes encrypted_secret;  // TPM2B_ENCRYPTED_SECRET
};

/// TPM2_MakeCredential in software for an RSA-2048 storage EK (template L-1: SHA-256 name
/// algorithm, AES-128-CFB): a random seed wrapped with RSA-OAEP-SHA256 (label "IDENTITY"),
/// `secret` (1..32 bytes) encrypted under KDFa(seed, "STORAGE", ak_name) and protected by an
/// HMAC keyed with KDFa(seed, "INTEGRITY"). Only the TPM holding that EK, with a loaded object
/// of exactly that name, can recover `secret`.
[[nodiscard]] Result<Credential> makeCredential(const Bytes& ek_public, const Bytes& ak_name,
                                                const Bytes& secret);

/// What a verified quote says.
struct QuoteInfo {
    std::uint64_t clock = 0;  // milliseconds the TPM has been powered (persisted, monotonic)
    std::uint32_t reset_count = 0;
    std::uint32_t restart_count = 0;
    bool safe = false;
    std::uint64_t firmware_version = 0;
    Bytes qualified_signer;  // name of the signing key as the TPM saw it
    PcrValues pcrs;
};

/// Verifies a quote: TPMS_ATTEST well formed with nothing trailing (kMalformed), magic and type
/// (kNotAQuote), extraData == expected_nonce (kNonceMismatch), selection == exactly the SHA-256
/// PCRs in `pcrs` (kPcrSelectionMismatch), pcrDigest == SHA-256 of the values in ascending index
/// order (kPcrDigestMismatch), and the ECDSA-SHA256 signature over `attest` with the AK
/// (kBadSignature). The signature is checked first, so a forged quote is always
/// kBadSignature whatever it claims.
[[nodiscard]] Result<QuoteInfo> verifyQuote(const AkInfo& ak, const Bytes& attest,
                                            const Bytes& signature, const Bytes& expected_nonce,
                                            const PcrValues& pcrs);
/// Same, from the marshalled AK TPM2B_PUBLIC (parsed and checked with checkAkPublic each call).
[[nodiscard]] Result<QuoteInfo> verifyQuote(const Bytes& ak_public, const Bytes& attest,
                                            const Bytes& signature, const Bytes& expected_nonce,
                                            const PcrValues& pcrs);

/// SHA-256 over the values in ascending index order: a quote's pcrDigest for that selection.
[[nodiscard]] Sha256Digest pcrCompositeDigest(const PcrValues& pcrs);

/// The pcrDigest a (well-formed) TPMS_ATTEST quote carries; kMalformed / kNotAQuote otherwise.
[[nodiscard]] Result<Bytes> quotedPcrDigest(const Bytes& attest);

/// Replays a measurement log into a SHA-256 PCR: starting from 32 zero bytes,
/// value = SHA-256(value || digest) for each digest in order.
/// `from` is where the PCR started (zeros after a TPM reset).
[[nodiscard]] Sha256Digest replayPcr(const std::vector<Sha256Digest>& digests, const Sha256Digest& from = {});

/// The `-f` file of `tpm2_checkquote -g sha256` (what `tpm2_quote -o` writes in its default
/// "serialized" format, tpm2-tools 5.x): the TPML_PCR_SELECTION struct, a UINT32 count of
/// TPML_DIGEST structs, then those structs (8 digests each), all as the C structs laid out on a
/// little-endian host. kBadArgument for PCR indexes outside 0..23.
[[nodiscard]] Result<Bytes> checkquotePcrsFile(const PcrValues& pcrs);

/// Files for `tpm2_checkquote -u <dir>/ak.pem -m <dir>/quote.msg -s <dir>/quote.sig
/// -f <dir>/pcrs.bin -g sha256 -q <nonce hex>`: the AK PEM, raw attest, the TPMT_SIGNATURE and
/// the PCR file above. Creates `dir` if needed.
[[nodiscard]] Status exportForCheckquote(const std::filesystem::path& dir, const AkInfo& ak,
                                         const Quote& quote);

}  // namespace edge::security::tpm
