#pragma once
// Error codes of the security module (signatures, keys, trust roots, bundle verification).
#include <system_error>

namespace edge::security {

enum class SecurityErrc {
    kMalformed = 1,    // input is not a well-formed JWS / key / encoding
    kBadSignature,     // no signature verifies (or a single signature does not)
    kThresholdNotMet,  // some, but too few, distinct trusted keys signed
    kWrongDevice,      // bundle addressed to another device
    kStaleVersion,     // bundle version not above the last accepted one
    kExpired,          // bundle past its expiry
    kKey,              // key generation, parsing, storage or unsupported algorithm
    kCrypto,           // the crypto library failed unexpectedly
    kTrustRoot,        // trust root document invalid or unreadable
};

/// Category named "edge.security".
const std::error_category& securityCategory() noexcept;
std::error_code make_error_code(SecurityErrc e) noexcept;

}  // namespace edge::security

template <>
struct std::is_error_code_enum<edge::security::SecurityErrc> : std::true_type {};
