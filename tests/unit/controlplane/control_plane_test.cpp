#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "controlplane/control_plane.hpp"
#include "security/bundle_signing.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_event_loop.hpp"
#include "tests/fakes/fake_mqtt_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;

namespace {

const std::filesystem::path kExampleFleet =
    std::filesystem::path(EDGE_TEST_SOURCE_DIR) / "deploy/examples/fleet";

struct Rig {
    test::TempDir dir;
    test::FakeEventLoop loop;
    test::FakeClock clock;
    test::FakeMqttClient mqtt;
    security::PrivateKey key = *security::PrivateKey::generate(security::Algorithm::kEd25519);
    std::unique_ptr<store::LmdbStore> store;
    std::unique_ptr<controlplane::ControlPlane> cp;

    Rig() {
        std::filesystem::copy(kExampleFleet, dir / "fleet", std::filesystem::copy_options::recursive);
        open();
    }
    void open() {
        cp.reset();
        store.reset();
        store = std::move(*store::LmdbStore::open(dir / "db"));
        controlplane::Settings settings;
        settings.fleet_dir = dir / "fleet";
        cp = std::make_unique<controlplane::ControlPlane>(loop, clock, *store, mqtt,
                                                          std::vector{key}, settings);
        mqtt.published.clear();
        REQUIRE(cp->start());
    }
    /// The bundles published, verified, by device (the last one of each).
    std::map<std::string, bundle::Bundle> publishedBundles() {
        security::TrustRoot root = security::TrustRoot::create({key.publicKey()}, 1);
        std::map<std::string, bundle::Bundle> out;
        for (const auto& m : mqtt.published) {
            if (!m.topic.ends_with("/desired") || m.payload.empty()) continue;
            const auto id = m.topic.substr(std::string("edge/v1/dev/").size(),
                                           m.topic.size() - std::string("edge/v1/dev/").size() - 8);
            auto b = security::verifyBundle(m.payload, root, {id, 0, clock.unixSeconds()});
            REQUIRE(b);
            CHECK(m.retained);
            CHECK(m.qos == 1);
            out[id] = *b;
        }
        return out;
    }
    std::map<std::string, std::uint64_t> publishedVersions() {
        std::map<std::string, std::uint64_t> out;
        for (const auto& [id, b] : publishedBundles()) out[id] = b.version;
        return out;
    }
};

}  // namespace

TEST_CASE("ControlPlane: publishes one signed bundle per device, retained, on connect") {
    Rig rig;
    // Only what devices send: the control plane's own attest/* messages must not come back to it.
    CHECK(rig.mqtt.subscriptions ==
          std::vector<std::string>{"edge/v1/dev/+/status", "edge/v1/dev/+/decisions", "edge/v1/dev/+/telemetry",
                                   "edge/v1/dev/+/attest/enroll", "edge/v1/dev/+/attest/activate",
                                   "edge/v1/dev/+/attest/quote"});
    rig.mqtt.connect();
    auto versions = rig.publishedVersions();
    CHECK(versions == std::map<std::string, std::uint64_t>{{"edge-1", 1}, {"edge-2", 1}, {"edge-3", 1}});
}

TEST_CASE("ControlPlane: reload publishes new versions only for devices whose bundle changed") {
    Rig rig;
    rig.mqtt.connect();
    rig.mqtt.published.clear();
    // finops.rego is only in group gpu-edge (edge-1, edge-2).
    std::ofstream(rig.dir / "fleet/policies/finops.rego", std::ios::app) << "\n# tightened\n";
    auto report = rig.cp->reload();
    REQUIRE(report);
    CHECK(report->changed == std::vector<std::string>{"edge-1", "edge-2"});
    CHECK(rig.publishedVersions() == std::map<std::string, std::uint64_t>{{"edge-1", 2}, {"edge-2", 2}});

    rig.mqtt.published.clear();
    auto again = rig.cp->reload();
    REQUIRE(again);
    CHECK(again->changed.empty());
    CHECK(rig.mqtt.published.empty());
}

TEST_CASE("ControlPlane: versions keep growing across restarts") {
    Rig rig;
    std::ofstream(rig.dir / "fleet/data/locality.yaml", std::ios::app) << "extra: 1\n";
    REQUIRE(rig.cp->reload());
    rig.open();  // same LMDB, new process state
    rig.mqtt.connect();
    CHECK(rig.publishedVersions() == std::map<std::string, std::uint64_t>{{"edge-1", 2}, {"edge-2", 2}, {"edge-3", 2}});
    std::ofstream(rig.dir / "fleet/data/locality.yaml", std::ios::app) << "more: 2\n";
    rig.mqtt.published.clear();
    REQUIRE(rig.cp->reload());
    CHECK(rig.publishedVersions() == std::map<std::string, std::uint64_t>{{"edge-1", 3}, {"edge-2", 3}, {"edge-3", 3}});
}

TEST_CASE("ControlPlane: retry re-signs one device's bundle with the next generation, kept across restarts") {
    Rig rig;
    rig.mqtt.connect();
    rig.mqtt.published.clear();
    http::Request post;
    post.method = "POST";
    post.path = "/v1/devices/edge-2/retry";
    auto res = rig.cp->handle(post);
    REQUIRE(res.status == 200);
    CHECK(nlohmann::json::parse(res.body) == nlohmann::json{{"device", "edge-2"}, {"retry", 1}, {"version", 2}});
    auto published = rig.publishedBundles();
    REQUIRE(published.size() == 1);  // edge-2 only
    CHECK(published["edge-2"].version == 2);
    CHECK(published["edge-2"].retry == 1);

    rig.mqtt.published.clear();
    res = rig.cp->handle(post);
    REQUIRE(res.status == 200);
    CHECK(nlohmann::json::parse(res.body)["retry"] == 2);
    CHECK(rig.publishedBundles()["edge-2"].retry == 2);

    // A restart keeps the generation: the same fleet signs nothing new.
    rig.open();
    rig.mqtt.connect();
    CHECK(rig.publishedBundles()["edge-2"].retry == 2);
    rig.mqtt.published.clear();
    auto report = rig.cp->reload();
    REQUIRE(report);
    CHECK(report->changed.empty());
    // And a change to the fleet keeps it too.
    std::ofstream(rig.dir / "fleet/data/locality.yaml", std::ios::app) << "extra: 1\n";
    REQUIRE(rig.cp->reload());
    CHECK(rig.publishedBundles()["edge-2"].retry == 2);
    CHECK(rig.publishedBundles()["edge-1"].retry == 0);

    http::Request get = post;
    get.method = "GET";
    CHECK(rig.cp->handle(get).status == 405);
    post.path = "/v1/devices/nope/retry";
    CHECK(rig.cp->handle(post).status == 404);
}

TEST_CASE("ControlPlane: a bad fleet is refused as a whole and the last good one is kept") {
    Rig rig;
    rig.mqtt.connect();
    rig.mqtt.published.clear();
    test::writeFile(rig.dir / "fleet/fleet.yaml",
              "groups: {g: {policies: [../../etc/passwd.rego]}}\ndevices: {edge-1: {group: g}}\n");
    auto report = rig.cp->reload();
    REQUIRE_FALSE(report);
    CHECK(report.error().code() == SharedErrc::kPathEscape);
    CHECK(rig.mqtt.published.empty());
    auto res = rig.cp->handle({"GET", "/v1/devices", {}, {}});
    CHECK(res.status == 200);
    auto body = nlohmann::json::parse(res.body);
    CHECK(body["devices"].size() == 3);
    auto api = rig.cp->handle({"POST", "/v1/reload", {}, {}});
    CHECK(api.status == 422);
}

TEST_CASE("ControlPlane: device table joins desired and reported state") {
    Rig rig;
    rig.mqtt.connect();
    rig.mqtt.deliver({"edge/v1/dev/edge-1/status",
                      R"({"device":"edge-1","state":"online","applied_version":1,"time":1790000000,"last_error":null})",
                      1, true});
    rig.mqtt.deliver({"edge/v1/dev/edge-2/status", "not json", 1, true});
    rig.mqtt.deliver({"edge/v1/dev/intruder/status", R"({"state":"online"})", 1, true});
    auto body = nlohmann::json::parse(rig.cp->handle({"GET", "/v1/devices", {}, {}}).body);
    REQUIRE(body["devices"].size() == 3);
    const auto& d1 = body["devices"][0];
    CHECK(d1["id"] == "edge-1");
    CHECK(d1["desired_version"] == 1);
    CHECK(d1["applied_version"] == 1);
    CHECK(d1["online"] == true);
    CHECK(d1["in_sync"] == true);
    CHECK(d1["last_seen"] == "2026-09-21T14:13:20Z");
    CHECK(body["devices"][1]["in_sync"] == false);
    CHECK(rig.cp->handle({"GET", "/nope", {}, {}}).status == 404);
    CHECK(rig.cp->handle({"DELETE", "/v1/devices", {}, {}}).status == 405);
    CHECK(rig.cp->handle({"GET", "/v1/devices/edge-9", {}, {}}).status == 404);
}
