#pragma once
// EdgeAgent: edged's core. Loads its state from the store before any network, verifies each
// bundle from its desired topic against the trust root, applies it in one transaction, and
// reports on its status topic. Works with no broker at all (mqtt may be null).
// Lives on the event loop thread.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "edged/local_state.hpp"
#include "edged/policy_sets.hpp"
#include "security/trust_root.hpp"
#include "shared/core/clock.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/mqtt/client.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

struct AgentSettings {
    std::string device_id;
    std::string topic_prefix = "edge/v1";
    /// Status is republished this often while connected, so "last seen" stays fresh.
    std::chrono::milliseconds status_interval{std::chrono::seconds(60)};
};

/// Why the last bundle was refused; reported on status, never stored.
struct RejectInfo {
    std::string code;  // "bad_signature", "wrong_device", "stale_version", "expired", …
    std::string message;
    std::int64_t at = 0;
};

/// What the rest of edged hangs on the agent (decision API, queues); every hook is optional and
/// runs on the loop thread.
struct AgentHooks {
    /// A bundle was applied (or loaded at start): the policies decisions must use from now on.
    std::function<void(std::shared_ptr<const PolicySets>)> policies_changed;
    /// The broker connection came or went; last_contact is the unix time of the last contact.
    std::function<void(bool online, std::int64_t last_contact)> connection_changed;
    /// A message on <prefix>/dev/<id>/ack.
    std::function<void(const std::string& payload)> ack;
    /// Adds fields to every status report.
    std::function<void(nlohmann::json& status)> extend_status;
    /// A bundle was refused (also reported on status).
    std::function<void(const RejectInfo&)> bundle_rejected;
    /// Runs on each heartbeat (status_interval), connected or not.
    std::function<void()> heartbeat;
    /// The applied bundle, after it was applied (or loaded at start): its artifacts are the
    /// OTA plan.
    std::function<void(std::shared_ptr<const bundle::Bundle>)> bundle_applied;
    /// A message on <prefix>/dev/<id>/attest/<x>, with leaf "attest/<x>".
    std::function<void(const std::string& leaf, const std::string& payload)> attest_message;
};


class EdgeAgent {
public:
    EdgeAgent(EventLoop& loop, const Clock& clock, store::Store& store, mqtt::MqttClient* mqtt,
              security::TrustRoot trust_root, AgentSettings settings);

    /// Set before load().
    void setHooks(AgentHooks hooks) { hooks_ = std::move(hooks); }
    /// Reads the applied state from the store and compiles its policies. Call before start().
    [[nodiscard]] Status load();
    /// Subscribes to the desired topic and starts the MQTT session (when there is one).
    void start();
    /// Publishes an offline status (Paho drops the will on a clean disconnect) and stops.
    void stop();

    /// Verifies and applies one desired-topic payload. An error changes nothing.
    [[nodiscard]] Status handleDesired(std::string_view payload);

    [[nodiscard]] const std::optional<AppliedState>& applied() const { return applied_; }
    [[nodiscard]] nlohmann::json statusJson(bool online) const;
    /// Unix time of the last contact with the broker (persisted; now while connected).
    [[nodiscard]] std::int64_t lastContact() const;
    [[nodiscard]] bool online() const { return mqtt_ != nullptr && mqtt_->connected(); }
    /// Publishes the status report now (when connected).
    void publishStatus();

private:
    void heartbeat();
    void startOffline();
    void rejected();
    void recordContact();

    EventLoop& loop_;
    const Clock& clock_;
    store::Store& store_;
    mqtt::MqttClient* mqtt_;
    security::TrustRoot trust_root_;
    AgentSettings settings_;
    std::optional<AppliedState> applied_;
    std::optional<RejectInfo> last_error_;
    std::unique_ptr<Timer> heartbeat_;
    AgentHooks hooks_;
    std::int64_t last_contact_ = 0;
};

/// The status topic's last will: offline, nothing else known.
[[nodiscard]] std::string offlineWill(const std::string& device_id);
/// The stable name of an error code for status reports ("stale_version").
[[nodiscard]] std::string errorCodeName(const Error& error);

}  // namespace edge::edged
