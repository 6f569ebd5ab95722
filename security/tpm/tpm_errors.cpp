#include "security/tpm/tpm_errors.hpp"

#include <string>

namespace edge::security::tpm {

namespace {
class TpmCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "edge.tpm"; }
    std::string message(int c) const override {
        switch (static_cast<TpmErrc>(c)) {
            case TpmErrc::kUnavailable:
                return "TPM unavailable";
            case TpmErrc::kTpm:
                return "TPM error";
            case TpmErrc::kBadArgument:
                return "bad argument";
            case TpmErrc::kMalformed:
                return "malformed TPM structure";
            case TpmErrc::kUnsupportedKey:
                return "unsupported key";
            case TpmErrc::kBadSignature:
                return "bad quote signature";
            case TpmErrc::kNonceMismatch:
                return "nonce mismatch";
            case TpmErrc::kPcrSelectionMismatch:
                return "PCR selection mismatch";
            case TpmErrc::kPcrDigestMismatch:
                return "PCR digest mismatch";
            case TpmErrc::kNotAQuote:
                return "not a TPM-generated quote";
            case TpmErrc::kCrypto:
                return "cryptographic library error";
            case TpmErrc::kIo:
                return "i/o error";
        }
        return "unknown TPM error";
    }
};
}  // namespace

const std::error_category& tpmCategory() noexcept {
    static const TpmCategory category;
    return category;
}

std::error_code make_error_code(TpmErrc e) noexcept { return {static_cast<int>(e), tpmCategory()}; }

std::string_view failureReason(const Error& error) noexcept {
    if (error.code().category() != tpmCategory()) return "error";
    switch (static_cast<TpmErrc>(error.code().value())) {
        case TpmErrc::kUnavailable:
            return "tpm_unavailable";
        case TpmErrc::kTpm:
            return "tpm_error";
        case TpmErrc::kBadArgument:
            return "bad_argument";
        case TpmErrc::kMalformed:
            return "malformed";
        case TpmErrc::kUnsupportedKey:
            return "unsupported_key";
        case TpmErrc::kBadSignature:
            return "bad_signature";
        case TpmErrc::kNonceMismatch:
            return "nonce_mismatch";
        case TpmErrc::kPcrSelectionMismatch:
            return "pcr_selection_mismatch";
        case TpmErrc::kPcrDigestMismatch:
            return "pcr_digest_mismatch";
        case TpmErrc::kNotAQuote:
            return "not_a_quote";
        case TpmErrc::kCrypto:
            return "crypto_error";
        case TpmErrc::kIo:
            return "io_error";
    }
    return "error";
}

}  // namespace edge::security::tpm
