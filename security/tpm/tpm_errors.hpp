#pragma once
// Error codes of the TPM module: the device-side adapter (esapi_tpm) and the verifier
// (attestation). Verification failures have one code each, so the control plane can record a
// stable reason ("bad_signature", "nonce_mismatch", ...) next to the human-readable message.
#include <string_view>
#include <system_error>

#include "shared/core/error.hpp"

namespace edge::security::tpm {

enum class TpmErrc {
    kUnavailable = 1,  // no TPM configured, TCTI cannot be loaded or the TPM is unreachable
    kTpm,              // the TPM (or the TSS) returned an error; the message has the decoded rc
    kBadArgument,      // caller passed something the TPM cannot take (PCR index, nonce size)
    kMalformed,        // bytes that do not unmarshal as the expected TPM structure
    kUnsupportedKey,   // a well-formed key that is not the expected kind (AK/EK template)
    kBadSignature,     // the quote signature does not verify with the AK
    kNonceMismatch,    // the quote's extraData is not the expected nonce
    kPcrSelectionMismatch,  // the quote covers other PCRs than the values given
    kPcrDigestMismatch,     // the PCR values do not hash to the quote's pcrDigest
    kNotAQuote,             // magic is not TPM_GENERATED_VALUE or the type is not ATTEST_QUOTE
    kCrypto,                // OpenSSL failed unexpectedly
    kIo,                    // writing export files failed
};

/// Category named "edge.tpm".
const std::error_category& tpmCategory() noexcept;
std::error_code make_error_code(TpmErrc e) noexcept;

/// Stable snake_case reason for a verification failure ("bad_signature", "nonce_mismatch",
/// "pcr_digest_mismatch", "pcr_selection_mismatch", "not_a_quote", "malformed",
/// "unsupported_key", ...); "error" for codes of other categories.
[[nodiscard]] std::string_view failureReason(const Error& error) noexcept;

}  // namespace edge::security::tpm

template <>
struct std::is_error_code_enum<edge::security::tpm::TpmErrc> : std::true_type {};
