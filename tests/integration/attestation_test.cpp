// TPM attestation end to end: real swtpm instances (one per device, plus rogue TPMs played by
// the test), a real broker, the real controlplane, edged and edgectl.
#include <catch2/catch.hpp>

#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "security/crypto.hpp"
#include "security/tpm/esapi_tpm.hpp"
#include "security/tpm/messages.hpp"
#include "shared/http/http.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/integration/fleet_harness.hpp"
#include "tests/support/swtpm.hpp"

using namespace edge;
using namespace std::chrono_literals;
namespace tpm = security::tpm;

namespace {

nlohmann::json attestation(const test::FleetHarness& fleet, const std::string& id) {
    auto res = http::request("GET", fleet.server() + "/v1/devices/" + id + "/attestation", {}, {2s});
    if (!res || res->status != 200) return nullptr;
    return nlohmann::json::parse(res->body, nullptr, false);
}

std::string stateOf(const test::FleetHarness& fleet, const std::string& id) {
    const auto a = attestation(fleet, id);
    return a.is_object() ? a.value("state", "") : "";
}

test::CommandResult edgectl(const test::FleetHarness& fleet, std::vector<std::string> args) {
    std::vector<std::string> argv{test::binary("edgectl").string(), "--server", fleet.server()};
    argv.insert(argv.end(), args.begin(), args.end());
    return test::runCommand(argv, 60s);
}

/// The next message on a device's topic leaf, caught by mosquitto_sub while `trigger` runs.
std::string catchMessage(test::FleetHarness& fleet, const std::string& id, const std::string& leaf,
                         const std::function<void()>& trigger) {
    const auto out = fleet.dir / fmt::format("caught-{}-{}.txt", id, leaf.substr(leaf.rfind('/') + 1));
    std::filesystem::remove(out);
    // -d: its debug lines say when the subscription is in place, before the message flies
    // (line-buffered by stdbuf, or they would reach the file only at exit).
    auto sub = test::Process::spawn({"/usr/bin/stdbuf", "-oL", "/usr/bin/mosquitto_sub", "-d", "-h", "127.0.0.1", "-p",
                                     std::to_string(fleet.broker.port()), "-C", "1", "-W", "30", "-t",
                                     fmt::format("edge/v1/dev/{}/{}", id, leaf)},
                                    out);
    REQUIRE(test::waitUntil([&] { return test::readFile(out).find("SUBACK") != std::string::npos; }, 15s));
    trigger();
    REQUIRE(test::waitUntil([&] { return !sub.running(); }, 35s));
    // The message is the one line that is not a debug line.
    std::istringstream lines(test::readFile(out));
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("{")) return line;
    }
    return {};
}

void publish(const test::FleetHarness& fleet, const std::string& id, const std::string& leaf, const std::string& payload) {
    const auto file = fleet.dir / "publish.json";
    test::writeFile(file, payload);
    auto res = test::runCommand({"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(fleet.broker.port()),
                                 "-q", "1", "-t", fmt::format("edge/v1/dev/{}/{}", id, leaf), "-f", file.string()});
    INFO(res.err);
    REQUIRE(res.exit_code == 0);
}

/// The control plane with challenges only on demand and after applies, and a generous deadline:
/// under a loaded CI machine the test itself plays the forger.
void startAttestingControlPlane(test::FleetHarness& fleet) {
    const auto cp_config = fleet.dir / "controlplane.yaml";
    test::writeFile(cp_config, test::readFile(cp_config) + "attestation:\n  interval: 1h\n  deadline: 15s\n");
    fleet.startControlPlane();
}

/// A TPM in the test's hands, enrolled.
struct RogueTpm {
    explicit RogueTpm(const std::filesystem::path& dir) : swtpm(dir) {
        auto opened = tpm::EsapiTpm::open(swtpm.tcti());
        REQUIRE(opened);
        device = std::move(*opened);
        auto enrolled = device->enroll(std::nullopt);
        REQUIRE(enrolled);
        keys = std::move(*enrolled);
    }
    test::Swtpm swtpm;
    std::unique_ptr<tpm::Tpm> device;
    tpm::EnrollmentKeys keys;
};

}  // namespace

TEST_CASE("Attestation: enrollment, fresh quotes, replays, forged quotes, tampered PCRs, re-enrollment, TPM loss",
          "[integration][attestation]") {
    test::FleetHarness fleet;
    startAttestingControlPlane(fleet);
    std::map<std::string, std::unique_ptr<test::Swtpm>> tpms;
    for (const auto* id : {"edge-1", "edge-2"}) {
        std::filesystem::create_directories(fleet.dir / "tpm" / id);
        tpms[id] = std::make_unique<test::Swtpm>(fleet.dir / "tpm" / id);
        fleet.appendDeviceConfig(id, fmt::format("tpm:\n  tcti: {}\n", tpms[id]->tcti()));
    }
    fleet.startAllDevices();

    // Enrollment by credential activation, then a quote over a fresh nonce: trusted.
    for (const auto* id : {"edge-1", "edge-2"}) {
        INFO(id);
        REQUIRE(test::waitUntil([&] { return stateOf(fleet, id) == "trusted"; }, 30s));
        const auto a = attestation(fleet, id);
        INFO(a.dump());
        const auto log = tpm::parseLog(a["log"].dump());
        REQUIRE(log);
        CHECK(tpm::digestHex(log->replay()) == a["pcrs"]["23"]);
        REQUIRE_FALSE(log->entries.empty());
        CHECK(log->entries.front().kind == "bundle");
        CHECK(a["ak_name"].get<std::string>().size() == 68);  // 2-byte alg id + SHA-256, in hex
    }
    // Local policies see the device's own state: enrolled with a TPM, unavailable without one.
    const auto local_state = [&](const std::string& id) {
        auto res = http::requestUnix(fleet.socket(id), "POST", "/v1/data/edge/device/attestation/state", "{}");
        if (!res || res->status != 200) return std::string();
        return nlohmann::json::parse(res->body).value("result", "");
    };
    CHECK(test::waitUntil([&] { return local_state("edge-1") == "enrolled"; }, 10s));
    CHECK(local_state("edge-3") == "unavailable");
    CHECK(stateOf(fleet, "edge-3") == "unenrolled");  // no TPM: never challenged, never quarantined
    const auto devices = edgectl(fleet, {"devices"});
    CHECK_THAT(devices.out, Catch::Contains("ATTESTATION") && Catch::Contains("trusted") && Catch::Contains("unenrolled"));
    const auto ak_name = attestation(fleet, "edge-1")["ak_name"].get<std::string>();

    // On demand, with the verdict.
    {
        const auto r = edgectl(fleet, {"attest", "edge-1"});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK_THAT(r.out, Catch::Contains("trusted") && Catch::Contains("PCR 23"));
    }

    // A replayed quote (its nonce was used) is refused and changes nothing.
    {
        const auto quote = catchMessage(fleet, "edge-1", "attest/quote", [&] {
            CHECK(edgectl(fleet, {"attest", "edge-1"}).exit_code == 0);
        });
        REQUIRE_FALSE(quote.empty());
        const auto rejected = attestation(fleet, "edge-1").value("rejected", 0);
        publish(fleet, "edge-1", "attest/quote", quote);
        REQUIRE(test::waitUntil([&] { return attestation(fleet, "edge-1").value("rejected", 0) == rejected + 1; }, 10s));
        const auto a = attestation(fleet, "edge-1");
        CHECK_THAT(a["last_rejection"].get<std::string>(), Catch::Contains("nonce"));
        CHECK(a["state"] == "trusted");
    }

    // The device restarts: the same AK, trusted again without a new enrollment.
    fleet.killDevice("edge-1");
    fleet.startDevice("edge-1");
    REQUIRE(test::waitUntil([&] { return edgectl(fleet, {"attest", "edge-1", "--timeout", "5"}).exit_code == 0; }, 30s, 500ms));
    CHECK(attestation(fleet, "edge-1")["ak_name"] == ak_name);

    // A quote over edge-1's nonce signed by another TPM's AK: quarantined, and the bundle says so.
    RogueTpm rogue(fleet.dir / "tpm/rogue");
    {
        fleet.killDevice("edge-1");  // only the forger answers
        const auto desired_before = fleet.device("edge-1")["desired_version"].get<std::uint64_t>();
        const auto challenge_text = catchMessage(fleet, "edge-1", "attest/challenge", [&] {
            auto res = http::request("POST", fleet.server() + "/v1/devices/edge-1/attest", {}, {2s});
            REQUIRE(res);
            CHECK(res->status == 202);
        });
        auto challenge = tpm::parseChallenge(challenge_text);
        REQUIRE(challenge);
        auto forged = rogue.device->quote(challenge->nonce, challenge->pcrs);
        REQUIRE(forged);
        tpm::QuoteMessage m;
        m.nonce = challenge->nonce;
        m.quote = *forged;
        m.log = tpm::MeasurementLog{23, {}, {}};
        publish(fleet, "edge-1", "attest/quote", tpm::toJson(m));
        REQUIRE(test::waitUntil([&] { return stateOf(fleet, "edge-1") == "quarantined"; }, 10s));
        CHECK_THAT(attestation(fleet, "edge-1")["reason"].get<std::string>(), Catch::Contains("bad_signature"));
        // A quarantine bundle: the retained desired message now carries the quarantine policy.
        REQUIRE(test::waitUntil(
            [&] { return fleet.device("edge-1")["desired_version"].get<std::uint64_t>() > desired_before; }, 10s));
        // The broker may still hold the previous retained bundle for a moment.
        nlohmann::json quarantined;
        REQUIRE(test::waitUntil(
            [&] {
                const auto jws = nlohmann::json::parse(fleet.retainedDesired("edge-1"));
                const auto payload = security::base64UrlDecode(jws["payload"].get<std::string>());
                if (!payload) return false;
                quarantined = nlohmann::json::parse(*payload);
                return quarantined["version"].get<std::uint64_t>() > desired_before;
            },
            10s, 100ms));
        CHECK(quarantined["policies"].contains("edge-quarantine.rego"));
        CHECK_FALSE(quarantined.contains("artifacts"));
        CHECK_THAT(quarantined["data"]["edge_quarantine"]["reason"].get<std::string>(), Catch::Contains("bad_signature"));
        // The genuine device applies it, is challenged because it applied a bundle, attests with
        // its real TPM and log, and gets its normal bundle back.
        fleet.startDevice("edge-1");
        REQUIRE(test::waitUntil([&] { return stateOf(fleet, "edge-1") == "trusted"; }, 30s));
        REQUIRE(test::waitUntil(
            [&] {
                const auto retained = nlohmann::json::parse(fleet.retainedDesired("edge-1"));
                const auto text = security::base64UrlDecode(retained["payload"].get<std::string>());
                return text && !nlohmann::json::parse(*text)["policies"].contains("edge-quarantine.rego");
            },
            20s, 200ms));
    }

    // PCR 23 extended behind edged's back: the log no longer replays: quarantined until an
    // operator re-enrolls the device.
    {
        const auto extended = test::runTpm2Tool(tpms["edge-2"]->tcti(),
                                                {"tpm2_pcrextend", "23:sha256=" + std::string(64, '3')});
        INFO(extended.out << extended.err);
        REQUIRE(extended.exit_code == 0);
        REQUIRE(test::runTpm2Tool(tpms["edge-2"]->tcti(), {"tpm2_flushcontext", "-t"}).exit_code == 0);
        const auto r = edgectl(fleet, {"attest", "edge-2"});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 3);
        CHECK_THAT(r.out, Catch::Contains("quarantined") && Catch::Contains("log_mismatch"));
        // Later challenges do not clear it by themselves.
        CHECK(edgectl(fleet, {"attest", "edge-2"}).exit_code == 3);
        const auto again = edgectl(fleet, {"attest", "edge-2", "--reenroll"});
        INFO(again.out << again.err);
        CHECK(again.exit_code == 0);
        CHECK(stateOf(fleet, "edge-2") == "trusted");
        CHECK(edgectl(fleet, {"attest", "edge-2"}).exit_code == 0);
    }

    // An AK that is not bound to the EK it came with is refused at enrollment.
    {
        fleet.killDevice("edge-3");
        RogueTpm other(fleet.dir / "tpm/other");
        tpm::EnrollMessage enroll{rogue.keys.ek_public, {}, other.keys.ak_public, other.keys.ak_name};
        const auto credential_text = catchMessage(fleet, "edge-3", "attest/credential",
                                                  [&] { publish(fleet, "edge-3", "attest/enroll", tpm::toJson(enroll)); });
        auto credential = tpm::parseCredential(credential_text);
        REQUIRE(credential);
        // Neither TPM can recover the secret: not the EK's (wrong AK), not the AK's (wrong EK).
        CHECK_FALSE(rogue.device->activateCredential(credential->credential_blob, credential->encrypted_secret));
        CHECK_FALSE(other.device->activateCredential(credential->credential_blob, credential->encrypted_secret));
        const auto guess = security::randomBytes(32);
        publish(fleet, "edge-3", "attest/activate",
                tpm::toJson(tpm::ActivateMessage{tpm::Bytes(guess.begin(), guess.end())}));
        REQUIRE(test::waitUntil([&] { return stateOf(fleet, "edge-3") == "refused"; }, 10s));
        CHECK_THAT(attestation(fleet, "edge-3")["reason"].get<std::string>(), Catch::Contains("not bound to the EK"));
    }

    // The TPM goes away: the device answers with the error and the device is quarantined; once
    // the TPM is back (reset: PCRs at zero) the device re-measures and attests again.
    {
        const auto tcti = tpms["edge-1"]->tcti();
        tpms["edge-1"]->kill();
        const auto r = edgectl(fleet, {"attest", "edge-1"});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 3);
        CHECK_THAT(r.out, Catch::Contains("could not quote"));
        tpms["edge-1"]->start();
        REQUIRE(tpms["edge-1"]->tcti() == tcti);  // edged's config names this port
        REQUIRE(test::waitUntil([&] { return edgectl(fleet, {"attest", "edge-1", "--timeout", "5"}).exit_code == 0; },
                                40s, 500ms));
        CHECK(attestation(fleet, "edge-1")["ak_name"] == ak_name);
    }
}

TEST_CASE("Attestation: an AK from before noDA fails in TPM lockout, and re-enrollment replaces it with one that quotes",
          "[integration][attestation]") {
    test::FleetHarness fleet;
    startAttestingControlPlane(fleet);
    const std::string id = "edge-1";
    const auto tpm_dir = fleet.dir / "tpm" / id;
    std::filesystem::create_directories(tpm_dir);
    test::Swtpm swtpm(tpm_dir);
    fleet.appendDeviceConfig(id, fmt::format("tpm:\n  tcti: {}\n", swtpm.tcti()));
    const auto tool = [&](std::vector<std::string> argv) {
        auto ran = test::runTpm2Tool(swtpm.tcti(), std::move(argv));
        INFO(ran.out << ran.err);
        REQUIRE(ran.exit_code == 0);
    };
    // The AK an older edged made: tpm2_createak's template, under the same EK, without noDA.
    const auto file = [&](const char* name) { return (fleet.dir / name).string(); };
    tool({"tpm2_createek", "-c", file("ek.ctx"), "-G", "rsa", "-u", file("ek.pub")});
    tool({"tpm2_createak", "-C", file("ek.ctx"), "-c", file("ak.ctx"), "-G", "ecc", "-g", "sha256", "-s", "ecdsa",
          "-u", file("ak.pub"), "-r", file("ak.priv")});
    tool({"tpm2_flushcontext", "-t"});
    {
        auto store = store::LmdbStore::open(fleet.dir / "state" / id / "db");
        REQUIRE(store);
        REQUIRE((*store)->putOne("attest", "ak_blob", test::readFile(file("ak.pub")) + test::readFile(file("ak.priv"))));
    }
    fleet.startDevice(id);
    REQUIRE(test::waitUntil([&] { return stateOf(fleet, id) == "trusted"; }, 30s));
    const auto old_ak = attestation(fleet, id)["ak_name"].get<std::string>();

    // Unclean shutdowns and failed authorizations put the TPM in dictionary-attack lockout.
    tool({"tpm2_dictionarylockout", "-s", "-n", "1", "-t", "10000", "-l", "10000"});
    tool({"tpm2_createprimary", "-C", "o", "-G", "ecc", "-p", "right", "-c", file("primary.ctx")});
    CHECK(test::runTpm2Tool(swtpm.tcti(), {"tpm2_create", "-C", file("primary.ctx"), "-P", "wrong", "-G", "ecc", "-u",
                                           file("k.pub"), "-r", file("k.priv")})
              .exit_code != 0);
    tool({"tpm2_flushcontext", "-t"});
    {
        const auto r = edgectl(fleet, {"attest", id});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 3);  // the old AK cannot quote in lockout: quarantined
        CHECK_THAT(attestation(fleet, id).dump(), Catch::Contains("lockout"));
    }
    // The operator re-enrolls: edged replaces the AK with one that has noDA, which quotes.
    {
        const auto r = edgectl(fleet, {"attest", id, "--reenroll"});
        INFO(r.out << r.err);
        CHECK(r.exit_code == 0);
        CHECK(stateOf(fleet, id) == "trusted");
        CHECK(attestation(fleet, id)["ak_name"].get<std::string>() != old_ak);
        CHECK(edgectl(fleet, {"attest", id}).exit_code == 0);
    }
}
