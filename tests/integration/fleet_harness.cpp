#include "tests/integration/fleet_harness.hpp"

#include <catch2/catch.hpp>

#include <fstream>

#include <fmt/format.h>

#include "security/crypto.hpp"
#include "shared/core/fs.hpp"
#include "shared/http/http.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/test_pki.hpp"

namespace edge::test {

std::filesystem::path binary(std::string_view name) {
    return std::filesystem::path(EDGE_TEST_BIN_DIR) / name;
}


FleetHarness::FleetHarness() : broker(dir / "broker"), http_port(freePort()) {
    std::filesystem::copy(std::filesystem::path(EDGE_TEST_SOURCE_DIR) / "deploy/examples/fleet",
                          dir / "fleet", std::filesystem::copy_options::recursive);
    auto keygen = runCommand({binary("controlplane").string(), "keygen", "--dir", (dir / "keys").string()});
    REQUIRE(keygen.exit_code == 0);
    test::writeFile(dir / "controlplane.yaml",
              fmt::format("fleet_dir: fleet\nstate_dir: state/cp\nbroker: {}\n"
                          "signing_keys: [keys/targets-1.key.pem]\nlog_level: debug\n"
                          "http:\n  listen: 127.0.0.1:{}\n",
                          broker.uri(), http_port));
    for (const auto* id : {"edge-1", "edge-2", "edge-3"}) {
        test::writeFile(dir / fmt::format("{}.yaml", id),
                  fmt::format("device_id: {}\nbroker: {}\ntrust_root: keys/trust-root.json\n"
                              "state_dir: state/{}\nlog_level: debug\n"
                              "reconnect:\n  min: 200ms\n  max: 1s\n"
                              // Last in the file, so tests may append keys of this block.
                              "queues:\n  ack_timeout: 2s\n",
                              id, broker.uri(), id));
    }
    startControlPlane();
}

void FleetHarness::startControlPlane() {
    controlplane.reset();
    controlplane.emplace(Process::spawn(
        {binary("controlplane").string(), "run", "--config", (dir / "controlplane.yaml").string()},
        dir / "controlplane.log"));
    REQUIRE(waitUntil([&] { return !devices().is_null(); }, std::chrono::seconds(15)));
}

void FleetHarness::startDevice(const std::string& id) {
    devices_.erase(id);
    devices_.emplace(id, Process::spawn({binary("edged").string(), "run", "--config",
                                         (dir / fmt::format("{}.yaml", id)).string()},
                                        dir / fmt::format("{}.log", id)));
}

void FleetHarness::startAllDevices() {
    for (const auto* id : {"edge-1", "edge-2", "edge-3"}) startDevice(id);
}

void FleetHarness::killDevice(const std::string& id) {
    auto it = devices_.find(id);
    REQUIRE(it != devices_.end());
    it->second.kill();
    devices_.erase(it);
}

std::string FleetHarness::server() const { return fmt::format("http://127.0.0.1:{}", http_port); }

nlohmann::json FleetHarness::devices() const {
    auto res = http::request("GET", server() + "/v1/devices", {}, {std::chrono::seconds(2)});
    if (!res || res->status != 200) return nullptr;
    auto body = nlohmann::json::parse(res->body, nullptr, false);
    return body.is_discarded() ? nlohmann::json(nullptr) : body;
}

nlohmann::json FleetHarness::device(const std::string& id) const {
    const auto all = devices();
    if (all.is_null()) return nullptr;
    for (const auto& d : all["devices"]) {
        if (d["id"] == id) return d;
    }
    return nullptr;
}

bool FleetHarness::waitConverged(std::chrono::milliseconds timeout) const {
    return waitUntil(
        [&] {
            const auto all = devices();
            if (all.is_null()) return false;
            for (const auto& d : all["devices"]) {
                if (!d.value("in_sync", false)) return false;
            }
            return true;
        },
        timeout, std::chrono::milliseconds(100));
}

nlohmann::json FleetHarness::localStatus(const std::string& id) const {
    auto res = runCommand({binary("edged").string(), "status", "--json", "--config",
                           (dir / fmt::format("{}.yaml", id)).string()});
    INFO(res.err);
    REQUIRE(res.exit_code == 0);
    return nlohmann::json::parse(res.out);
}

void FleetHarness::publishDesired(const std::string& id, const std::string& payload) const {
    const auto file = dir / "payload.json";
    test::writeFile(file, payload);
    auto res = runCommand({"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p",
                           std::to_string(broker.port()), "-q", "1", "-r", "-t",
                           fmt::format("edge/v1/dev/{}/desired", id), "-f", file.string()});
    INFO(res.err);
    REQUIRE(res.exit_code == 0);
}

}  // namespace edge::test

namespace edge::test {

void FleetHarness::appendDeviceConfig(const std::string& id, const std::string& yaml) const {
    const auto path = dir / fmt::format("{}.yaml", id);
    test::writeFile(path, test::readFile(path) + yaml);
}

int FleetHarness::enableArtifactStore(const TestPki& pki) const {
    const int port = freePort();
    const auto config = dir / "controlplane.yaml";
    test::writeFile(config, test::readFile(config) +
                                fmt::format("artifacts:\n  listen: 127.0.0.1:{}\n  tls:\n    cert: {}\n    key: {}\n"
                                            "    client_ca: {}\n",
                                            port, pki.crt("server").string(), pki.key("server").string(),
                                            pki.crt("ca").string()));
    return port;
}

std::filesystem::path FleetHarness::socket(const std::string& id) const {
    return dir / "state" / id / "edged.sock";
}

std::string FleetHarness::retainedDesired(const std::string& id) const {
    auto res = runCommand({"/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()),
                           "-C", "1", "-W", "10", "-t", fmt::format("edge/v1/dev/{}/desired", id)});
    INFO(res.err);
    REQUIRE(res.exit_code == 0);
    auto text = res.out;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
}

std::string FleetHarness::stateDigest(const std::string& id) const {
    store::LmdbOptions options;
    options.read_only = true;
    auto store = store::LmdbStore::open(dir / "state" / id / "db", options);
    REQUIRE(store);
    std::string all;
    auto st = (*store)->read([&](const store::ReadTxn& txn) -> Status {
        for (const auto* db : {"state", "bundle", "policies"}) {
            auto listed = txn.forEach(db, [&](std::string_view key, std::string_view value) {
                if (key != "last_contact") all += fmt::format("{}/{}={}\n", db, key, value);
                return true;
            });
            if (!listed) return listed;
        }
        return {};
    });
    REQUIRE(st);
    return security::sha256Hex(all);
}

nlohmann::json FleetHarness::stream(const std::string& id, const std::string& name, std::size_t limit) const {
    // 30 s: 10,000 records, their hash chain checked, in a sanitizer build on a busy machine.
    auto res = http::request("GET", fmt::format("{}/v1/devices/{}/{}?limit={}", server(), id, name, limit),
                             {}, {std::chrono::seconds(30)});
    if (!res || res->status != 200) return nullptr;
    auto body = nlohmann::json::parse(res->body, nullptr, false);
    return body.is_discarded() ? nlohmann::json(nullptr) : body;
}

}  // namespace edge::test
