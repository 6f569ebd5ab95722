// The decision API's core (policy sets, metering, DecisionService) over a real LMDB file.
#include <catch2/catch.hpp>

#include "edged/decision_service.hpp"
#include "edged/group_writer.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/support/finops_policy.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;
using namespace edge::edged;

namespace {

constexpr std::int64_t kNov29 = 1795930200;  // 2026-11-29T05:30:00Z, a Sunday

bundle::Bundle finopsBundle() {
    bundle::Bundle b;
    b.device_id = "dev-1";
    b.version = 3;
    b.policies["finops.rego"] = test::kFinopsPolicy;
    b.policies["usage.rego"] = R"(package usage
import rego.v1
deny contains "over the daily GPU budget" if {
  data.edge.usage[input.project].day.gpu_seconds > 100
}
)";
    b.data = {{"finops_data",
               {{"unit_costs", {{"nvidia_gpu", {{"hourly_rate", 2.5}}}}},
                {"budgets", {{"vision", {{"gpu_hourly_limit", 10}}}}}}}};
    b.enforcement.policy_sets["lockdown"] = {{"lockdown.rego", "package lockdown\nimport rego.v1\ndeny contains \"locked\" if true\n"}};
    b.enforcement.offline = {60, "lockdown"};
    return b;
}

std::string pod(int gpus) {
    return R"({"project":"vision","request":{"kind":{"kind":"Pod"},"object":{"metadata":{"labels":{"apexlogic.ai/project":"vision"}},"spec":{"containers":[{"name":"a","resources":{"requests":{"nvidia.com/gpu":")" +
           std::to_string(gpus) + R"("}}}]}}}})";
}

/// The service over a real LMDB file; commits complete when pump() runs the loop.
struct Fixture {
    explicit Fixture(const std::filesystem::path& dir)
        : store(std::move(*store::LmdbStore::open(dir / "db"))),
          writer(*store, loop),
          decisions(*store, writer, {"decisions", 1u << 20}),
          telemetry(*store, writer, {"telemetry", 1u << 20}),
          meter(*store, writer, clock),
          service(clock, meter, decisions, telemetry, {"dev-1", {{"site", "a"}}, {{"accelerators", {"l4"}}}}, {}) {
        REQUIRE(decisions.load());
        REQUIRE(telemetry.load());
        REQUIRE(meter.load());
    }
    void pump() {
        while (!decisions.idle() || !telemetry.idle() || meter.pending() > 0) {
            writer.flush();
            loop.context().poll();
        }
        writer.flush();
        loop.context().poll();
    }
    test::FakeClock clock{kNov29};
    AsioEventLoop loop;
    std::unique_ptr<store::LmdbStore> store;
    GroupWriter writer;
    DurableQueue decisions;
    DurableQueue telemetry;
    Meter meter;
    DecisionService service;
};

nlohmann::json body(const http::Response& r) { return nlohmann::json::parse(r.body); }

}  // namespace

TEST_CASE("Data API paths become references", "[decision]") {
    CHECK(*dataPathQuery("") == "data");
    CHECK(*dataPathQuery("finops/deny") == "data.finops.deny");
    CHECK(*dataPathQuery("/a//b/") == "data.a.b");
    CHECK(*dataPathQuery("a b/in/0/x\"y") == R"(data["a b"]["in"]["0"]["x\"y"])");
}

TEST_CASE("Policy sets compile once per bundle and refuse what does not compile", "[decision]") {
    auto sets = PolicySets::build(finopsBundle());
    REQUIRE(sets);
    // Default entry points: data.<pkg>.deny of every package of the main set.
    REQUIRE((*sets)->main->entrypoints.size() == 2);
    CHECK((*sets)->main->entrypoints[0].first == "data.finops.deny");
    CHECK((*sets)->named.at("lockdown")->entrypoints[0].first == "data.lockdown.deny");
    // The fail-safe set applies only past max_age without contact.
    CHECK((*sets)->select(true, 1000).name == "main");
    CHECK((*sets)->select(false, 60).name == "main");
    CHECK((*sets)->select(false, 61).name == "lockdown");

    auto broken = finopsBundle();
    broken.policies["finops.rego"] = "package finops\ndeny contains x if {";
    CHECK_FALSE(PolicySets::build(broken));
    auto broken_set = finopsBundle();
    broken_set.enforcement.policy_sets["lockdown"]["lockdown.rego"] = "package lockdown\nallow := y";
    CHECK_FALSE(PolicySets::build(broken_set));
    auto bad_entry = finopsBundle();
    bad_entry.enforcement.entrypoints = {"data.finops.deny["};
    CHECK_FALSE(PolicySets::build(bad_entry));
}

TEST_CASE("Usage windows are UTC calendar buckets", "[decision]") {
    CHECK(windowBucket("hour", kNov29) == "2026-11-29T05");
    CHECK(windowBucket("day", kNov29) == "2026-11-29");
    CHECK(windowBucket("week", kNov29) == "2026-11-23");  // its Monday
    CHECK(windowBucket("month", kNov29) == "2026-11");
    CHECK(windowBucket("total", kNov29) == "all");
    CHECK(windowBucket("week", kNov29 - 6 * 86400) == "2026-11-23");
}

TEST_CASE("Usage reports are validated, metered per window and survive a reopen", "[decision]") {
    CHECK_FALSE(parseUsageReport("[]"));
    CHECK_FALSE(parseUsageReport(R"({"gpu_seconds": 1})"));
    CHECK_FALSE(parseUsageReport(R"({"project": "p", "gpu_seconds": -1})"));
    CHECK_FALSE(parseUsageReport(R"({"project": "p", "cost": 1})"));
    test::TempDir dir;
    {
        Fixture f(dir.path());
        for (int i = 0; i < 3; ++i) f.meter.record(*parseUsageReport(R"({"project":"vision","gpu_seconds":40})"));
        const auto& usage = f.meter.usageValue({"day", "month"});
        CHECK(usage.get("vision")->get("day")->get("gpu_seconds")->asNumber().asDouble() == 120);
        CHECK(usage.get("vision")->get("month")->get("reports")->asNumber().asDouble() == 3);
        CHECK(usage.get("vision")->get("hour") == nullptr);
        f.pump();
    }
    Fixture again(dir.path());
    CHECK(again.meter.totalsJson()["projects"]["vision"]["day"]["gpu_seconds"] == 120.0);
    // A new day starts from zero; the month keeps counting.
    again.clock.advance(std::chrono::hours(24));
    const auto& usage = again.meter.usageValue({"day", "month"});
    CHECK(usage.get("vision")->get("day") == nullptr);
    CHECK(usage.get("vision")->get("month")->get("gpu_seconds")->asNumber().asDouble() == 120);
}

TEST_CASE("Admission: allow, deny with reasons, budgets from metered usage, every decision logged", "[decision]") {
    test::TempDir dir;
    Fixture f(dir.path());
    CHECK(f.service.admit(pod(1)).status == 503);  // no bundle: fails closed
    f.service.setPolicies(*PolicySets::build(finopsBundle()));
    f.service.setConnectivity({true, kNov29});

    auto ok = body(f.service.admit(pod(1)));
    CHECK(ok["allowed"] == true);
    CHECK(ok["policy_set"] == "main");
    auto denied = body(f.service.admit(pod(8)));
    CHECK(denied["allowed"] == false);
    CHECK(denied["reasons"].size() == 1);

    CHECK(f.service.reportUsage(R"({"project":"vision","gpu_seconds":101})").status == 200);
    auto over = body(f.service.admit(pod(1)));
    CHECK(over["reasons"] == nlohmann::json::array({"over the daily GPU budget"}));

    CHECK(f.service.admit("{").status == 400);
    CHECK(f.service.admit("[1]").status == 400);
    CHECK(f.service.handle({"GET", "/v1/admit", {}, ""}).status == 405);
    CHECK(f.service.handle({"GET", "/v1/other", {}, ""}).status == 404);

    // Data API: defined and undefined results.
    auto device = body(f.service.data("edge/device/labels/site", ""));
    CHECK(device["result"] == "a");
    auto none = body(f.service.data("finops/nothing", R"({"input":{}})"));
    CHECK_FALSE(none.contains("result"));
    CHECK(f.service.data("finops/deny", R"({"not_input":1})").status == 400);

    f.pump();
    CHECK(f.decisions.committedSeq() == 5);  // 3 admits + 2 data (bad requests are not decisions)
    auto records = f.decisions.readCommitted(0, 100, 1u << 20);
    REQUIRE(records);
    const auto second = nlohmann::json::parse((*records)[1].second);
    CHECK(second["id"] == denied["decision_id"]);
    CHECK(second["result"]["allowed"] == false);
    CHECK(second["bundle_version"] == 3);
    CHECK(second["input_sha256"].get<std::string>().size() == 64);
    CHECK_FALSE(second.contains("input"));  // log_input is off
    CHECK(f.telemetry.committedSeq() == 1);  // the usage report
}

TEST_CASE("Policies see the device's attestation state, and a change takes effect at once", "[decision]") {
    test::TempDir dir;
    Fixture f(dir.path());
    auto b = finopsBundle();
    b.policies["trust.rego"] = R"(package trust
import rego.v1
deny contains "the device is not attested" if {
  data.edge.device.attestation.state != "enrolled"
}
)";
    f.service.setPolicies(*PolicySets::build(b));
    f.service.setConnectivity({true, kNov29});
    CHECK(body(f.service.data("edge/device/attestation/state", ""))["result"] == "unavailable");
    CHECK(body(f.service.admit(pod(1)))["reasons"] == nlohmann::json::array({"the device is not attested"}));
    f.service.setAttestation("enrolled");
    CHECK(body(f.service.data("edge/device/attestation/state", ""))["result"] == "enrolled");
    CHECK(body(f.service.admit(pod(1)))["allowed"] == true);
    f.service.setAttestation("error");
    CHECK(body(f.service.admit(pod(1)))["allowed"] == false);
}

TEST_CASE("Admission: offline past max_age switches to the fail-safe set", "[decision]") {
    test::TempDir dir;
    Fixture f(dir.path());
    f.service.setPolicies(*PolicySets::build(finopsBundle()));
    f.service.setConnectivity({false, kNov29});
    CHECK(body(f.service.admit(pod(1)))["policy_set"] == "main");
    f.clock.advance(std::chrono::seconds(61));
    auto locked = body(f.service.admit(pod(1)));
    CHECK(locked["policy_set"] == "lockdown");
    CHECK(locked["reasons"] == nlohmann::json::array({"locked"}));
    CHECK(body(f.service.data("edge/connectivity/offline_seconds", ""))["result"] == 61);
    f.service.setConnectivity({true, kNov29 + 61});
    CHECK(body(f.service.admit(pod(1)))["policy_set"] == "main");
}

TEST_CASE("Admission: answered-but-uncommitted decisions are bounded, then 503 until the disk catches up",
          "[decision]") {
    test::TempDir dir;
    Fixture f(dir.path());
    DecisionService bounded(f.clock, f.meter, f.decisions, f.telemetry, {"dev-1", {}, {}},
                            {std::chrono::milliseconds(100), 3});
    bounded.setPolicies(*PolicySets::build(finopsBundle()));
    // Commits complete only when the loop turns (pump): until then the three stay pending.
    for (int i = 0; i < 3; ++i) CHECK(bounded.admit(pod(1)).status == 200);
    const auto behind = bounded.admit(pod(1));
    CHECK(behind.status == 503);
    CHECK_THAT(behind.body, Catch::Contains("waiting for the disk"));
    CHECK(bounded.data("finops/deny", "").status == 503);
    f.pump();
    CHECK(bounded.admit(pod(1)).status == 200);
    f.pump();
    CHECK(f.decisions.committedSeq() == 4);
}

TEST_CASE("Admission: an evaluation past its deadline is a 503, not a hang", "[decision]") {
    test::TempDir dir;
    Fixture f(dir.path());
    auto b = finopsBundle();
    b.policies["slow.rego"] = R"(package slow
import rego.v1
deny contains "never" if {
  count([1 | some i in numbers.range(1, 5000); some j in numbers.range(1, 5000)]) < 0
}
)";
    f.service.setPolicies(*PolicySets::build(b));
    const auto response = f.service.admit(pod(1));
    CHECK(response.status == 503);
    CHECK_THAT(response.body, Catch::Contains("data.slow.deny"));
}
