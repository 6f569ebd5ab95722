#include <catch2/catch.hpp>

#include "edged/agent.hpp"
#include "security/bundle_signing.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_event_loop.hpp"
#include "tests/fakes/fake_mqtt_client.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;

namespace {

struct Rig {
    test::TempDir dir;
    test::FakeEventLoop loop;
    test::FakeClock clock;
    test::FakeMqttClient mqtt;
    security::PrivateKey key = *security::PrivateKey::generate(security::Algorithm::kEd25519);
    std::unique_ptr<store::LmdbStore> store = std::move(*store::LmdbStore::open(dir / "db"));
    std::unique_ptr<edged::EdgeAgent> agent;

    Rig() { restart(); }
    void restart() {
        agent = std::make_unique<edged::EdgeAgent>(
            loop, clock, *store, &mqtt, security::TrustRoot::create({key.publicKey()}, 1),
            edged::AgentSettings{"dev-1", "edge/v1"});
        REQUIRE(agent->load());
    }
    bundle::Bundle bundle(std::uint64_t version, std::string device = "dev-1") const {
        bundle::Bundle b;
        b.device_id = std::move(device);
        b.version = version;
        b.issued_at = clock.unixSeconds();
        b.expires_at = clock.unixSeconds() + 3600;
        b.source = "test";
        b.policies["p.rego"] = "package p\n";
        b.data = {{"v", version}};
        return b;
    }
    std::string sign(const bundle::Bundle& b) const { return *security::signBundle(b, {key}); }
    nlohmann::json lastStatus() const {
        REQUIRE_FALSE(mqtt.published.empty());
        return nlohmann::json::parse(mqtt.published.back().payload);
    }
};

}  // namespace

TEST_CASE("EdgeAgent: a valid bundle is applied, stored and reported") {
    Rig rig;
    rig.mqtt.connect();
    REQUIRE(rig.agent->handleDesired(rig.sign(rig.bundle(3))));
    REQUIRE(rig.agent->applied());
    CHECK(rig.agent->applied()->version == 3);
    auto status = rig.lastStatus();
    CHECK(rig.mqtt.published.back().topic == "edge/v1/dev/dev-1/status");
    CHECK(rig.mqtt.published.back().retained);
    CHECK(status["applied_version"] == 3);
    CHECK(status["state"] == "online");
    CHECK(status["last_error"].is_null());
    // A restart reads the same state back from LMDB.
    rig.restart();
    REQUIRE(rig.agent->applied());
    CHECK(rig.agent->applied()->version == 3);
    auto stored = edged::loadBundle(*rig.store);
    REQUIRE(stored);
    REQUIRE(*stored);
    CHECK((*stored)->data["v"] == 3);
}

TEST_CASE("EdgeAgent: every rejected bundle changes nothing and is reported with its code") {
    Rig rig;
    rig.mqtt.connect();
    REQUIRE(rig.agent->handleDesired(rig.sign(rig.bundle(5))));
    const auto before = rig.agent->applied()->bundle_digest;

    auto other_key = *security::PrivateKey::generate(security::Algorithm::kEd25519);
    auto expired = rig.bundle(9);
    expired.expires_at = rig.clock.unixSeconds() - 1;
    auto same_version = rig.bundle(5);
    same_version.data = {{"v", 99}};
    const std::vector<std::pair<std::string, std::string>> cases = {
        {*security::signBundle(rig.bundle(6), {other_key}), "bad_signature"},
        {rig.sign(rig.bundle(7, "dev-2")), "wrong_device"},
        {rig.sign(rig.bundle(4)), "stale_version"},
        {rig.sign(same_version), "stale_version"},  // same version, other content
        {rig.sign(expired), "expired"},
        {"{not a jws", "malformed"},
    };
    for (const auto& [payload, code] : cases) {
        INFO(code);
        auto st = rig.agent->handleDesired(payload);
        REQUIRE_FALSE(st);
        CHECK(rig.agent->applied()->version == 5);
        CHECK(rig.agent->applied()->bundle_digest == before);
        CHECK(rig.lastStatus()["last_error"]["code"] == code);
        CHECK(rig.lastStatus()["applied_version"] == 5);
    }
    rig.restart();
    CHECK(rig.agent->applied()->version == 5);
}

TEST_CASE("EdgeAgent: the retained bundle it already applied is not an error") {
    Rig rig;
    rig.mqtt.connect();
    const auto jws = rig.sign(rig.bundle(2));
    REQUIRE(rig.agent->handleDesired(jws));
    rig.restart();
    CHECK(rig.agent->handleDesired(jws));
    CHECK(rig.agent->statusJson(true)["last_error"].is_null());
}

TEST_CASE("EdgeAgent: works with no broker at all") {
    test::TempDir dir;
    test::FakeEventLoop loop;
    test::FakeClock clock;
    auto key = *security::PrivateKey::generate(security::Algorithm::kEs256);
    auto store = std::move(*store::LmdbStore::open(dir / "db"));
    edged::EdgeAgent agent(loop, clock, *store, nullptr, security::TrustRoot::create({key.publicKey()}, 1),
                           {"dev-1", "edge/v1"});
    REQUIRE(agent.load());
    agent.start();
    CHECK_FALSE(agent.applied());
    agent.stop();
}

TEST_CASE("EdgeAgent: republishes its status on a heartbeat while connected") {
    Rig rig;
    rig.agent->start();
    rig.mqtt.connect();
    const auto after_connect = rig.mqtt.published.size();
    CHECK(after_connect == 1);
    rig.clock.advance(std::chrono::seconds(60));
    rig.loop.fireTimers();
    REQUIRE(rig.mqtt.published.size() == after_connect + 1);
    CHECK(rig.lastStatus()["time"] == rig.clock.unixSeconds());
    rig.loop.fireTimers();  // the heartbeat re-arms itself
    CHECK(rig.mqtt.published.size() == after_connect + 2);
}
