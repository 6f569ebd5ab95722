// End to end: real mosquitto, real controlplane and edged processes, real LMDB files.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <thread>

#include "security/bundle_signing.hpp"
#include "tests/integration/fleet_harness.hpp"

using namespace edge;
using namespace std::chrono_literals;

namespace {

std::map<std::string, std::uint64_t> appliedVersions(const test::FleetHarness& fleet) {
    std::map<std::string, std::uint64_t> out;
    for (const auto* id : {"edge-1", "edge-2", "edge-3"}) {
        out[id] = fleet.localStatus(id)["applied"]["version"].get<std::uint64_t>();
    }
    return out;
}

}  // namespace

TEST_CASE("Fleet: three devices converge on their signed bundles", "[integration]") {
    test::FleetHarness fleet;
    fleet.startAllDevices();
    REQUIRE(fleet.waitConverged(30s));
    const auto all = fleet.devices();
    for (const auto& d : all["devices"]) {
        CHECK(d["online"] == true);
        CHECK(d["applied_version"] == d["desired_version"]);
        CHECK(d["last_error"].is_null());
        const auto local = fleet.localStatus(d["id"]);
        CHECK(local["applied"]["version"] == d["desired_version"]);
    }
    CHECK(fleet.localStatus("edge-1")["applied"]["policies"].size() == 4);
    CHECK(fleet.localStatus("edge-3")["applied"]["policies"] ==
          nlohmann::json::array({"policies/locality.rego"}));

    // edgectl prints the same table and JSON.
    auto table = test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(), "devices"});
    CHECK(table.exit_code == 0);
    CHECK_THAT(table.out, Catch::Contains("DEVICE") && Catch::Contains("edge-3"));
    auto json = test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(),
                                  "devices", "--output", "json"});
    CHECK(json.exit_code == 0);
    CHECK(nlohmann::json::parse(json.out)["devices"].size() == 3);
}

TEST_CASE("Fleet: forged, misbound, replayed, expired and uncompilable bundles are rejected and change nothing",
          "[integration]") {
    test::FleetHarness fleet;
    fleet.startDevice("edge-1");
    REQUIRE(test::waitUntil([&] { return fleet.device("edge-1").value("in_sync", false); }, 30s));
    const auto before_status = fleet.localStatus("edge-1");
    const auto before_db = fleet.stateDigest("edge-1");
    const std::uint64_t applied = before_status["applied"]["version"];

    auto key = *security::PrivateKey::loadFile(fleet.dir / "keys/targets-1.key.pem");
    auto forger = *security::PrivateKey::generate(security::Algorithm::kEd25519);
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    auto make = [&](std::uint64_t version, std::string device, std::int64_t expires) {
        bundle::Bundle b;
        b.device_id = std::move(device);
        b.version = version;
        b.issued_at = now - 100;
        b.expires_at = expires;
        b.source = "attacker";
        b.policies["policies/evil.rego"] = "package evil\n";
        return b;
    };
    // Correctly signed, but its Rego does not compile: refused like a forged bundle.
    auto broken_policy = make(applied + 10, "edge-1", now + 3600);
    broken_policy.policies["policies/evil.rego"] = "package evil\ndeny contains msg if {\n";
    struct Case {
        std::string payload;
        std::string code;
    };
    const std::vector<Case> cases = {
        {*security::signBundle(make(applied + 10, "edge-1", now + 3600), {forger}), "bad_signature"},
        {*security::signBundle(make(applied + 10, "edge-2", now + 3600), {key}), "wrong_device"},
        {*security::signBundle(make(applied, "edge-1", now + 3600), {key}), "stale_version"},
        {*security::signBundle(make(applied + 10, "edge-1", now - 10), {key}), "expired"},
        {*security::signBundle(broken_policy, {key}), "bad_policy"},
    };
    for (const auto& c : cases) {
        INFO(c.code);
        fleet.publishDesired("edge-1", c.payload);
        CHECK(test::waitUntil(
            [&] {
                const auto d = fleet.device("edge-1");
                return !d.is_null() && d["last_error"].is_object() && d["last_error"]["code"] == c.code;
            },
            15s));
        CHECK(fleet.localStatus("edge-1")["applied"] == before_status["applied"]);
        CHECK(fleet.stateDigest("edge-1") == before_db);
        CHECK(fleet.device("edge-1")["applied_version"] == applied);
    }
}

TEST_CASE("Fleet: edged killed with SIGKILL restarts with the broker down and keeps its state",
          "[integration]") {
    test::FleetHarness fleet;
    fleet.startDevice("edge-2");
    REQUIRE(test::waitUntil([&] { return fleet.device("edge-2").value("in_sync", false); }, 30s));
    const auto before = fleet.localStatus("edge-2");

    fleet.killDevice("edge-2");
    // The broker delivers the last will: the control plane sees the device offline.
    CHECK(test::waitUntil([&] { return fleet.device("edge-2")["online"] == false; }, 15s));
    fleet.broker.stop();
    fleet.startDevice("edge-2");
    std::this_thread::sleep_for(1500ms);
    CHECK(fleet.devices_.at("edge-2").running());
    CHECK(fleet.localStatus("edge-2")["applied"] == before["applied"]);
    const auto log = test::readFile(fleet.dir / "edge-2.log");
    CHECK_THAT(log, Catch::Contains("loaded from the store"));

    // Back online: it reconnects by itself and reports the same version.
    fleet.broker.start();
    CHECK(test::waitUntil(
        [&] {
            const auto d = fleet.device("edge-2");
            return !d.is_null() && d["online"] == true && d["in_sync"] == true;
        },
        30s));
    CHECK(fleet.localStatus("edge-2")["applied"] == before["applied"]);
}

TEST_CASE("Fleet: a changed fleet directory reaches exactly the devices it changes",
          "[integration]") {
    test::FleetHarness fleet;
    fleet.startAllDevices();
    REQUIRE(fleet.waitConverged(30s));
    const auto v0 = appliedVersions(fleet);

    // finops.rego belongs to group gpu-edge only: edge-1 and edge-2.
    std::ofstream(fleet.dir / "fleet/policies/finops.rego", std::ios::app) << "\n# budget review\n";
    auto reload = test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(), "reload"});
    REQUIRE(reload.exit_code == 0);
    CHECK_THAT(reload.out, Catch::Contains("2 devices changed"));
    REQUIRE(fleet.waitConverged(30s));
    auto v1 = appliedVersions(fleet);
    CHECK(v1["edge-1"] == v0.at("edge-1") + 1);
    CHECK(v1["edge-2"] == v0.at("edge-2") + 1);
    CHECK(v1["edge-3"] == v0.at("edge-3"));

    // A broken fleet is refused as a whole; nothing moves.
    const auto good = test::readFile(fleet.dir / "fleet/fleet.yaml");
    std::ofstream(fleet.dir / "fleet/fleet.yaml", std::ios::trunc) << "groups: [oops\n";
    auto bad = test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(), "reload"});
    CHECK(bad.exit_code != 0);
    CHECK_THAT(bad.err, Catch::Contains("fleet.yaml"));
    std::ofstream(fleet.dir / "fleet/fleet.yaml", std::ios::trunc) << good;

    // SIGHUP re-reads too; locality data is in every group.
    std::ofstream(fleet.dir / "fleet/data/locality.yaml", std::ios::app) << "  audited: true\n";
    fleet.controlplane->signal(SIGHUP);
    REQUIRE(test::waitUntil(
        [&] {
            const auto all = fleet.devices();
            if (all.is_null()) return false;
            for (const auto& d : all["devices"]) {
                if (d["desired_version"] != v1.at(d["id"].get<std::string>()) + 1) return false;
            }
            return true;
        },
        15s));
    REQUIRE(fleet.waitConverged(30s));
    auto v2 = appliedVersions(fleet);
    for (const auto& [id, v] : v1) CHECK(v2[id] == v + 1);

    // A restarted control plane keeps the versions: no device gets a new bundle.
    fleet.controlplane->signal(SIGTERM);
    CHECK(fleet.controlplane->wait(10s).has_value());
    fleet.startControlPlane();
    REQUIRE(fleet.waitConverged(30s));
    CHECK(appliedVersions(fleet) == v2);
}
