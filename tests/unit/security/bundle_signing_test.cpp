#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "security/bundle_signing.hpp"
#include "security/jws.hpp"

namespace sec = edge::security;
using nlohmann::json;
using sec::Algorithm;
using sec::SecurityErrc;

namespace {

constexpr std::int64_t kNow = 1764380000;

edge::bundle::Bundle sampleBundle() {
    edge::bundle::Bundle b;
    b.device_id = "dev-1";
    b.version = 7;
    b.issued_at = kNow - 60;
    b.expires_at = kNow + 3600;
    b.source = "sha256:abc";
    b.policies = {{"finops.rego", "package finops\nallow := true\n"}};
    b.data = {{"limits", {{"cpu", 2}}}};
    return b;
}

const sec::VerifyContext kCtx{"dev-1", 5, kNow};

struct Keys {
    sec::PrivateKey a = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    sec::PrivateKey b = sec::PrivateKey::generate(Algorithm::kEs256).value();
    sec::PrivateKey stranger = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    sec::TrustRoot one_of_one = sec::TrustRoot::create({a.publicKey()}, 1);
    sec::TrustRoot two_of_two = sec::TrustRoot::create({a.publicKey(), b.publicKey()}, 2);
};

void expectRejected(const edge::Result<edge::bundle::Bundle>& result, SecurityErrc code,
                    const std::string& message) {
    REQUIRE_FALSE(result);
    CHECK(result.error().code() == code);
    CHECK_THAT(result.error().message(), Catch::Contains(message));
}

// A JWS of `payload` signed by `key` (any bytes, not necessarily a bundle).
std::string signRaw(std::string_view payload, const sec::PrivateKey& key) {
    return sec::jwsSign(payload, {key}).value();
}

}  // namespace

TEST_CASE("verifyBundle: a bundle signed by a trusted key is accepted and returned intact") {
    Keys k;
    const auto original = sampleBundle();
    const auto signed_text = sec::signBundle(original, {k.a});
    REQUIRE(signed_text);
    CHECK(sec::jwsParse(*signed_text).value().payload == edge::bundle::toJson(original));

    const auto verified = sec::verifyBundle(*signed_text, k.one_of_one, kCtx);
    REQUIRE(verified);
    CHECK(verified->device_id == "dev-1");
    CHECK(verified->version == 7);
    CHECK(verified->policies == original.policies);
    CHECK(verified->data == original.data);
    CHECK(verified->contentDigest() == original.contentDigest());
}

TEST_CASE("verifyBundle: a bundle signed with an ES256 trusted key is accepted") {
    Keys k;
    const auto root = sec::TrustRoot::create({k.b.publicKey()}, 1);
    CHECK(sec::verifyBundle(sec::signBundle(sampleBundle(), {k.b}).value(), root, kCtx));
}

TEST_CASE("verifyBundle: text that is not a JWS is rejected with kMalformed") {
    Keys k;
    expectRejected(sec::verifyBundle("{}", k.one_of_one, kCtx), SecurityErrc::kMalformed,
                   "bundle is not a valid JWS: ");
    expectRejected(sec::verifyBundle(edge::bundle::toJson(sampleBundle()), k.one_of_one, kCtx),
                   SecurityErrc::kMalformed, "bundle is not a valid JWS");
}

TEST_CASE("verifyBundle: a bundle signed by an untrusted key is rejected with kBadSignature") {
    Keys k;
    expectRejected(sec::verifyBundle(sec::signBundle(sampleBundle(), {k.stranger}).value(),
                                     k.one_of_one, kCtx),
                   SecurityErrc::kBadSignature, "no valid signature from a trusted targets key");
}

TEST_CASE("verifyBundle: a tampered payload is rejected with kBadSignature") {
    Keys k;
    auto doc = json::parse(sec::signBundle(sampleBundle(), {k.a}).value());
    auto other = sampleBundle();
    other.data["limits"]["cpu"] = 64;
    doc["payload"] = sec::base64UrlEncode(edge::bundle::toJson(other));
    expectRejected(sec::verifyBundle(doc.dump(), k.one_of_one, kCtx), SecurityErrc::kBadSignature,
                   "no valid signature");
}

TEST_CASE("verifyBundle: a signature whose header alg differs from the key's is not counted") {
    Keys k;
    auto doc = json::parse(sec::signBundle(sampleBundle(), {k.a}).value());
    // Re-sign with the right key but a header claiming ES256.
    const json header = {{"alg", "ES256"}, {"kid", k.a.publicKey().keyId()}};
    const std::string prot = sec::base64UrlEncode(header.dump());
    const std::string sig = k.a.sign(prot + "." + doc["payload"].get<std::string>()).value();
    doc["signatures"][0] = {{"protected", prot}, {"signature", sec::base64UrlEncode(sig)}};
    expectRejected(sec::verifyBundle(doc.dump(), k.one_of_one, kCtx), SecurityErrc::kBadSignature,
                   "no valid signature");
}

TEST_CASE("verifyBundle: a key of the trust root outside the targets role does not count") {
    Keys k;
    auto root = k.one_of_one;
    root.keys.emplace(k.stranger.publicKey().keyId(), k.stranger.publicKey());
    root.root.key_ids.push_back(k.stranger.publicKey().keyId());
    expectRejected(sec::verifyBundle(sec::signBundle(sampleBundle(), {k.stranger}).value(), root, kCtx),
                   SecurityErrc::kBadSignature, "no valid signature");
}

TEST_CASE("verifyBundle: threshold 2 with one valid signature is rejected with kThresholdNotMet") {
    Keys k;
    expectRejected(sec::verifyBundle(sec::signBundle(sampleBundle(), {k.a}).value(), k.two_of_two, kCtx),
                   SecurityErrc::kThresholdNotMet, "signature threshold not met: 1 of 2");
    // An untrusted second signature does not help.
    expectRejected(sec::verifyBundle(sec::signBundle(sampleBundle(), {k.a, k.stranger}).value(),
                                     k.two_of_two, kCtx),
                   SecurityErrc::kThresholdNotMet, "1 of 2");
}

TEST_CASE("verifyBundle: threshold 2 is met by signatures of two distinct trusted keys") {
    Keys k;
    const auto verified =
        sec::verifyBundle(sec::signBundle(sampleBundle(), {k.stranger, k.b, k.a}).value(), k.two_of_two, kCtx);
    CHECK(verified);
}

TEST_CASE("verifyBundle: duplicate signatures by the same key count once") {
    Keys k;
    expectRejected(sec::verifyBundle(sec::signBundle(sampleBundle(), {k.a, k.a}).value(), k.two_of_two, kCtx),
                   SecurityErrc::kThresholdNotMet, "1 of 2");
    // Copying one signature entry twice is no better than signing twice.
    auto doc = json::parse(sec::signBundle(sampleBundle(), {k.b}).value());
    doc["signatures"].push_back(doc["signatures"][0]);
    expectRejected(sec::verifyBundle(doc.dump(), k.two_of_two, kCtx), SecurityErrc::kThresholdNotMet,
                   "1 of 2");
}

TEST_CASE("verifyBundle: a validly signed payload that is not a bundle is rejected with kMalformed") {
    Keys k;
    expectRejected(sec::verifyBundle(signRaw("not json", k.a), k.one_of_one, kCtx),
                   SecurityErrc::kMalformed, "not a valid bundle");
    auto doc = json::parse(edge::bundle::toJson(sampleBundle()));
    doc.erase("expires_at");
    expectRejected(sec::verifyBundle(signRaw(doc.dump(), k.a), k.one_of_one, kCtx),
                   SecurityErrc::kMalformed, "expires_at");
}

TEST_CASE("verifyBundle: signatures are checked before the payload is interpreted") {
    Keys k;
    // An unsigned-by-trusted-key garbage payload reports the signature, not the payload.
    expectRejected(sec::verifyBundle(signRaw("not json", k.stranger), k.one_of_one, kCtx),
                   SecurityErrc::kBadSignature, "no valid signature");
}

TEST_CASE("verifyBundle: a bundle for another device is rejected with kWrongDevice") {
    Keys k;
    auto b = sampleBundle();
    b.device_id = "dev-2";
    expectRejected(sec::verifyBundle(sec::signBundle(b, {k.a}).value(), k.one_of_one, kCtx),
                   SecurityErrc::kWrongDevice, "bundle is for device 'dev-2', this is 'dev-1'");
}

TEST_CASE("verifyBundle: a version at or below the last accepted one is rejected with kStaleVersion") {
    Keys k;
    auto b = sampleBundle();
    b.version = 3;
    expectRejected(sec::verifyBundle(sec::signBundle(b, {k.a}).value(), k.one_of_one, kCtx),
                   SecurityErrc::kStaleVersion, "bundle version 3 is not above the last accepted 5");
    b.version = 5;
    expectRejected(sec::verifyBundle(sec::signBundle(b, {k.a}).value(), k.one_of_one, kCtx),
                   SecurityErrc::kStaleVersion, "bundle version 5 is not above the last accepted 5");
    b.version = 6;
    CHECK(sec::verifyBundle(sec::signBundle(b, {k.a}).value(), k.one_of_one, kCtx));
}

TEST_CASE("verifyBundle: a bundle at or past its expiry is rejected with kExpired") {
    Keys k;
    auto b = sampleBundle();
    b.expires_at = kNow;
    expectRejected(sec::verifyBundle(sec::signBundle(b, {k.a}).value(), k.one_of_one, kCtx),
                   SecurityErrc::kExpired, "bundle expired at 2025-11-29T01:33:20Z");
    b.expires_at = kNow + 1;
    CHECK(sec::verifyBundle(sec::signBundle(b, {k.a}).value(), k.one_of_one, kCtx));
}

TEST_CASE("verifyBundle: checks run in order: device before version before expiry") {
    Keys k;
    auto b = sampleBundle();
    b.device_id = "dev-9";
    b.version = 1;
    b.expires_at = 0;
    const auto text = sec::signBundle(b, {k.a}).value();
    CHECK(sec::verifyBundle(text, k.one_of_one, kCtx).error().code() == SecurityErrc::kWrongDevice);
    const sec::VerifyContext same_device{"dev-9", 5, kNow};
    CHECK(sec::verifyBundle(text, k.one_of_one, same_device).error().code() == SecurityErrc::kStaleVersion);
    const sec::VerifyContext fresh{"dev-9", 0, kNow};
    CHECK(sec::verifyBundle(text, k.one_of_one, fresh).error().code() == SecurityErrc::kExpired);
}

TEST_CASE("signBundle: signing without keys fails with kKey") {
    CHECK(sec::signBundle(sampleBundle(), {}).error().code() == SecurityErrc::kKey);
}
