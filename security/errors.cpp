#include "security/errors.hpp"

#include <string>

namespace edge::security {

namespace {
class SecurityCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "edge.security"; }
    std::string message(int c) const override {
        switch (static_cast<SecurityErrc>(c)) {
            case SecurityErrc::kMalformed: return "malformed input";
            case SecurityErrc::kBadSignature: return "bad signature";
            case SecurityErrc::kThresholdNotMet: return "signature threshold not met";
            case SecurityErrc::kWrongDevice: return "bundle is for another device";
            case SecurityErrc::kStaleVersion: return "stale bundle version";
            case SecurityErrc::kExpired: return "bundle expired";
            case SecurityErrc::kKey: return "key error";
            case SecurityErrc::kCrypto: return "cryptographic library error";
            case SecurityErrc::kTrustRoot: return "invalid trust root";
        }
        return "unknown security error";
    }
};
}  // namespace

const std::error_category& securityCategory() noexcept {
    static const SecurityCategory category;
    return category;
}

std::error_code make_error_code(SecurityErrc e) noexcept {
    return {static_cast<int>(e), securityCategory()};
}

}  // namespace edge::security
