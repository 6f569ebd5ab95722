#pragma once
// DecisionService: edged's local decision API (docs/enforcement.md), transport-free so the
// benchmark can run it without HTTP. Served over a Unix socket (and optionally loopback) by
// BeastHttpServer in main.cpp.
//
//   POST /v1/data/<path>  {"input": …}  -> {"result": …, "decision_id": …}, {} when undefined
//   GET  /v1/data/<path>                -> the same without input
//   POST /v1/admit        workload input -> {"allowed", "reasons", "decision_id", "policy_set"}
//   POST /v1/usage        usage report   -> {"recorded": true}
//   GET  /v1/usage                       -> current totals per project and window
//   GET  /health                         -> {"status": "ok", "bundle_version": …}
//
// Every decision (admit and data) is appended to the hash-chained decision log; usage reports
// also go to the telemetry queue. Policies see `data` = the bundle's data plus data.edge
// {usage, device, connectivity}. Errors: 400 bad request, 404 unknown path, 405 wrong method,
// 413 body too large (the server), 503 no bundle yet, evaluation over its deadline, or the
// decision log too far behind the disk (max_uncommitted), 500 an evaluation error (conflict,
// strict builtin). Loop thread only.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "edged/durable_queue.hpp"
#include "edged/metering.hpp"
#include "edged/policy_sets.hpp"
#include "shared/core/clock.hpp"
#include "shared/http/http.hpp"

namespace edge::edged {

struct DeviceInfo {
    std::string id;
    std::map<std::string, std::string> labels;
    nlohmann::json hardware = nlohmann::json::object();  // inventory from config
};

struct Connectivity {
    bool online = false;
    std::int64_t last_contact = 0;  // unix seconds; 0: never
};

struct DecisionSettings {
    std::chrono::milliseconds eval_timeout{100};
    /// Decisions answered but not yet committed to the decision log, at most: past it requests
    /// get 503 until the disk catches up, so a crash can never take more than this many.
    std::size_t max_uncommitted = 10000;
};

class DecisionService {
public:
    DecisionService(const Clock& clock, Meter& meter, DurableQueue& decisions,
                    DurableQueue& telemetry, DeviceInfo device, DecisionSettings settings);

    /// Swaps the policies all later requests use (a new bundle, or none).
    void setPolicies(std::shared_ptr<const PolicySets> policies);
    void setConnectivity(Connectivity connectivity);
    /// data.edge.device.attestation.state: the device's own attestation state ("unavailable"
    /// without a TPM, "starting", "enrolling", "enrolled", "error"), as the Attestor reports it.
    void setAttestation(const std::string& state);
    [[nodiscard]] const Connectivity& connectivity() const { return connectivity_; }
    /// Seconds since the last contact while offline; 0 while online.
    [[nodiscard]] std::int64_t offlineSeconds() const;
    /// The policy set decisions use now ("main" or the fail-safe set), or "" without a bundle.
    [[nodiscard]] std::string activeSet() const;

    [[nodiscard]] http::Response handle(const http::Request& request);

    [[nodiscard]] http::Response admit(std::string_view body);
    [[nodiscard]] http::Response data(std::string_view path, std::string_view body);
    [[nodiscard]] http::Response reportUsage(std::string_view body);

    [[nodiscard]] std::uint64_t decisionsMade() const { return decisions_made_; }

private:
    [[nodiscard]] const policy::Value& evalData();
    /// 503 while the decision log has max_uncommitted records waiting for the disk.
    [[nodiscard]] std::optional<http::Response> logBehind() const;
    std::string nextDecisionId() const;
    void logDecision(nlohmann::json record);

    const Clock& clock_;
    Meter& meter_;
    DurableQueue& decisions_;
    DurableQueue& telemetry_;
    DeviceInfo device_;
    DecisionSettings settings_;
    std::shared_ptr<const PolicySets> policies_;
    Connectivity connectivity_;
    std::string boot_id_;  // random per process: decision ids stay unique across restarts
    policy::Value device_value_;
    std::uint64_t decisions_made_ = 0;

    // data for evaluations, rebuilt when one of its inputs changes
    policy::Value eval_data_;
    const PolicySets* eval_data_policies_ = nullptr;
    std::uint64_t eval_data_usage_gen_ = ~0ull;
    std::int64_t eval_data_offline_ = -1;
    bool eval_data_online_ = false;
};

}  // namespace edge::edged
