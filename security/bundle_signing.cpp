#include "security/bundle_signing.hpp"

#include <ctime>
#include <set>

#include "security/jws.hpp"

namespace edge::security {

namespace {

// "2025-11-29T01:33:20Z", or the raw number if it does not fit a calendar date.
std::string formatUnix(std::int64_t unix_seconds) {
    const auto t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    char buf[64];
    if (::gmtime_r(&t, &tm) != nullptr &&
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0) {
        return std::string(buf) + " (" + std::to_string(unix_seconds) + ")";
    }
    return std::to_string(unix_seconds);
}

bool contains(const std::vector<std::string>& ids, const std::string& id) {
    for (const auto& candidate : ids) {
        if (candidate == id) return true;
    }
    return false;
}

// Distinct targets-role keys with a valid signature over their signing input.
std::size_t countTrustedSignatures(const Jws& jws, const TrustRoot& root) {
    std::set<std::string> valid;
    for (const JwsSignature& sig : jws.signatures) {
        if (valid.contains(sig.kid) || !contains(root.targets.key_ids, sig.kid)) continue;
        const auto key = root.keys.find(sig.kid);
        if (key == root.keys.end()) continue;
        if (sig.alg != jwsAlgName(key->second.algorithm())) continue;
        const std::string input = sig.protected_b64 + "." + jws.payload_b64;
        if (key->second.verify(input, sig.signature)) valid.insert(sig.kid);
    }
    return valid.size();
}

}  // namespace

Result<std::string> signBundle(const bundle::Bundle& bundle, const std::vector<PrivateKey>& keys) {
    auto signed_text = jwsSign(bundle::toJson(bundle), keys);
    if (!signed_text) return fail(std::move(signed_text.error()).wrap("sign bundle"));
    return signed_text;
}

Result<bundle::Bundle> verifyBundle(std::string_view jws_text, const TrustRoot& root,
                                    const VerifyContext& ctx) {
    auto jws = jwsParse(jws_text);
    if (!jws) {
        return fail(SecurityErrc::kMalformed, "bundle is not a valid JWS: " + jws.error().message());
    }

    const std::size_t count = countTrustedSignatures(*jws, root);
    if (count == 0) {
        return fail(SecurityErrc::kBadSignature, "no valid signature from a trusted targets key");
    }
    if (count < root.targets.threshold) {
        return fail(SecurityErrc::kThresholdNotMet, "signature threshold not met: " +
                                                        std::to_string(count) + " of " +
                                                        std::to_string(root.targets.threshold));
    }

    auto parsed = bundle::fromJson(jws->payload);
    if (!parsed) {
        return fail(SecurityErrc::kMalformed, "signed payload is not a valid bundle: " +
                                                  parsed.error().message());
    }
    const bundle::Bundle& b = *parsed;
    if (b.device_id != ctx.device_id) {
        return fail(SecurityErrc::kWrongDevice,
                    "bundle is for device '" + b.device_id + "', this is '" + ctx.device_id + "'");
    }
    if (b.version <= ctx.last_version) {
        return fail(SecurityErrc::kStaleVersion, "bundle version " + std::to_string(b.version) +
                                                     " is not above the last accepted " +
                                                     std::to_string(ctx.last_version));
    }
    if (b.expires_at <= ctx.now_unix) {
        return fail(SecurityErrc::kExpired, "bundle expired at " + formatUnix(b.expires_at));
    }
    return parsed;
}

}  // namespace edge::security
