#pragma once
// LocalEnforcement: everything edged needs to decide locally and account for it, wired together:
// the group writer (one fsync for many records), the decision log and telemetry queues, the
// meter, the decision service, and (with a broker) the publishers that ship the queues and trim
// them on the control plane's ack. It plugs into EdgeAgent through AgentHooks. Loop thread only.
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "edged/agent.hpp"
#include "edged/decision_service.hpp"
#include "edged/durable_queue.hpp"
#include "edged/group_writer.hpp"
#include "edged/metering.hpp"
#include "edged/stream_publisher.hpp"

namespace edge::edged {

struct EnforcementSettings {
    DeviceInfo device;
    DecisionSettings decision;
    std::string topic_prefix = "edge/v1";
    std::size_t decisions_max_bytes = 64u << 20;
    std::size_t telemetry_max_bytes = 16u << 20;
    /// Group commits start at most this often: more records per fsync, at the price of what a
    /// power cut can take (docs/enforcement.md).
    std::chrono::milliseconds commit_interval{10};
    PublisherSettings publisher;
};

class LocalEnforcement {
public:
    LocalEnforcement(EventLoop& loop, const Clock& clock, store::Store& store,
                     mqtt::MqttClient* mqtt, EnforcementSettings settings);
    ~LocalEnforcement();

    /// Loads the queues and the meter. Call before the agent's load().
    [[nodiscard]] Status load();
    /// The hooks to give the agent (they capture this object).
    [[nodiscard]] AgentHooks hooks();
    [[nodiscard]] DecisionService& service() { return *service_; }
    [[nodiscard]] DurableQueue& decisions() { return decisions_; }
    [[nodiscard]] DurableQueue& telemetry() { return telemetry_; }
    /// Connectivity, active policy set, queue figures: part of every status report.
    [[nodiscard]] nlohmann::json statusJson() const;
    /// Waits until everything queued is committed (shutdown).
    void flush();

private:
    void heartbeat();

    const Clock& clock_;
    EnforcementSettings settings_;
    GroupWriter writer_;
    DurableQueue decisions_;
    DurableQueue telemetry_;
    Meter meter_;
    std::unique_ptr<DecisionService> service_;
    std::unique_ptr<StreamPublisher> decisions_pub_;
    std::unique_ptr<StreamPublisher> telemetry_pub_;
    std::string last_set_;  // to log and report a switch to or from the fail-safe set
};

/// The queue figures kept in LMDB, read without a running daemon (`edged status`).
[[nodiscard]] nlohmann::json queueJson(const DurableQueue& queue);

}  // namespace edge::edged
