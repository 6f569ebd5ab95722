#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "security/trust_root.hpp"

namespace sec = edge::security;
using nlohmann::json;
using sec::Algorithm;
using sec::SecurityErrc;

namespace {

struct Fixture {
    sec::PrivateKey ed = sec::PrivateKey::generate(Algorithm::kEd25519).value();
    sec::PrivateKey es = sec::PrivateKey::generate(Algorithm::kEs256).value();
    sec::PublicKey ed_pub = ed.publicKey();
    sec::PublicKey es_pub = es.publicKey();
    json doc = json::parse(sec::TrustRoot::create({ed_pub, es_pub}, 2).toJson());
};

void expectRejected(const json& doc, std::string_view reason) {
    CAPTURE(doc.dump());
    const auto root = sec::TrustRoot::fromJson(doc.dump());
    REQUIRE_FALSE(root);
    CHECK(root.error().code() == SecurityErrc::kTrustRoot);
    CHECK_THAT(root.error().message(), Catch::Contains(std::string(reason)));
}

}  // namespace

TEST_CASE("TrustRoot: create puts the same keys and threshold in the root and targets roles") {
    Fixture f;
    const auto root = sec::TrustRoot::create({f.ed_pub, f.es_pub, f.ed_pub}, 2);
    CHECK(root.version == 1);
    CHECK(root.keys.size() == 2);
    CHECK(root.targets.threshold == 2);
    CHECK(root.root.threshold == 2);
    CHECK(root.targets.key_ids == std::vector<std::string>{f.ed_pub.keyId(), f.es_pub.keyId()});
    CHECK(root.root.key_ids == root.targets.key_ids);
}

TEST_CASE("TrustRoot: JSON roundtrip keeps version, keys and roles") {
    Fixture f;
    auto original = sec::TrustRoot::create({f.ed_pub, f.es_pub}, 1);
    original.version = 7;
    const std::string text = original.toJson();
    CHECK(text.find("\n  \"keys\"") != std::string::npos);  // pretty, indent 2

    const json doc = json::parse(text);
    CHECK(doc["schema"] == 1);
    CHECK(doc["keys"][f.ed_pub.keyId()]["alg"] == "EdDSA");
    CHECK(doc["keys"][f.es_pub.keyId()]["alg"] == "ES256");

    const auto parsed = sec::TrustRoot::fromJson(text);
    REQUIRE(parsed);
    CHECK(parsed->version == 7);
    REQUIRE(parsed->keys.size() == 2);
    CHECK(parsed->keys.at(f.ed_pub.keyId()).verify("m", f.ed.sign("m").value()));
    CHECK(parsed->keys.at(f.es_pub.keyId()).verify("m", f.es.sign("m").value()));
    CHECK(parsed->targets.threshold == 1);
    CHECK(parsed->targets.key_ids == original.targets.key_ids);
    CHECK(parsed->root.key_ids == original.root.key_ids);
    CHECK(parsed->toJson() == text);
}

TEST_CASE("TrustRoot: load reads a file and reports unreadable or invalid ones with kTrustRoot") {
    Fixture f;
    std::string templ = (std::filesystem::temp_directory_path() / "edge-trust-XXXXXX").string();
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    const std::filesystem::path dir = templ;
    std::ofstream(dir / "root.json") << f.doc.dump(2);
    std::ofstream(dir / "bad.json") << "{";

    const auto loaded = sec::TrustRoot::load(dir / "root.json");
    REQUIRE(loaded);
    CHECK(loaded->targets.threshold == 2);
    const auto missing = sec::TrustRoot::load(dir / "missing.json");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == SecurityErrc::kTrustRoot);
    CHECK_THAT(missing.error().what(), Catch::Contains("missing.json"));
    const auto bad = sec::TrustRoot::load(dir / "bad.json");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == SecurityErrc::kTrustRoot);
    CHECK_THAT(bad.error().what(), Catch::Contains("bad.json"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("TrustRoot: fromJson rejects non-JSON, wrong schema and wrong field types") {
    Fixture f;
    const auto rejected = sec::TrustRoot::fromJson("not json");
    REQUIRE_FALSE(rejected);
    CHECK(rejected.error().code() == SecurityErrc::kTrustRoot);

    auto doc = f.doc;
    doc["schema"] = 2;
    expectRejected(doc, "schema");
    doc = f.doc;
    doc.erase("schema");
    expectRejected(doc, "schema");
    doc = f.doc;
    doc["version"] = -1;
    expectRejected(doc, "version");
    doc = f.doc;
    doc["keys"] = json::array();
    expectRejected(doc, "keys");
    doc = f.doc;
    doc.erase("roles");
    expectRejected(doc, "roles");
    doc = f.doc;
    doc["roles"].erase("targets");
    expectRejected(doc, "targets");
    doc = f.doc;
    doc["roles"]["root"]["threshold"] = "1";
    expectRejected(doc, "threshold");
    doc = f.doc;
    doc["roles"]["targets"]["keys"] = f.ed_pub.keyId();
    expectRejected(doc, "keys");
}

TEST_CASE("TrustRoot: fromJson rejects a threshold of 0") {
    Fixture f;
    auto doc = f.doc;
    doc["roles"]["targets"]["threshold"] = 0;
    expectRejected(doc, "threshold must be at least 1");
}

TEST_CASE("TrustRoot: fromJson rejects a threshold above the number of keys in the role") {
    Fixture f;
    auto doc = f.doc;
    doc["roles"]["targets"]["threshold"] = 3;
    expectRejected(doc, "threshold 3 exceeds its 2 key(s)");
    doc = f.doc;
    doc["roles"]["root"]["keys"] = {f.ed_pub.keyId()};
    expectRejected(doc, "threshold 2 exceeds its 1 key(s)");
}

TEST_CASE("TrustRoot: fromJson rejects a role naming an unknown key or one key twice") {
    Fixture f;
    auto doc = f.doc;
    doc["roles"]["targets"]["keys"].push_back(std::string(64, 'a'));
    expectRejected(doc, "unknown key " + std::string(64, 'a'));
    doc = f.doc;
    doc["roles"]["targets"]["keys"] = {f.ed_pub.keyId(), f.ed_pub.keyId()};
    expectRejected(doc, "twice");
}

TEST_CASE("TrustRoot: fromJson rejects a key whose id does not match its PEM") {
    Fixture f;
    auto doc = f.doc;
    // Swap the PEMs of the two entries: each id now names the other key.
    auto& keys = doc["keys"];
    std::swap(keys[f.ed_pub.keyId()], keys[f.es_pub.keyId()]);
    expectRejected(doc, "does not match its public key");
}

TEST_CASE("TrustRoot: fromJson rejects a key whose alg does not match its PEM") {
    Fixture f;
    auto doc = f.doc;
    doc["keys"][f.ed_pub.keyId()]["alg"] = "ES256";
    expectRejected(doc, "alg");
}

TEST_CASE("TrustRoot: fromJson rejects a bad PEM") {
    Fixture f;
    auto doc = f.doc;
    doc["keys"][f.ed_pub.keyId()]["public_pem"] = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
    expectRejected(doc, "bad public_pem");
    doc = f.doc;
    doc["keys"][f.ed_pub.keyId()].erase("public_pem");
    expectRejected(doc, "public_pem");
}
