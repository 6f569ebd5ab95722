// Local enforcement end to end: real mosquitto, controlplane and edged processes, real LMDB
// files, the decision API over edged's Unix socket.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "security/bundle_signing.hpp"
#include "shared/http/http.hpp"
#include "tests/integration/fleet_harness.hpp"
#include "tests/support/ports.hpp"

using namespace edge;
using namespace std::chrono_literals;

namespace {

std::string pod(const std::string& project, int gpus, const std::string& ns = "default") {
    return nlohmann::json{
        {"request",
         {{"kind", {{"kind", "Pod"}}},
          {"namespace", ns},
          {"object",
           {{"metadata", {{"name", "job"}, {"labels", {{"apexlogic.ai/project", project}}}}},
            {"spec",
             {{"containers",
               {{{"name", "main"},
                 {"resources", {{"requests", {{"nvidia.com/gpu", std::to_string(gpus)}}}}}}}}}}}}}}}
        .dump();
}

/// One request on a keep-alive connection; the status must be `expect`.
nlohmann::json call(http::UnixConnection& connection, const std::string& method, const std::string& target,
                    const std::string& body = {}, int expect = 200) {
    auto response = connection.send(method, target, body);
    REQUIRE(response);
    INFO(method << " " << target << " -> " << response->status << " " << response->body);
    REQUIRE(response->status == expect);
    return nlohmann::json::parse(response->body);
}

std::unique_ptr<http::UnixConnection> connect(const test::FleetHarness& fleet, const std::string& id) {
    // A socket file left by a killed daemon exists before the new one listens: retry the connect.
    std::unique_ptr<http::UnixConnection> out;
    REQUIRE(test::waitUntil(
        [&] {
            auto connection = http::UnixConnection::open(fleet.socket(id));
            if (connection) out = std::move(*connection);
            return out != nullptr;
        },
        15s));
    return out;
}

/// Takes the device's signed bundle from the broker, then stops the broker for good: the device
/// gets its bundle with `edged apply` and never sees a broker.
void provisionOffline(test::FleetHarness& fleet, const std::string& id) {
    const auto jws = fleet.retainedDesired(id);
    REQUIRE(!jws.empty());
    fleet.broker.stop();
    test::writeFile(fleet.dir / "bundle.jws", jws);
    auto applied = test::runCommand({test::binary("edged").string(), "apply", "--config",
                                     (fleet.dir / fmt::format("{}.yaml", id)).string(),
                                     (fleet.dir / "bundle.jws").string()});
    INFO(applied.err);
    REQUIRE(applied.exit_code == 0);
}

std::uint64_t seqOf(const std::string& decision_id) {
    return std::stoull(decision_id.substr(decision_id.rfind('-') + 1));
}

}  // namespace

TEST_CASE("Enforcement: decisions, budgets and the data API with the broker down for the whole test",
          "[integration]") {
    test::FleetHarness fleet;
    provisionOffline(fleet, "edge-1");
    fleet.startDevice("edge-1");
    auto api = connect(fleet, "edge-1");

    // FinOps: one GPU fits the hourly budget, eight do not.
    auto small = call(*api, "POST", "/v1/admit", pod("vision", 1));
    CHECK(small["allowed"] == true);
    CHECK(small["reasons"].empty());
    CHECK(small["policy_set"] == "main");
    auto big = call(*api, "POST", "/v1/admit", pod("vision", 8));
    CHECK(big["allowed"] == false);
    CHECK_THAT(big["reasons"].dump(), Catch::Contains("FinOps policy violation"));
    CHECK(big["decision_id"] != small["decision_id"]);
    // The OPA-style wrapper is accepted too.
    auto wrapped = call(*api, "POST", "/v1/admit", fmt::format(R"({{"input":{}}})", pod("vision", 8)));
    CHECK(wrapped["allowed"] == false);

    // The budget runs out while offline: 15 GPU-hours metered (37.5 of 40 a day) still admits one
    // more GPU-hour (40); one more metered GPU-hour denies.
    call(*api, "POST", "/v1/usage", R"({"project":"vision","workload":"train","accelerator":"gpu","gpu_seconds":54000})");
    CHECK(call(*api, "POST", "/v1/admit", pod("vision", 1))["allowed"] == true);
    call(*api, "POST", "/v1/usage", R"({"project":"vision","workload":"train","accelerator":"gpu","gpu_seconds":3600,"energy_joules":1000})");
    auto denied = call(*api, "POST", "/v1/admit", pod("vision", 1));
    CHECK(denied["allowed"] == false);
    CHECK_THAT(denied["reasons"].dump(), Catch::Contains("budget policy") && Catch::Contains("day"));
    auto usage = call(*api, "GET", "/v1/usage");
    CHECK(usage["projects"]["vision"]["day"]["gpu_seconds"] == 57600.0);
    CHECK(usage["projects"]["vision"]["month"]["reports"] == 2);

    // The data API, shaped like OPA's.
    auto deny = call(*api, "POST", "/v1/data/finops/deny", fmt::format(R"({{"input":{}}})", pod("vision", 8)));
    REQUIRE(deny["result"].is_array());
    CHECK(deny["result"].size() == 1);
    CHECK(deny.contains("decision_id"));
    auto undefined = call(*api, "POST", "/v1/data/finops/nothing_here", R"({"input":{}})");
    CHECK(!undefined.contains("result"));
    auto connectivity = call(*api, "GET", "/v1/data/edge/connectivity");
    CHECK(connectivity["result"]["online"] == false);
    auto device = call(*api, "GET", "/v1/data/edge/device/id");
    CHECK(device["result"] == "edge-1");
    CHECK(call(*api, "GET", "/v1/data/edge/usage/vision/day/gpu_seconds")["result"] == 57600.0);

    // Bad requests: clear errors, the daemon keeps serving.
    CHECK(call(*api, "POST", "/v1/admit", "{not json", 400)["error"]["message"].get<std::string>().size() > 0);
    call(*api, "POST", "/v1/admit", "[1,2]", 400);
    call(*api, "POST", "/v1/usage", R"({"project":"vision","gpu_seconds":-5})", 400);
    call(*api, "POST", "/v1/usage", R"({"gpu_seconds":5})", 400);
    call(*api, "GET", "/v1/nowhere", {}, 404);
    call(*api, "DELETE", "/v1/admit", {}, 405);
    auto huge = http::requestUnix(fleet.socket("edge-1"), "POST", "/v1/admit", std::string(2u << 20, ' '));
    REQUIRE(huge);
    CHECK(huge->status == 413);
    api = connect(fleet, "edge-1");
    CHECK(call(*api, "POST", "/v1/admit", pod("speech", 1))["allowed"] == true);

    // Usage and the budget survive a SIGKILL: the reports were committed before it.
    std::this_thread::sleep_for(300ms);
    fleet.killDevice("edge-1");
    fleet.startDevice("edge-1");
    api = connect(fleet, "edge-1");
    CHECK(call(*api, "POST", "/v1/admit", pod("vision", 1))["allowed"] == false);
    CHECK(call(*api, "GET", "/v1/usage")["projects"]["vision"]["day"]["gpu_seconds"] == 57600.0);

    // edged status shows the device offline, and the decisions it holds.
    const auto status = fleet.localStatus("edge-1");
    CHECK(status["connectivity"]["online"] == false);
    CHECK(status["connectivity"]["daemon"] == "running");
    CHECK(status["queues"]["decisions"]["head_seq"].get<std::uint64_t>() >= 10);
    CHECK(status["queues"]["decisions"]["dropped"] == 0);
}

TEST_CASE("Enforcement: a bundle whose policies do not compile never reaches the decision API",
          "[integration]") {
    test::FleetHarness fleet;
    fleet.startDevice("edge-1");
    REQUIRE(test::waitUntil([&] { return fleet.device("edge-1").value("in_sync", false); }, 30s));
    auto api = connect(fleet, "edge-1");
    const auto before = call(*api, "GET", "/health");

    auto key = *security::PrivateKey::loadFile(fleet.dir / "keys/targets-1.key.pem");
    bundle::Bundle b;
    b.device_id = "edge-1";
    b.version = before["bundle_version"].get<std::uint64_t>() + 5;
    b.issued_at = std::time(nullptr) - 10;
    b.expires_at = std::time(nullptr) + 3600;
    b.source = "broken";
    b.policies["policies/finops.rego"] = "package finops\ndeny contains msg if { msg := }\n";
    fleet.publishDesired("edge-1", *security::signBundle(b, {key}));
    REQUIRE(test::waitUntil(
        [&] {
            const auto d = fleet.device("edge-1");
            return !d.is_null() && d["last_error"].is_object() && d["last_error"]["code"] == "bad_policy";
        },
        15s));
    CHECK(call(*api, "GET", "/health")["bundle_version"] == before["bundle_version"]);
    CHECK(call(*api, "POST", "/v1/admit", pod("vision", 8))["allowed"] == false);
}

TEST_CASE("Enforcement: 10,000 decisions made while the broker is down reach the control plane exactly once",
          "[integration]") {
    test::FleetHarness fleet;
    fleet.startDevice("edge-1");
    REQUIRE(test::waitUntil([&] { return fleet.device("edge-1").value("in_sync", false); }, 30s));
    auto api = connect(fleet, "edge-1");
    fleet.broker.stop();

    std::set<std::string> ids;
    for (int i = 0; i < 10000; ++i) {
        auto response = api->send("POST", "/v1/admit", pod(i % 2 ? "vision" : "speech", 1 + i % 8));
        REQUIRE(response);
        REQUIRE(response->status == 200);
        ids.insert(nlohmann::json::parse(response->body)["decision_id"].get<std::string>());
    }
    CHECK(ids.size() == 10000);
    // The last group commit lands a moment after the last answer.
    CHECK(test::waitUntil([&] { return fleet.localStatus("edge-1")["queues"]["decisions"]["committed_seq"] == 10000; }, 10s));
    CHECK(fleet.localStatus("edge-1")["connectivity"]["online"] == false);

    fleet.broker.start();
    // The device trims only what the control plane acknowledged: once all is acked, all is stored.
    REQUIRE(test::waitUntil([&] { return fleet.localStatus("edge-1")["queues"]["decisions"]["acked_seq"] == 10000; },
                            60s, 250ms));
    const auto stream = fleet.stream("edge-1", "decisions");
    REQUIRE(!stream.is_null());
    CHECK(stream["chain"]["records"] == 10000);
    CHECK(stream["chain"]["verified"] == true);
    CHECK(stream["chain"]["gaps"].empty());
    CHECK(stream["chain"]["first_seq"] == 1);
    CHECK(stream["chain"]["last_seq"] == 10000);
    std::set<std::string> stored;
    for (const auto& record : stream["records"]) stored.insert(record["id"].get<std::string>());
    CHECK(stored == ids);
    CHECK(fleet.localStatus("edge-1")["queues"]["decisions"]["bytes"] == 0);  // trimmed
    // The operator's view of the same log.
    auto shown = test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(), "decisions",
                                   "edge-1", "--after", "9995"});
    CHECK(shown.exit_code == 0);
    CHECK_THAT(shown.out, Catch::Contains("10000") && Catch::Contains("admit") &&
                              Catch::Contains("chain: 10000 records stored, seq 1..10000, 0 gaps") &&
                              Catch::Contains("verified"));
    CHECK(test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(), "decisions", "../etc"})
              .exit_code == 2);
    // Telemetry travels the same way (health and usage records).
    call(*api, "POST", "/v1/usage", R"({"project":"vision","gpu_seconds":60})");
    CHECK(test::waitUntil(
        [&] {
            const auto telemetry = fleet.stream("edge-1", "telemetry");
            if (telemetry.is_null()) return false;
            for (const auto& r : telemetry["records"]) {
                if (r.value("type", "") == "usage" && r.value("project", "") == "vision") return true;
            }
            return false;
        },
        15s));
}

TEST_CASE("Enforcement: SIGKILL under load loses no committed decision and breaks no chain",
          "[integration]") {
    test::FleetHarness fleet;
    fleet.appendDeviceConfig("edge-1", "  max_uncommitted: 1000\n");
    fleet.startDevice("edge-1");
    REQUIRE(test::waitUntil([&] { return fleet.device("edge-1").value("in_sync", false); }, 30s));

    std::vector<std::string> before_kill;
    {
        auto api = connect(fleet, "edge-1");
        std::atomic<bool> stop{false};
        std::thread killer([&] {
            std::this_thread::sleep_for(700ms);
            fleet.devices_.at("edge-1").kill();
            stop = true;
        });
        while (true) {
            auto response = api->send("POST", "/v1/admit", pod("vision", 1));
            if (!response) break;  // killed
            if (response->status == 503) continue;  // the log is behind the disk: retry
            REQUIRE(response->status == 200);
            before_kill.push_back(nlohmann::json::parse(response->body)["decision_id"]);
        }
        killer.join();
    }
    REQUIRE(before_kill.size() > 50);
    fleet.devices_.erase("edge-1");
    const auto after = fleet.localStatus("edge-1");
    const std::uint64_t committed = after["queues"]["decisions"]["committed_seq"];
    CHECK(committed >= 1);
    CHECK(committed <= before_kill.size());
    // Answered but not committed: bounded by queues.max_uncommitted (1000 here) however slow the disk.
    CHECK(committed + 1000 >= before_kill.size());

    fleet.startDevice("edge-1");
    std::vector<std::string> after_restart;
    auto api = connect(fleet, "edge-1");
    for (int i = 0; i < 200; ++i) after_restart.push_back(call(*api, "POST", "/v1/admit", pod("speech", 1))["decision_id"]);

    REQUIRE(test::waitUntil(
        [&] { return fleet.localStatus("edge-1")["queues"]["decisions"]["acked_seq"] == committed + 200; }, 60s, 250ms));
    const auto stream = fleet.stream("edge-1", "decisions");
    REQUIRE(!stream.is_null());
    CHECK(stream["chain"]["last_seq"] == committed + 200);
    CHECK(stream["chain"]["verified"] == true);
    CHECK(stream["chain"]["gaps"].empty());
    CHECK(stream["chain"]["problems"].empty());
    std::set<std::string> stored;
    for (const auto& record : stream["records"]) stored.insert(record["id"].get<std::string>());
    for (const auto& id : before_kill) {
        if (seqOf(id) <= committed) CHECK(stored.contains(id));
    }
    for (const auto& id : after_restart) CHECK(stored.contains(id));
}

TEST_CASE("Enforcement: a full decision log drops its oldest records and reports the drop",
          "[integration]") {
    test::FleetHarness fleet;
    fleet.appendDeviceConfig("edge-1", "  decisions_max_bytes: 16384\n");
    provisionOffline(fleet, "edge-1");
    fleet.startDevice("edge-1");
    auto api = connect(fleet, "edge-1");
    for (int i = 0; i < 300; ++i) call(*api, "POST", "/v1/admit", pod("vision", 1));
    REQUIRE(test::waitUntil([&] { return fleet.localStatus("edge-1")["queues"]["decisions"]["committed_seq"] == 300; }, 15s));
    const auto status = fleet.localStatus("edge-1");
    const std::uint64_t dropped = status["queues"]["decisions"]["dropped"];
    CHECK(dropped > 200);
    CHECK(status["queues"]["decisions"]["bytes"].get<std::uint64_t>() <= 16384);

    // Back online: the control plane gets what was kept, and the gap is explained by the drops.
    fleet.broker.start();
    REQUIRE(test::waitUntil([&] { return fleet.localStatus("edge-1")["queues"]["decisions"]["acked_seq"] == 300; },
                            60s, 250ms));
    const auto stream = fleet.stream("edge-1", "decisions");
    REQUIRE(!stream.is_null());
    CHECK(stream["chain"]["last_seq"] == 300);
    CHECK(stream["chain"]["records"] == 300 - dropped);
    CHECK(stream["chain"]["dropped_reported"] == dropped);
    CHECK(stream["chain"]["verified"] == true);
}

TEST_CASE("Enforcement: past offline.max_age the fail-safe set applies, and a fresh bundle brings back the main set",
          "[integration]") {
    test::FleetHarness fleet;
    auto yaml = test::readFile(fleet.dir / "fleet/fleet.yaml");
    const auto at = yaml.find("max_age: 72h");
    REQUIRE(at != std::string::npos);
    yaml.replace(at, 12, "max_age: 2s");
    test::writeFile(fleet.dir / "fleet/fleet.yaml", yaml);
    REQUIRE(test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(), "reload"}).exit_code == 0);
    fleet.startDevice("edge-1");
    REQUIRE(test::waitUntil([&] { return fleet.device("edge-1").value("in_sync", false); }, 30s));
    auto api = connect(fleet, "edge-1");
    auto online = call(*api, "POST", "/v1/admit", pod("vision", 1));
    CHECK(online["allowed"] == true);
    CHECK(online["policy_set"] == "main");

    fleet.broker.stop();
    // Within max_age the main set still applies…
    CHECK(call(*api, "POST", "/v1/admit", pod("vision", 1))["policy_set"] == "main");
    // …past it, the fail-safe set refuses new workloads (system ones excepted).
    REQUIRE(test::waitUntil([&] { return call(*api, "POST", "/v1/admit", pod("vision", 1))["policy_set"] == "lockdown"; }, 10s));
    auto locked = call(*api, "POST", "/v1/admit", pod("vision", 1));
    CHECK(locked["allowed"] == false);
    CHECK_THAT(locked["reasons"].dump(), Catch::Contains("new workloads are refused"));
    CHECK(call(*api, "POST", "/v1/admit", pod("vision", 1, "kube-system"))["allowed"] == true);
    CHECK(call(*api, "GET", "/health")["policy_set"] == "lockdown");

    // Back in contact, with a fresh bundle: the main set again.
    const std::uint64_t version = call(*api, "GET", "/health")["bundle_version"];
    fleet.broker.start();
    std::ofstream(fleet.dir / "fleet/data/budget.yaml", std::ios::app) << "  reviewed: true\n";
    REQUIRE(test::runCommand({test::binary("edgectl").string(), "--server", fleet.server(), "reload"}).exit_code == 0);
    REQUIRE(test::waitUntil([&] { return call(*api, "GET", "/health")["bundle_version"] == version + 1; }, 30s));
    // The retained bundle can arrive just before the client reports its subscriptions done (the
    // broker sends both at once): the device counts itself online, and the main set applies,
    // a moment later.
    REQUIRE(test::waitUntil([&] { return call(*api, "GET", "/health")["policy_set"] == "main"; }, 10s));
    auto back = call(*api, "POST", "/v1/admit", pod("vision", 1));
    CHECK(back["policy_set"] == "main");
    CHECK(back["allowed"] == true);
}
