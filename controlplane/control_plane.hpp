#pragma once
// The control plane service: compiles the fleet directory into one signed bundle per device,
// keeps versions growing (Registry), publishes bundles retained on each device's desired topic,
// tracks device status, and answers the HTTP API. Lives on the event loop thread.
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "controlplane/attestation.hpp"
#include "controlplane/fleet.hpp"
#include "controlplane/registry.hpp"
#include "controlplane/stream_store.hpp"
#include "security/crypto.hpp"
#include "shared/core/clock.hpp"
#include "shared/http/http.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/mqtt/client.hpp"

namespace edge::controlplane {

struct Settings {
    std::filesystem::path fleet_dir;
    std::string topic_prefix = "edge/v1";
    std::chrono::seconds bundle_ttl{std::chrono::hours(24 * 7)};
    /// How often to look for bundles past half their lifetime and re-issue them.
    std::chrono::milliseconds refresh_interval{std::chrono::minutes(1)};
    /// Checks the artifacts a fleet names against the artifact store (empty: not checked).
    ArtifactLookup artifacts;
};

struct ReloadReport {
    std::string revision;
    std::vector<std::string> changed;  // devices that got a new version
    std::vector<std::string> removed;  // devices no longer in the fleet
};

class ControlPlane {
public:
    ControlPlane(EventLoop& loop, const Clock& clock, store::Store& store,
                 mqtt::MqttClient& mqtt, std::vector<security::PrivateKey> signing_keys,
                 Settings settings);
    ~ControlPlane();

    /// Loads the registry and the fleet, publishes, subscribes to statuses. A bad fleet at
    /// start is an error: there is no last good one yet.
    [[nodiscard]] Status start();
    void stop();
    /// Re-reads the fleet; a bad fleet changes nothing and returns the reason.
    [[nodiscard]] Result<ReloadReport> reload();
    [[nodiscard]] http::Response handle(const http::Request& request);
    /// The attestation verifier (optional; set before start()): quarantined devices get a
    /// quarantine bundle, attest/* messages go to it, and the API exposes it.
    void setAttestation(AttestationService* attestation);
    /// `edgectl retry`: signs and publishes the device's bundle again with the next retry
    /// generation, so that what failed under its content (a firmware, a model) is tried again.
    /// Returns the new generation. kNotFound for a device not in the fleet.
    [[nodiscard]] Result<std::uint64_t> retry(const std::string& id);

private:
    /// Signs what changed; retry names a device whose bundle gets a new retry generation.
    [[nodiscard]] Result<ReloadReport> apply(CompiledFleet fleet, bool force_refresh,
                                             const std::pair<std::string, std::uint64_t>& retry = {});
    void publishDesired(const std::string& id);
    void onMessage(const mqtt::Message& message);
    void onStream(const std::string& id, const std::string& stream, const std::string& payload);
    [[nodiscard]] http::Response streamResponse(const std::string& id, const std::string& stream,
                                                const http::Request& request) const;
    void refreshExpiring();
    /// Signs and publishes whatever changed for the current fleet (quarantine entered or left).
    void reissue();
    [[nodiscard]] http::Response attestationResponse(const std::string& id, const std::string& action,
                                                     const http::Request& request);
    [[nodiscard]] nlohmann::json deviceJson(const std::string& id) const;
    [[nodiscard]] std::string topic(const std::string& id, std::string_view leaf) const;

    EventLoop& loop_;
    const Clock& clock_;
    mqtt::MqttClient& mqtt_;
    std::vector<security::PrivateKey> keys_;
    Settings settings_;
    Registry registry_;
    StreamStore streams_;
    CompiledFleet fleet_;
    std::unique_ptr<Timer> refresh_timer_;
    AttestationService* attestation_ = nullptr;
};

}  // namespace edge::controlplane
