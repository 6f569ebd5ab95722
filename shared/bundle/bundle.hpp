#pragma once
// The desired-state bundle: what the control plane signs for one device and edged applies.
// Wire form: JSON (this file), carried as the payload of a JWS (security/bundle_signing.hpp).
//
// {"schema":1,"device":"dev-1","version":7,"issued_at":1764380000,"expires_at":1764984800,
//  "source":"sha256:…","policies":{"finops.rego":"package finops …"},"data":{…}}
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "shared/core/error.hpp"

namespace edge::bundle {

inline constexpr int kSchema = 1;

struct Bundle {
    int schema = kSchema;
    std::string device_id;
    std::uint64_t version = 0;
    std::int64_t issued_at = 0;   // unix seconds
    std::int64_t expires_at = 0;  // unix seconds
    std::string source;           // revision of the fleet the bundle was compiled from
    std::map<std::string, std::string> policies;  // file name -> Rego source
    nlohmann::json data = nlohmann::json::object();

    /// Digest of what the device is told to do (policies and data), independent of version,
    /// times and source: equal contents give equal digests.
    [[nodiscard]] std::string contentDigest() const;
};

[[nodiscard]] std::string toJson(const Bundle& bundle);
/// Strict: every field present with the right type, schema known, device id well formed.
[[nodiscard]] Result<Bundle> fromJson(std::string_view text);

/// Device ids are [A-Za-z0-9._-]{1,64} (ARCHITECTURE.md): they become topic levels and paths.
[[nodiscard]] bool isValidDeviceId(std::string_view id);

}  // namespace edge::bundle
