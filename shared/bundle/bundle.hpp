#pragma once
// The desired-state bundle: what the control plane signs for one device and edged applies.
// Wire form: JSON (this file), carried as the payload of a JWS (security/bundle_signing.hpp).
//
// {"schema":1,"device":"dev-1","version":7,"issued_at":1764380000,"expires_at":1764984800,
//  "source":"sha256:…","policies":{"finops.rego":"package finops …"},"data":{…},
//  "enforcement":{"entrypoints":["data.finops.deny"],"log_input":false,
//                 "usage_windows":["day","month"],
//                 "offline":{"max_age":259200,"after":"lockdown"},
//                 "policy_sets":{"lockdown":{"lockdown.rego":"package lockdown …"}}},
//  "artifacts":[{"kind":"firmware","name":"rootfs","version":"1.4.0","sha256":"…","size":4096,
//                "url":"/v1/artifacts/…"},   (+ "compression":"zstd","transfer":{"sha256","size"})
//               {"kind":"model","name":"detector","version":"7","sha256":"…","size":1024,
//                "url":"/v1/artifacts/…","provenance":{"source":"…","fairness":0.91}}]}
// "enforcement" and "artifacts" are optional on the wire (older bundles): their defaults apply.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "shared/core/error.hpp"

namespace edge::bundle {

inline constexpr int kSchema = 1;

/// How long the bundle may be enforced without contact, and what applies after.
struct OfflineRule {
    std::int64_t max_age = 0;    // seconds; 0: no limit
    std::string after = "keep";  // "keep", or the name of a policy set in Enforcement::policy_sets

    bool operator==(const OfflineRule&) const = default;
};

/// How edged enforces the bundle locally (docs/enforcement.md).
struct Enforcement {
    /// Admission entry points (deny sets); empty: `data.<pkg>.deny` of every package that has one.
    std::vector<std::string> entrypoints;
    bool log_input = false;  // the decision log keeps each input itself, not only its digest
    /// Metering windows exposed as data.edge.usage.<project>.<window>: hour, day, week, month, total.
    std::vector<std::string> usage_windows = {"day", "month"};
    OfflineRule offline;
    /// Named alternative policy sets (fail-safe): name -> file name -> Rego source.
    std::map<std::string, std::map<std::string, std::string>> policy_sets;
    /// Deny set that decides whether a model may be activated (input: {"model": {...}}).
    std::string provenance_entrypoint = std::string(kDefaultProvenanceEntrypoint);

    static constexpr std::string_view kDefaultProvenanceEntrypoint = "data.provenance.deny";

    bool operator==(const Enforcement&) const = default;
};

enum class ArtifactKind { kFirmware, kModel };
[[nodiscard]] std::string_view kindName(ArtifactKind kind);

/// An artifact the device must hold (Uptane-style: bound to the signed bundle by digest and size).
struct Artifact {
    ArtifactKind kind = ArtifactKind::kFirmware;
    std::string name;     // [A-Za-z0-9._-]{1,64}: a model's name, or the firmware's
    std::string version;  // non-empty, at most 64 chars; compared for equality only
    std::string sha256;   // 64 lowercase hex: the content's digest
    std::uint64_t size = 0;
    /// Path on the control plane's artifact store: "/v1/artifacts/<digest of what is sent>".
    std::string url;
    /// Models: where it comes from (source, training-data attestations, metrics); checked by
    /// the bundle's provenance policy before activation. Always an object.
    nlohmann::json provenance = nlohmann::json::object();
    /// "" (sent as is) or "zstd": then what is downloaded is the compressed file, bound by
    /// transfer_sha256 and transfer_size, and sha256 and size are those of the decompressed bytes.
    std::string compression;
    std::string transfer_sha256;
    std::uint64_t transfer_size = 0;

    bool operator==(const Artifact&) const = default;
};

/// Windows usage can be metered over.
[[nodiscard]] bool isUsageWindow(std::string_view window);

struct Bundle {
    int schema = kSchema;
    std::string device_id;
    std::uint64_t version = 0;
    std::int64_t issued_at = 0;   // unix seconds
    std::int64_t expires_at = 0;  // unix seconds
    std::string source;           // revision of the fleet the bundle was compiled from
    std::map<std::string, std::string> policies;  // file name -> Rego source
    nlohmann::json data = nlohmann::json::object();
    Enforcement enforcement;
    /// At most one firmware artifact; model names unique.
    std::vector<Artifact> artifacts;
    /// The operator's retry generation for this device (`edgectl retry`), 0 when never asked.
    /// Part of the content: a new one makes what failed under the same content run again.
    std::uint64_t retry = 0;

    /// The firmware artifact, if any.
    [[nodiscard]] const Artifact* firmware() const;

    /// Digest of what the device is told to do (policies, data, enforcement, artifacts, retry),
    /// independent of version, times and source: equal contents give equal digests.
    [[nodiscard]] std::string contentDigest() const;
};

[[nodiscard]] std::string toJson(const Bundle& bundle);
/// Strict: every field present with the right type, schema known, device id well formed.
[[nodiscard]] Result<Bundle> fromJson(std::string_view text);

/// Device ids are [A-Za-z0-9._-]{1,64} (ARCHITECTURE.md): they become topic levels and paths.
[[nodiscard]] bool isValidDeviceId(std::string_view id);

}  // namespace edge::bundle
