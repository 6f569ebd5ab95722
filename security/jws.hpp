#pragma once
// JSON Web Signature, general JSON serialization (RFC 7515 §7.2) with one or more signatures:
//   {"payload":"<b64url>","signatures":[{"protected":"<b64url>","signature":"<b64url>"},…]}
// Each protected header is {"alg":"EdDSA"|"ES256","kid":"<keyId>"}; the signing input of each
// signature is protected_b64 + "." + payload_b64.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "security/crypto.hpp"
#include "shared/core/error.hpp"

namespace edge::security {

/// Inputs larger than this are refused before parsing.
inline constexpr std::size_t kMaxJwsBytes = 16 * 1024 * 1024;
/// More signatures than this are refused (bounds the verification work an input can cause).
inline constexpr std::size_t kMaxJwsSignatures = 64;

struct JwsSignature {
    std::string protected_b64;
    std::string alg;
    std::string kid;
    std::string signature;  // raw bytes
};

struct Jws {
    std::string payload;  // decoded
    std::string payload_b64;
    std::vector<JwsSignature> signatures;
};

/// Signs payload once with each key, in order. No keys -> kKey.
[[nodiscard]] Result<std::string> jwsSign(std::string_view payload, const std::vector<PrivateKey>& keys);

/// Structural checks only — no signature is verified here. JSON shape, base64url fields, each
/// protected header a JSON object with string "alg" and "kid" and without "crit", at least one
/// signature. Unprotected "header" members are ignored. Any problem -> kMalformed with a reason.
[[nodiscard]] Result<Jws> jwsParse(std::string_view text);

}  // namespace edge::security
