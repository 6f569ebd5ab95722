#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "security/jws.hpp"

namespace sec = edge::security;
using nlohmann::json;
using sec::Algorithm;
using sec::SecurityErrc;

namespace {

std::string b64(std::string_view s) { return sec::base64UrlEncode(s); }

// A structurally valid document with one signature whose header is `header`.
std::string withHeader(const json& header, std::string_view signature = "c2ln") {
    return json{{"payload", b64("hello")},
                {"signatures", {{{"protected", b64(header.dump())}, {"signature", signature}}}}}
        .dump();
}

void expectMalformed(std::string_view text, std::string_view reason) {
    CAPTURE(text);
    const auto parsed = sec::jwsParse(text);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code() == SecurityErrc::kMalformed);
    CHECK_THAT(parsed.error().message(), Catch::Contains(std::string(reason)));
}

}  // namespace

TEST_CASE("JWS: two signatures by different algorithms roundtrip through sign and parse") {
    const auto ed = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    const auto es = sec::PrivateKey::generate(Algorithm::kEs256).value();
    const std::string payload = R"({"hello":"world"})";
    const auto text = sec::jwsSign(payload, {ed, es});
    REQUIRE(text);

    const json doc = json::parse(*text);
    CHECK(doc.size() == 2);
    CHECK(doc["payload"] == b64(payload));
    REQUIRE(doc["signatures"].size() == 2);
    CHECK(doc["signatures"][0].size() == 2);  // exactly "protected" and "signature"

    const auto jws = sec::jwsParse(*text);
    REQUIRE(jws);
    CHECK(jws->payload == payload);
    CHECK(jws->payload_b64 == b64(payload));
    REQUIRE(jws->signatures.size() == 2);
    const sec::PrivateKey* keys[] = {&ed, &es};
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& sig = jws->signatures[i];
        const auto pub = keys[i]->publicKey();
        CHECK(sig.alg == sec::jwsAlgName(pub.algorithm()));
        CHECK(sig.kid == pub.keyId());
        CHECK(sig.signature.size() == 64);
        CHECK(json::parse(sec::base64UrlDecode(sig.protected_b64).value()) ==
              json{{"alg", sig.alg}, {"kid", sig.kid}});
        CHECK(pub.verify(sig.protected_b64 + "." + jws->payload_b64, sig.signature));
    }
}

TEST_CASE("JWS: signing without keys fails with kKey") {
    CHECK(sec::jwsSign("x", {}).error().code() == SecurityErrc::kKey);
}

TEST_CASE("JWS: an empty or binary payload survives the roundtrip") {
    const auto key = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    for (const std::string& payload : {std::string(), std::string("\x00\xff\x01", 3)}) {
        const auto jws = sec::jwsParse(sec::jwsSign(payload, {key}).value());
        REQUIRE(jws);
        CHECK(jws->payload == payload);
    }
}

TEST_CASE("jwsParse: text that is not a JWS JSON document is rejected with kMalformed") {
    expectMalformed("", "not JSON");
    expectMalformed("not json", "not JSON");
    expectMalformed(R"({"payload":"aGk","signatures":[)", "not JSON");
    expectMalformed("[1,2]", "not a JSON object");
    expectMalformed("eyJhbGciOiJFZERTQSJ9.aGk.c2ln", "not JSON");  // compact form is not accepted
}

TEST_CASE("jwsParse: a missing or mistyped payload is rejected with kMalformed") {
    expectMalformed(R"({"signatures":[{"protected":"e30","signature":"c2ln"}]})", "payload");
    expectMalformed(R"({"payload":5,"signatures":[{"protected":"e30","signature":"c2ln"}]})", "payload");
}

TEST_CASE("jwsParse: bad base64url in payload, header or signature is rejected with kMalformed") {
    const std::string header = b64(R"({"alg":"EdDSA","kid":"k"})");
    expectMalformed(json{{"payload", "aGk="},
                         {"signatures", {{{"protected", header}, {"signature", "c2ln"}}}}}
                        .dump(),
                    "payload is not base64url");
    expectMalformed(json{{"payload", "aGk"},
                         {"signatures", {{{"protected", header + "*"}, {"signature", "c2ln"}}}}}
                        .dump(),
                    "protected header is not base64url");
    expectMalformed(json{{"payload", "aGk"},
                         {"signatures", {{{"protected", header}, {"signature", "c2/n"}}}}}
                        .dump(),
                    "signature is not base64url");
}

TEST_CASE("jwsParse: a document without signatures is rejected with kMalformed") {
    expectMalformed(R"({"payload":"aGk"})", "signatures");
    expectMalformed(R"({"payload":"aGk","signatures":{}})", "signatures");
    expectMalformed(R"({"payload":"aGk","signatures":[]})", "no signatures");
    // The flattened serialization (a single top-level signature) is not accepted either.
    expectMalformed(R"({"payload":"aGk","protected":"e30","signature":"c2ln"})", "signatures");
}

TEST_CASE("jwsParse: malformed signature entries and protected headers are rejected with kMalformed") {
    expectMalformed(R"({"payload":"aGk","signatures":["x"]})", "not an object");
    expectMalformed(R"({"payload":"aGk","signatures":[{"signature":"c2ln"}]})", "protected");
    expectMalformed(json{{"payload", "aGk"}, {"signatures", {{{"protected", b64(R"({"alg":"EdDSA","kid":"k"})")}}}}}.dump(),
                    "signature");
    expectMalformed(withHeader(json::array()), "not a JSON object");
    expectMalformed(json{{"payload", "aGk"}, {"signatures", {{{"protected", b64("{")}, {"signature", "c2ln"}}}}}.dump(),
                    "not a JSON object");
    expectMalformed(withHeader({{"kid", "k"}}), "alg");
    expectMalformed(withHeader({{"alg", "EdDSA"}}), "kid");
    expectMalformed(withHeader({{"alg", 1}, {"kid", "k"}}), "alg");
    expectMalformed(withHeader({{"alg", "EdDSA"}, {"kid", 7}}), "kid");
}

TEST_CASE("jwsParse: a protected header with crit is rejected with kMalformed") {
    expectMalformed(withHeader({{"alg", "EdDSA"}, {"kid", "k"}, {"crit", {"exp"}}, {"exp", 1}}), "crit");
}

TEST_CASE("jwsParse: a second bad signature entry rejects the whole document") {
    const std::string good = b64(R"({"alg":"EdDSA","kid":"k"})");
    expectMalformed(json{{"payload", "aGk"},
                         {"signatures",
                          {{{"protected", good}, {"signature", "c2ln"}},
                           {{"protected", b64(R"({"alg":"EdDSA"})")}, {"signature", "c2ln"}}}}}
                        .dump(),
                    "signature 1");
}

TEST_CASE("jwsParse: inputs above 16 MiB or with too many signatures are refused") {
    expectMalformed(std::string(sec::kMaxJwsBytes + 1, ' '), "larger than");
    json sigs = json::array();
    for (std::size_t i = 0; i <= sec::kMaxJwsSignatures; ++i) {
        sigs.push_back({{"protected", b64(R"({"alg":"EdDSA","kid":"k"})")}, {"signature", "c2ln"}});
    }
    expectMalformed(json{{"payload", "aGk"}, {"signatures", sigs}}.dump(), "too many signatures");
}

TEST_CASE("jwsParse: parsing does not check signatures or algorithms") {
    const auto parsed = sec::jwsParse(withHeader({{"alg", "none"}, {"kid", "whoever"}}));
    REQUIRE(parsed);
    CHECK(parsed->payload == "hello");
    CHECK(parsed->signatures[0].alg == "none");
    CHECK(parsed->signatures[0].kid == "whoever");
    CHECK(parsed->signatures[0].signature == "sig");
}
