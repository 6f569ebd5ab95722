#pragma once
// Tpm: the device's view of its TPM 2.0 (issue 5). Free of vendor types; the adapter is
// security/tpm/tss2/esapi_tpm.cpp (TSS2 ESAPI), the verifier side is security/tpm/attestation.hpp.
//
// Byte formats are the TPM's own marshalled structures (big-endian, TPM 2.0 Part 2), so the
// control plane and tpm2-tools can read them without this code.
//
// Threading: a Tpm is not thread-safe; calls block on the TPM (milliseconds to seconds on
// hardware) and belong on a worker thread, never on the event loop. Every call reports failure
// as an Error (TpmErrc): a TPM that disappears mid-run gives kTpm/kUnavailable with the decoded
// TSS return code, never a crash.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "security/tpm/tpm_errors.hpp"
#include "shared/core/error.hpp"

namespace edge::security::tpm {

using Bytes = std::vector<std::uint8_t>;
using Sha256Digest = std::array<std::uint8_t, 32>;
/// SHA-256 bank PCR values by index; iteration is ascending, the order TPM quotes hash them in.
using PcrValues = std::map<int, Sha256Digest>;

/// The attestation key as the device persists it: marshalled TPM2B_PUBLIC followed by the
/// marshalled TPM2B_PRIVATE (wrapped by the EK, useless on any other TPM). Not secret in the
/// cryptographic sense, but it identifies the device: store it with the device state.
struct AkBlob {
    Bytes data;
    friend bool operator==(const AkBlob&, const AkBlob&) = default;
};

/// What enrollment sends to the control plane (and the blob the device keeps).
struct EnrollmentKeys {
    Bytes ek_public;       // marshalled TPM2B_PUBLIC of the endorsement key
    Bytes ek_certificate;  // DER from NV index 0x01c00002; empty when the TPM has none
    Bytes ak_public;       // marshalled TPM2B_PUBLIC of the attestation key
    Bytes ak_name;         // nameAlg (2 bytes) || SHA-256(TPMT_PUBLIC)
    AkBlob ak_blob;
};

/// A quote as the verifier needs it.
struct Quote {
    Bytes attest;     // TPMS_ATTEST as the TPM marshalled it (no TPM2B size prefix)
    Bytes signature;  // marshalled TPMT_SIGNATURE
    PcrValues pcrs;   // the quoted PCR values (their composite digest matches the quote's)
};

class Tpm {
public:
    virtual ~Tpm() = default;

    /// Creates the endorsement key (TCG EK template L-1, RSA 2048; deterministic, so the same
    /// EK every time) and, when `existing` is empty, a new restricted ECC P-256 signing AK under
    /// it; otherwise loads `existing` (kMalformed if it does not parse, kTpm if this TPM refuses
    /// it). The AK stays loaded for quote() and activateCredential() until the next enroll().
    virtual Result<EnrollmentKeys> enroll(const std::optional<AkBlob>& existing) = 0;

    /// TPM2_ActivateCredential with the enrolled AK and the EK: returns the secret the control
    /// plane wrapped with makeCredential() — only if the credential was made for this EK and this
    /// AK's name. Inputs are marshalled TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
    /// kBadArgument before enroll().
    virtual Result<Bytes> activateCredential(const Bytes& credential_blob,
                                             const Bytes& encrypted_secret) = 0;

    /// Extends a SHA-256 digest into PCR `pcr` (0..23) of the SHA-256 bank.
    virtual Status extendPcr(int pcr, const Sha256Digest& digest) = 0;

    /// Reads the SHA-256 bank values of `pcrs` (each 0..23; duplicates ignored).
    virtual Result<PcrValues> readPcrs(const std::vector<int>& pcrs) = 0;

    /// Quotes `pcrs` (SHA-256 bank) with the enrolled AK over `nonce` (at most 64 bytes).
    /// The PCRs are read right before the quote and the read is retried when an extend slipped in
    /// between (the digest of the values read must equal the quote's pcrDigest), so the values
    /// returned are the ones the signature covers.
    virtual Result<Quote> quote(const Bytes& nonce, const std::vector<int>& pcrs) = 0;
};

}  // namespace edge::security::tpm
