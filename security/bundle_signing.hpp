#pragma once
// Signing and verifying desired-state bundles: a bundle travels as the payload of a JWS signed
// by keys of the trust root's "targets" role.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "security/crypto.hpp"
#include "security/trust_root.hpp"
#include "shared/bundle/bundle.hpp"
#include "shared/core/error.hpp"

namespace edge::security {

/// jwsSign(bundle::toJson(bundle), keys).
[[nodiscard]] Result<std::string> signBundle(const bundle::Bundle& bundle,
                                             const std::vector<PrivateKey>& keys);

struct VerifyContext {
    std::string device_id;           // this device
    std::uint64_t last_version = 0;  // last accepted bundle version (0: none yet)
    std::int64_t now_unix = 0;       // wall clock from the Clock seam
};

/// Checks, in this order, each failure with its own code:
///   1. the text is a JWS                                      kMalformed
///   2. distinct targets keys whose signature verifies (header alg must match the key;
///      unknown keys and repeats of a key do not count) reach the targets threshold:
///      none -> kBadSignature, some but too few -> kThresholdNotMet
///   3. the payload is a well-formed bundle                    kMalformed
///   4. it is addressed to ctx.device_id                       kWrongDevice
///   5. its version is above ctx.last_version                  kStaleVersion
///   6. it expires after ctx.now_unix                          kExpired
/// The payload is not interpreted before step 2 succeeds.
[[nodiscard]] Result<bundle::Bundle> verifyBundle(std::string_view jws_text, const TrustRoot& root,
                                                  const VerifyContext& ctx);

}  // namespace edge::security
