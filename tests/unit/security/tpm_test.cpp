// TPM attestation (issue 5): the ESAPI adapter against real swtpm instances, and the verifier
// (makeCredential, verifyQuote, replay, tpm2_checkquote exports) against what they produce.
#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "security/tpm/attestation.hpp"
#include "security/tpm/esapi_tpm.hpp"
#include "tests/support/process.hpp"
#include "tests/support/swtpm.hpp"
#include "tests/support/temp_dir.hpp"

namespace tpm = edge::security::tpm;
using tpm::Bytes;
using tpm::TpmErrc;

namespace {

template <class T>
T must(edge::Result<T> r) {
    INFO((r ? std::string() : r.error().what()));
    REQUIRE(r.has_value());
    return std::move(*r);
}

void mustOk(const edge::Status& s) {
    INFO((s ? std::string() : s.error().what()));
    REQUIRE(s.has_value());
}

template <class T>
TpmErrc codeOf(const edge::Result<T>& r) {
    REQUIRE_FALSE(r.has_value());
    REQUIRE(r.error().code().category() == tpm::tpmCategory());
    return static_cast<TpmErrc>(r.error().code().value());
}

Bytes randomBytes(std::size_t n) {
    static std::mt19937_64 rng{std::random_device{}()};
    Bytes out(n);
    for (auto& b : out) b = static_cast<std::uint8_t>(rng());
    return out;
}

tpm::Sha256Digest digestOf(std::uint8_t fill) {
    tpm::Sha256Digest d{};
    d.fill(fill);
    return d;
}

std::string hex(const Bytes& b) {
    std::string out;
    char buf[3];
    for (const auto byte : b) {
        std::snprintf(buf, sizeof buf, "%02x", byte);
        out += buf;
    }
    return out;
}

/// One device: a swtpm with its own state, an EsapiTpm on it, enrolled.
struct Device {
    edge::test::TempDir dir;
    edge::test::Swtpm swtpm{dir / "state"};
    std::unique_ptr<tpm::Tpm> tpm = must(tpm::EsapiTpm::open(swtpm.tcti()));
    tpm::EnrollmentKeys keys = must(tpm->enroll(std::nullopt));
    tpm::AkInfo ak = must(tpm::checkAkPublic(keys.ak_public));
};

}  // namespace

TEST_CASE(
    "TPM attestation: a credential made for the EK and the AK name activates to the same secret",
    "[integration]") {
    Device d;
    CHECK(d.keys.ek_public.size() > 256);
    CHECK(d.keys.ek_certificate.empty());  // a fresh swtpm state has no EK certificate
    CHECK(d.ak.name == d.keys.ak_name);
    CHECK(must(tpm::objectName(d.keys.ak_public)) == d.keys.ak_name);
    CHECK(d.ak.pem.starts_with("-----BEGIN PUBLIC KEY-----"));

    const Bytes secret = randomBytes(32);
    const auto cred = must(tpm::makeCredential(d.keys.ek_public, d.keys.ak_name, secret));
    CHECK(must(d.tpm->activateCredential(cred.credential_blob, cred.encrypted_secret)) == secret);

    // Enrollment is repeatable: the EK is deterministic, a new AK gets a new name.
    const auto again = must(d.tpm->enroll(std::nullopt));
    CHECK(again.ek_public == d.keys.ek_public);
    CHECK(again.ak_name != d.keys.ak_name);
}

TEST_CASE("TPM attestation: an AK not bound to the EK does not activate the credential",
          "[integration]") {
    Device one;
    Device two;
    const Bytes secret = randomBytes(16);

    SECTION("credential for this EK but another name") {
        const auto cred = must(tpm::makeCredential(one.keys.ek_public, two.keys.ak_name, secret));
        const auto r = one.tpm->activateCredential(cred.credential_blob, cred.encrypted_secret);
        CHECK(codeOf(r) == TpmErrc::kTpm);
        CHECK_THAT(r.error().what(),
                   Catch::Contains("Esys_ActivateCredential") && Catch::Contains("(0x"));
    }
    SECTION("credential for another TPM's EK") {
        const auto cred = must(tpm::makeCredential(two.keys.ek_public, one.keys.ak_name, secret));
        CHECK_FALSE(
            one.tpm->activateCredential(cred.credential_blob, cred.encrypted_secret).has_value());
    }
    SECTION("a tampered credential blob") {
        auto cred = must(tpm::makeCredential(one.keys.ek_public, one.keys.ak_name, secret));
        cred.credential_blob.back() ^= 0x01;
        CHECK_FALSE(
            one.tpm->activateCredential(cred.credential_blob, cred.encrypted_secret).has_value());
    }
    SECTION("garbage is refused before it reaches the TPM") {
        CHECK(codeOf(one.tpm->activateCredential({1, 2, 3}, {})) == TpmErrc::kMalformed);
    }
}

TEST_CASE(
    "TPM attestation: a fresh quote verifies, and nonce, bit flips, another AK and PCR values are "
    "checked",
    "[integration]") {
    Device d;
    const std::vector<int> selection{0, 7, 23};
    const Bytes nonce = randomBytes(32);
    const auto quote = must(d.tpm->quote(nonce, selection));
    REQUIRE(quote.pcrs.size() == 3);

    const auto info =
        must(tpm::verifyQuote(d.ak, quote.attest, quote.signature, nonce, quote.pcrs));
    CHECK(info.pcrs == quote.pcrs);
    CHECK(info.clock > 0);
    CHECK(info.safe);
    // The bytes form of the AK gives the same answer.
    CHECK(tpm::verifyQuote(d.keys.ak_public, quote.attest, quote.signature, nonce, quote.pcrs)
              .has_value());

    SECTION("the wrong nonce") {
        const auto r =
            tpm::verifyQuote(d.ak, quote.attest, quote.signature, randomBytes(32), quote.pcrs);
        CHECK(codeOf(r) == TpmErrc::kNonceMismatch);
        CHECK(tpm::failureReason(r.error()) == "nonce_mismatch");
    }
    SECTION("a flipped bit anywhere in the attestation") {
        for (std::size_t i = 0; i < quote.attest.size(); i += 7) {
            Bytes attest = quote.attest;
            attest[i] ^= 0x10;
            const auto r = tpm::verifyQuote(d.ak, attest, quote.signature, nonce, quote.pcrs);
            CHECK(codeOf(r) == TpmErrc::kBadSignature);
        }
    }
    SECTION("verified with another TPM's AK") {
        Device other;
        const auto r = tpm::verifyQuote(other.ak, quote.attest, quote.signature, nonce, quote.pcrs);
        CHECK(codeOf(r) == TpmErrc::kBadSignature);
        CHECK(tpm::failureReason(r.error()) == "bad_signature");
    }
    SECTION("tampered PCR values") {
        auto pcrs = quote.pcrs;
        pcrs[7][0] ^= 0x01;
        const auto r = tpm::verifyQuote(d.ak, quote.attest, quote.signature, nonce, pcrs);
        CHECK(codeOf(r) == TpmErrc::kPcrDigestMismatch);
        CHECK(tpm::failureReason(r.error()) == "pcr_digest_mismatch");
    }
    SECTION("values for other PCRs than quoted") {
        auto pcrs = quote.pcrs;
        pcrs.erase(0);
        CHECK(codeOf(tpm::verifyQuote(d.ak, quote.attest, quote.signature, nonce, pcrs)) ==
              TpmErrc::kPcrSelectionMismatch);
    }
    SECTION("every truncation of a real quote and signature is refused") {
        for (std::size_t n = 0; n < quote.attest.size(); ++n) {
            const Bytes attest(quote.attest.begin(), quote.attest.begin() + static_cast<long>(n));
            CHECK_FALSE(
                tpm::verifyQuote(d.ak, attest, quote.signature, nonce, quote.pcrs).has_value());
        }
        for (std::size_t n = 0; n < quote.signature.size(); ++n) {
            const Bytes sig(quote.signature.begin(),
                            quote.signature.begin() + static_cast<long>(n));
            CHECK(codeOf(tpm::verifyQuote(d.ak, quote.attest, sig, nonce, quote.pcrs)) ==
                  TpmErrc::kMalformed);
        }
    }
}

TEST_CASE(
    "TPM attestation: the measurement log replays to the quoted PCR, and an extend behind its back "
    "breaks it",
    "[integration]") {
    Device d;
    const auto d1 = digestOf(0x11);
    const auto d2 = digestOf(0x22);
    mustOk(d.tpm->extendPcr(23, d1));
    mustOk(d.tpm->extendPcr(23, d2));
    const Bytes nonce = randomBytes(32);
    auto quote = must(d.tpm->quote(nonce, {23}));
    CHECK(must(tpm::verifyQuote(d.ak, quote.attest, quote.signature, nonce, quote.pcrs))
              .pcrs.at(23) == tpm::replayPcr({d1, d2}));
    CHECK(must(d.tpm->readPcrs({23})).at(23) == tpm::replayPcr({d1, d2}));

    const auto extended = edge::test::runTpm2Tool(
        d.swtpm.tcti(), {"tpm2_pcrextend", "23:sha256=" + hex(Bytes(32, 0x33))});
    INFO(extended.out << extended.err);
    REQUIRE(extended.exit_code == 0);
    REQUIRE(edge::test::runTpm2Tool(d.swtpm.tcti(), {"tpm2_flushcontext", "-t"}).exit_code == 0);

    const Bytes nonce2 = randomBytes(32);
    quote = must(d.tpm->quote(nonce2, {23}));
    const auto info =
        must(tpm::verifyQuote(d.ak, quote.attest, quote.signature, nonce2, quote.pcrs));
    CHECK(info.pcrs.at(23) != tpm::replayPcr({d1, d2}));
    CHECK(info.pcrs.at(23) == tpm::replayPcr({d1, d2, digestOf(0x33)}));
}

TEST_CASE("TPM attestation: the AK still quotes while the TPM is in dictionary-attack lockout",
          "[integration]") {
    // Power cuts count towards the lockout; a device must not lose attestation to them. The AK
    // has an empty authorization and noDA, so the lockout does not apply to it.
    Device d;
    const auto tool = [&](std::vector<std::string> argv) {
        auto ran = edge::test::runTpm2Tool(d.swtpm.tcti(), std::move(argv));
        INFO(ran.out << ran.err);
        return ran.exit_code;
    };
    const auto ctx = (d.dir / "primary.ctx").string();
    // One failed authorization is enough for the lockout, and it lasts.
    REQUIRE(tool({"tpm2_dictionarylockout", "-s", "-n", "1", "-t", "10000", "-l", "10000"}) == 0);
    REQUIRE(tool({"tpm2_createprimary", "-C", "o", "-G", "ecc", "-p", "right", "-c", ctx}) == 0);
    CHECK(tool({"tpm2_create", "-C", ctx, "-P", "wrong", "-G", "ecc", "-u", (d.dir / "k.pub").string(), "-r",
                (d.dir / "k.priv").string()}) != 0);
    REQUIRE(tool({"tpm2_flushcontext", "-t"}) == 0);
    const auto cap = edge::test::runTpm2Tool(d.swtpm.tcti(), {"tpm2_getcap", "properties-variable"});
    REQUIRE_THAT(cap.out, Catch::Contains("inLockout:                 1"));
    const Bytes nonce = randomBytes(32);
    auto quote = must(d.tpm->quote(nonce, {23}));
    CHECK(must(tpm::verifyQuote(d.ak, quote.attest, quote.signature, nonce, quote.pcrs)).pcrs.contains(23));
}

TEST_CASE("TPM attestation: tpm2_checkquote accepts the exported files and refuses a wrong nonce",
          "[integration]") {
    Device d;
    // More than 8 PCRs: the TPM answers PCR reads and the file holds digests 8 at a time.
    const std::vector<int> selection{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 23};
    mustOk(d.tpm->extendPcr(16, digestOf(0x44)));
    const Bytes nonce = randomBytes(32);
    const auto quote = must(d.tpm->quote(nonce, selection));
    REQUIRE(quote.pcrs.size() == selection.size());
    const auto files = d.dir / "export";
    mustOk(tpm::exportForCheckquote(files, d.ak, quote));

    auto checkquote = [&](const Bytes& n) {
        return edge::test::runCommand(
            {"tpm2_checkquote", "-u", (files / "ak.pem").string(), "-m",
             (files / "quote.msg").string(), "-s", (files / "quote.sig").string(), "-f",
             (files / "pcrs.bin").string(), "-g", "sha256", "-q", hex(n)});
    };
    const auto good = checkquote(nonce);
    INFO(good.out << good.err);
    CHECK(good.exit_code == 0);
    CHECK(checkquote(randomBytes(32)).exit_code != 0);
}

TEST_CASE(
    "TPM attestation: after a swtpm restart the persisted AK blob gives the same AK and quotes "
    "verify",
    "[integration]") {
    Device d;
    const auto blob = d.keys.ak_blob;
    const Bytes first_nonce = randomBytes(32);
    const auto first = must(d.tpm->quote(first_nonce, {23}));
    const auto before =
        must(tpm::verifyQuote(d.ak, first.attest, first.signature, first_nonce, first.pcrs));
    d.tpm.reset();
    d.swtpm.stop();
    d.swtpm.start();

    auto reopened = must(tpm::EsapiTpm::open(d.swtpm.tcti()));
    const auto keys = must(reopened->enroll(blob));
    CHECK(keys.ak_name == d.keys.ak_name);
    CHECK(keys.ak_public == d.keys.ak_public);
    CHECK(keys.ek_public == d.keys.ek_public);
    CHECK(keys.ak_blob == blob);

    const Bytes nonce = randomBytes(20);
    const auto quote = must(reopened->quote(nonce, {0, 23}));
    const auto info =
        must(tpm::verifyQuote(d.ak, quote.attest, quote.signature, nonce, quote.pcrs));
    CHECK(info.reset_count > before.reset_count);  // a restart with startup-clear is a TPM reset

    // A blob that does not parse is refused without touching the TPM state.
    Bytes broken = blob.data;
    broken.resize(broken.size() / 2);
    CHECK(codeOf(reopened->enroll(tpm::AkBlob{broken})) == TpmErrc::kMalformed);
}

TEST_CASE(
    "TPM attestation: a TPM killed mid-run gives errors with the decoded TSS rc, then a new "
    "EsapiTpm works",
    "[integration]") {
    Device d;
    d.swtpm.kill();

    const auto quote = d.tpm->quote(randomBytes(32), {23});
    REQUIRE_FALSE(quote.has_value());
    INFO(quote.error().what());
    CHECK(quote.error().code().category() == tpm::tpmCategory());
    CHECK_THAT(quote.error().what(), Catch::Contains("Esys_") && Catch::Contains("(0x"));
    CHECK_FALSE(d.tpm->extendPcr(23, digestOf(1)).has_value());
    CHECK_FALSE(d.tpm->readPcrs({23}).has_value());
    CHECK_FALSE(d.tpm->enroll(d.keys.ak_blob).has_value());
    CHECK_FALSE(d.tpm->activateCredential({0, 0}, {0, 0}).has_value());
    CHECK(codeOf(tpm::EsapiTpm::open(d.swtpm.tcti())) == TpmErrc::kUnavailable);

    const int old_port = d.swtpm.port();
    d.swtpm.start();
    if (d.swtpm.port() == old_port) {
        // The old adapter reconnects on its next call and reloads its AK from the enrolled blob.
        const Bytes nonce = randomBytes(32);
        const auto q = must(d.tpm->quote(nonce, {23}));
        CHECK(tpm::verifyQuote(d.ak, q.attest, q.signature, nonce, q.pcrs).has_value());
    }
    d.tpm.reset();
    auto fresh = must(tpm::EsapiTpm::open(d.swtpm.tcti()));
    const auto keys = must(fresh->enroll(d.keys.ak_blob));
    CHECK(keys.ak_name == d.keys.ak_name);
    const Bytes nonce = randomBytes(32);
    const auto q = must(fresh->quote(nonce, {23}));
    CHECK(tpm::verifyQuote(d.ak, q.attest, q.signature, nonce, q.pcrs).has_value());
}

TEST_CASE("TPM attestation: no TPM configured is reported as unavailable", "[unit]") {
    const auto empty = tpm::EsapiTpm::open("");
    CHECK(codeOf(empty) == TpmErrc::kUnavailable);
    CHECK(tpm::failureReason(empty.error()) == "tpm_unavailable");
    CHECK(codeOf(tpm::EsapiTpm::open("nosuchtcti:whatever")) == TpmErrc::kUnavailable);
}

TEST_CASE("TPM attestation parsers: empty, truncated and oversized input is refused, never trusted",
          "[unit]") {
    const Bytes empty;
    CHECK(codeOf(tpm::objectName(empty)) == TpmErrc::kMalformed);
    CHECK(codeOf(tpm::checkAkPublic(empty)) == TpmErrc::kMalformed);
    CHECK(codeOf(tpm::checkAkPublic({0x00})) == TpmErrc::kMalformed);
    CHECK(codeOf(tpm::checkAkPublic({0xff, 0xff, 0x00, 0x23})) ==
          TpmErrc::kMalformed);  // size > data
    CHECK(codeOf(tpm::checkAkPublic(Bytes(70000, 0xff))) == TpmErrc::kMalformed);
    CHECK(codeOf(tpm::makeCredential(empty, Bytes(34, 0), Bytes(32, 1))) == TpmErrc::kMalformed);
    CHECK(codeOf(tpm::quotedPcrDigest(empty)) == TpmErrc::kMalformed);

    // A TPMS_ATTEST header with a quote type and absurd TPM2B sizes.
    Bytes attest{0xff, 0x54, 0x43, 0x47, 0x80, 0x18, 0xff, 0xff};
    attest.resize(200, 0xff);
    CHECK(codeOf(tpm::quotedPcrDigest(attest)) == TpmErrc::kMalformed);
    // Magic that is not TPM_GENERATED_VALUE, otherwise a well-formed empty quote.
    Bytes not_generated{0x00, 0x00, 0x00, 0x00, 0x80, 0x18, 0x00, 0x00, 0x00, 0x00};
    not_generated.resize(not_generated.size() + 17 + 8, 0);         // clockInfo, firmwareVersion
    not_generated.insert(not_generated.end(), {0, 0, 0, 0, 0, 0});  // empty selection, empty digest
    CHECK(codeOf(tpm::quotedPcrDigest(not_generated)) == TpmErrc::kNotAQuote);

    // Signatures: empty, wrong algorithm, r/s sizes beyond P-256 and beyond the buffer.
    const tpm::AkInfo no_key;
    CHECK(codeOf(tpm::verifyQuote(no_key, attest, {}, {}, {})) == TpmErrc::kBadArgument);
    CHECK(codeOf(tpm::verifyQuote(Bytes{}, attest, {}, {}, {})) == TpmErrc::kMalformed);

    // makeCredential refuses names and secrets it cannot wrap.
    CHECK(codeOf(tpm::checkquotePcrsFile({{24, {}}})) == TpmErrc::kBadArgument);
    CHECK(must(tpm::checkquotePcrsFile({{0, {}}, {23, {}}})).size() == 132 + 4 + 532);

    // Replay: nothing extended is all zeros; one extend is SHA-256(zeros || d).
    CHECK(tpm::replayPcr({}) == tpm::Sha256Digest{});
    CHECK(tpm::replayPcr({digestOf(0)}) != tpm::Sha256Digest{});
    CHECK(tpm::replayPcr({digestOf(1), digestOf(2)}) != tpm::replayPcr({digestOf(2), digestOf(1)}));
}
