#pragma once
// Device registry: what each device was told (persisted, so versions only grow across
// restarts) and what it last reported (from its retained status; rebuilt from the broker).
// Lives on the event loop thread.
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "shared/core/error.hpp"
#include "shared/store/store.hpp"

namespace edge::controlplane {

struct DesiredRecord {
    std::uint64_t version = 0;
    std::string content_digest;
    std::int64_t issued_at = 0;
    std::int64_t expires_at = 0;
    std::string jws;  // the signed bundle as published
    std::uint64_t retry = 0;  // the bundle's retry generation (edgectl retry)
};

struct ReportedStatus {
    bool online = false;
    std::optional<std::uint64_t> applied_version;
    std::string bundle_digest;
    std::int64_t last_seen = 0;  // unix seconds, from the device's report
    nlohmann::json last_error;   // null or {"code":…, "message":…}
    nlohmann::json ota;          // null, or the device's OTA report (plan, firmware, models)
};

class Registry {
public:
    explicit Registry(store::Store& store) : store_(store) {}

    /// Loads every persisted desired record.
    [[nodiscard]] Status load();
    [[nodiscard]] const std::map<std::string, DesiredRecord>& desired() const { return desired_; }
    [[nodiscard]] const DesiredRecord* desiredFor(const std::string& id) const;
    /// Persists all records in one transaction, then updates memory.
    [[nodiscard]] Status commitDesired(const std::map<std::string, DesiredRecord>& changed);

    /// Applies a device's status message; false when the payload is not a valid status.
    bool applyStatus(const std::string& id, std::string_view payload);
    [[nodiscard]] const ReportedStatus* reportedFor(const std::string& id) const;

private:
    store::Store& store_;
    std::map<std::string, DesiredRecord> desired_;
    std::map<std::string, ReportedStatus> reported_;
};

}  // namespace edge::controlplane
