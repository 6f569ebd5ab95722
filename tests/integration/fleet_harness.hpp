#pragma once
// A whole local fleet for integration tests: a real mosquitto on a free port, the real
// controlplane and edged programs as child processes, real LMDB files in a temp dir.
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/mosquitto.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace edge::test {

class TestPki;

class FleetHarness {
public:
    /// Copies the example fleet, generates keys, starts the broker and the control plane.
    FleetHarness();
    void startControlPlane();
    void startDevice(const std::string& id);
    void killDevice(const std::string& id);  // SIGKILL
    void startAllDevices();

    /// GET /v1/devices, parsed; null on any failure.
    [[nodiscard]] nlohmann::json devices() const;
    [[nodiscard]] nlohmann::json device(const std::string& id) const;
    /// Waits until every device reports its desired version.
    [[nodiscard]] bool waitConverged(std::chrono::milliseconds timeout) const;
    /// `edged status --json` of a device, run as its own process.
    [[nodiscard]] nlohmann::json localStatus(const std::string& id) const;
    /// Publishes a raw payload on a device's desired topic with mosquitto_pub.
    void publishDesired(const std::string& id, const std::string& payload) const;
    [[nodiscard]] std::string server() const;
    /// Appends YAML lines to a device's config (before startDevice). The config ends with the
    /// `queues:` block, so indented lines add keys to it.
    void appendDeviceConfig(const std::string& id, const std::string& yaml) const;
    /// Adds an artifact store listener over mutual TLS with pki's "server" certificate and "ca"
    /// to the control plane's config (restart it to take effect); returns its port.
    int enableArtifactStore(const TestPki& pki) const;
    /// The device's decision API socket.
    [[nodiscard]] std::filesystem::path socket(const std::string& id) const;
    /// The retained bundle on a device's desired topic, read with mosquitto_sub.
    [[nodiscard]] std::string retainedDesired(const std::string& id) const;
    /// A digest of what a device enforces: its applied state, bundle and policies in LMDB
    /// (not its logs and queues, which grow with every event).
    [[nodiscard]] std::string stateDigest(const std::string& id) const;
    /// GET a stream (decisions, telemetry) of a device from the control plane; null on failure.
    [[nodiscard]] nlohmann::json stream(const std::string& id, const std::string& stream,
                                        std::size_t limit = 10000) const;

    TempDir dir;
    Mosquitto broker;
    int http_port;
    std::optional<Process> controlplane;
    std::map<std::string, Process> devices_;
};

[[nodiscard]] std::filesystem::path binary(std::string_view name);

}  // namespace edge::test
