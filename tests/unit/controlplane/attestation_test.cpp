// The control plane's attestation pieces that need no TPM: the messages, the quarantine bundle,
// and the verifier's refusals. The TPM flows run against swtpm in tests/integration.
#include <catch2/catch.hpp>

#include "controlplane/attestation.hpp"
#include "security/crypto.hpp"
#include "shared/policy/engine.hpp"
#include "shared/policy/value.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/fakes/fake_clock.hpp"
#include "tests/fakes/fake_event_loop.hpp"
#include "tests/fakes/fake_mqtt_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;
namespace tpm = security::tpm;

namespace {

tpm::Sha256Digest digestOf(std::uint8_t b) {
    tpm::Sha256Digest d{};
    d.fill(b);
    return d;
}

/// An attestation service over a real LMDB store, a fake loop and a connected fake broker.
struct Rig {
    Rig() {
        mqtt.connect();
        REQUIRE(service.load());
    }
    test::TempDir dir;
    std::unique_ptr<store::LmdbStore> store = std::move(*store::LmdbStore::open(dir / "db"));
    test::FakeEventLoop loop;
    test::FakeClock clock;
    test::FakeMqttClient mqtt;
    controlplane::AttestationService service{loop, clock, *store, mqtt, "edge/v1", {.enabled = true}};
};

}  // namespace

TEST_CASE("Attestation messages: a quote with its log prints and parses back, and replays") {
    tpm::QuoteMessage m;
    m.nonce = {1, 2, 3, 4};
    m.quote.attest = {0xff, 0x54, 0x43, 0x47};
    m.quote.signature = {0x00, 0x18};
    m.log = {23, digestOf(0), {{"bundle", "", "4", digestOf(0x11)}, {"model", "detector", "7", digestOf(0x22)}}};
    m.quote.pcrs[23] = m.log.replay();
    auto parsed = tpm::parseQuote(tpm::toJson(m));
    REQUIRE(parsed);
    CHECK(parsed->nonce == m.nonce);
    CHECK(parsed->quote.attest == m.quote.attest);
    CHECK(parsed->quote.pcrs == m.quote.pcrs);
    CHECK(parsed->log == m.log);
    CHECK(parsed->log.replay() == tpm::replayPcr({digestOf(0x11), digestOf(0x22)}));
    // A log that starts elsewhere replays from there.
    auto rebased = m.log;
    rebased.baseline = digestOf(0x33);
    CHECK(rebased.replay() == tpm::replayPcr({digestOf(0x11), digestOf(0x22)}, digestOf(0x33)));

    tpm::QuoteMessage failed;
    failed.nonce = {9};
    failed.error = "quote: Esys_PCR_Read: tcti:IO failure";
    auto error = tpm::parseQuote(tpm::toJson(failed));
    REQUIRE(error);
    CHECK(error->error == failed.error);

    auto challenge = tpm::parseChallenge(tpm::toJson(tpm::ChallengeMessage{{1, 2, 3}, {23, 7}}));
    REQUIRE(challenge);
    CHECK(challenge->pcrs == std::vector<int>{23, 7});
}

TEST_CASE("Attestation messages: malformed input is refused with the field named") {
    const std::string zeros(64, '0');
    struct Case {
        std::string text;
        std::string expected;
    };
    const std::vector<Case> quotes = {
        {"[]", "not a JSON object"},
        {"{\"nonce\":\"AA\",\"extra\":1}", "unknown field \"extra\""},
        {"{\"nonce\":\"+/+\"}", "not base64url"},
        {"{\"nonce\":\"AA\",\"attest\":\"AA\",\"signature\":\"AA\",\"pcrs\":{\"24\":\"" + zeros + "\"},\"log\":{}}",
         "out of range"},
        {"{\"nonce\":\"AA\",\"attest\":\"AA\",\"signature\":\"AA\",\"pcrs\":{\"23\":\"" + std::string(64, 'F') +
             "\"},\"log\":{}}",
         "64 lowercase hex"},
        {"{\"nonce\":\"AA\",\"attest\":\"AA\",\"signature\":\"AA\",\"pcrs\":{},\"log\":{\"pcr\":23,\"baseline\":\"" +
             zeros + "\",\"entries\":[{\"kind\":\"bundle\"}]}}",
         "kind, name, version and digest"},
        {"{\"nonce\":\"AA\",\"attest\":\"AA\",\"signature\":\"AA\",\"pcrs\":{}}", "missing field \"log\""},
    };
    for (const auto& c : quotes) {
        INFO(c.text);
        auto parsed = tpm::parseQuote(c.text);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().code() == tpm::TpmErrc::kMalformed);
        CHECK_THAT(parsed.error().what(), Catch::Contains(c.expected));
    }
    CHECK_FALSE(tpm::parseChallenge("{\"nonce\":\"" + security::base64UrlEncode(std::string(65, 'x')) +
                                    "\",\"pcrs\":[23]}"));
    CHECK_FALSE(tpm::parseChallenge("{\"nonce\":\"AA\",\"pcrs\":[]}"));
    CHECK_FALSE(tpm::parseEnroll("{\"ek_public\":\"AA\"}"));
    CHECK_FALSE(tpm::parseActivate("{\"secret\":5}"));
}

TEST_CASE("Attestation: a quarantined bundle has no artifacts and its policies deny every admission") {
    bundle::Bundle b;
    b.device_id = "edge-1";
    b.policies["finops.rego"] = "package finops\nimport rego.v1\ndeny contains \"never\" if { false }\n";
    b.enforcement.entrypoints = {"data.finops.deny"};
    b.enforcement.policy_sets["lockdown"] = {{"lockdown.rego", "package lockdown\n"}};
    const std::string digest(64, 'a');
    b.artifacts.push_back({bundle::ArtifactKind::kModel, "m", "1", digest, 1, "/v1/artifacts/" + digest, {}});
    const auto q = controlplane::AttestationService::quarantine(b, "quote refused: bad_signature");
    CHECK(q.artifacts.empty());
    CHECK(q.enforcement.entrypoints == std::vector<std::string>{"data.finops.deny", "data.quarantine.deny"});
    CHECK(q.enforcement.policy_sets.at("lockdown").contains("edge-quarantine.rego"));
    CHECK(q.contentDigest() != b.contentDigest());

    std::vector<policy::ModuleSource> modules;
    for (const auto& [file, text] : q.policies) modules.push_back({file, text});
    auto compiled = policy::Policy::compile(modules);
    REQUIRE(compiled);
    auto query = (*compiled)->prepare("data.quarantine.deny");
    REQUIRE(query);
    policy::EvalOptions options;
    options.input = *policy::parseJson(R"({"request":{"kind":{"kind":"Pod"}}})");
    options.data = *policy::parseJson(q.data.dump());
    auto deny = query->evalValue(options);
    REQUIRE(deny);
    REQUIRE(*deny);
    CHECK_THAT((*deny)->toJson(), Catch::Contains("device quarantined by attestation: quote refused: bad_signature"));
}

TEST_CASE("Attestation: unsolicited quotes and bad enrollments are counted and change no state") {
    Rig rig;
    auto& [dir, store, loop, clock, mqtt, service] = rig;

    tpm::QuoteMessage m;
    m.nonce = {1, 2, 3};
    m.log = {23, {}, {}};
    service.onMessage("edge-1", "attest/quote", tpm::toJson(m));
    service.onMessage("edge-1", "attest/quote", "{not json");
    service.onMessage("edge-1", "attest/enroll", R"({"ek_public":"AA","ak_public":"AA","ak_name":"AA"})");
    service.onMessage("edge-1", "attest/activate", R"({"secret":"AA"})");
    auto j = service.deviceJson("edge-1");
    CHECK(j["state"] == "unenrolled");
    CHECK(j["rejected"] == 4);
    CHECK_THAT(j["last_rejection"].get<std::string>(), Catch::Contains("without a credential"));
    CHECK(mqtt.published.empty());  // no credential, no challenge
    CHECK_FALSE(service.challenge("edge-1", "operator"));  // nothing enrolled to challenge
    CHECK_FALSE(service.quarantined("edge-1"));

    // The refusals are persisted with the state.
    controlplane::AttestationService reopened(loop, clock, *store, mqtt, "edge/v1", {.enabled = true});
    REQUIRE(reopened.load());
    CHECK(reopened.deviceJson("edge-1")["rejected"] == 4);
}

TEST_CASE("Attestation: an unanswered challenge quarantines; one that could not be sent does not") {
    test::TempDir dir;
    auto store = store::LmdbStore::open(dir / "db");
    REQUIRE(store);
    // An enrolled device, as a previous run left it.
    REQUIRE((*store)->putOne("attest", "edge-1",
                             R"({"state":"trusted","ak_public":"AAAA","ak_name":"000b","accept_baseline":false})"));
    test::FakeEventLoop loop;
    test::FakeClock clock;
    test::FakeMqttClient mqtt;
    controlplane::AttestationService service(loop, clock, **store, mqtt, "edge/v1", {.enabled = true});
    std::vector<std::string> changed;
    service.setHooks({[&](const std::string& id) { changed.push_back(id); }, [](const std::string&) { return true; }});
    REQUIRE(service.load());
    REQUIRE(service.stateOf("edge-1") == "trusted");

    // Broker down: the challenge is refused at once and no deadline runs.
    auto refused = service.challenge("edge-1", "operator");
    REQUIRE_FALSE(refused);
    loop.fireTimers();
    CHECK(service.stateOf("edge-1") == "trusted");
    CHECK(changed.empty());

    // Sent and never answered: quarantined with the reason, and the bundle must be re-issued.
    mqtt.connect();
    REQUIRE(service.challenge("edge-1", "operator"));
    REQUIRE(mqtt.published.size() == 1);
    CHECK(mqtt.published[0].topic == "edge/v1/dev/edge-1/attest/challenge");
    auto challenge = tpm::parseChallenge(mqtt.published[0].payload);
    REQUIRE(challenge);
    CHECK(challenge->nonce.size() == 32);
    CHECK(challenge->pcrs == std::vector<int>{23});
    loop.fireTimers();
    CHECK(service.stateOf("edge-1") == "quarantined");
    CHECK_THAT(*service.quarantined("edge-1"), Catch::Contains("no quote within"));
    CHECK(changed == std::vector<std::string>{"edge-1"});
    // Its nonce is no longer outstanding: a late answer is refused.
    tpm::QuoteMessage late;
    late.nonce = challenge->nonce;
    late.log = {23, {}, {}};
    service.onMessage("edge-1", "attest/quote", tpm::toJson(late));
    CHECK_THAT(service.deviceJson("edge-1")["last_rejection"].get<std::string>(), Catch::Contains("nonce"));
}

TEST_CASE("Attestation: a repeated enrollment gets the same credential, so an activation on its way still matches") {
    // A real EK and AK public area, as a swtpm produced them (the quote_fuzz seeds).
    const auto corpus = std::filesystem::path(EDGE_TEST_SOURCE_DIR) / "tests/fuzz/corpus/quote_fuzz";
    const auto ek = test::readFile(corpus / "ek_public");
    const auto ak = test::readFile(corpus / "ak_public");
    REQUIRE_FALSE(ek.empty());
    tpm::EnrollMessage enroll;
    enroll.ek_public.assign(ek.begin(), ek.end());
    enroll.ak_public.assign(ak.begin(), ak.end());
    auto name = tpm::objectName(enroll.ak_public);
    REQUIRE(name);
    enroll.ak_name = *name;

    Rig rig;
    auto& [dir, store, loop, clock, mqtt, service] = rig;
    service.onMessage("edge-1", "attest/enroll", tpm::toJson(enroll));
    service.onMessage("edge-1", "attest/enroll", tpm::toJson(enroll));
    REQUIRE(mqtt.published.size() == 2);
    CHECK(mqtt.published[0].topic == "edge/v1/dev/edge-1/attest/credential");
    CHECK(mqtt.published[0].payload == mqtt.published[1].payload);
    CHECK(service.stateOf("edge-1") == "enrolling");
    // A wrong secret: the AK is not bound to this EK.
    service.onMessage("edge-1", "attest/activate", tpm::toJson(tpm::ActivateMessage{tpm::Bytes(32, 7)}));
    CHECK(service.stateOf("edge-1") == "refused");
    CHECK_THAT(*service.deviceJson("edge-1")["reason"].get_ptr<const std::string*>(), Catch::Contains("not bound"));
}
