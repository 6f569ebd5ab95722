#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "shared/bundle/bundle.hpp"

using edge::SharedErrc;
using edge::bundle::Bundle;
using nlohmann::json;
namespace bundle = edge::bundle;

namespace {

Bundle sample() {
    Bundle b;
    b.device_id = "dev-1";
    b.version = 7;
    b.issued_at = 1764380000;
    b.expires_at = 1764984800;
    b.source = "sha256:0123";
    b.policies = {{"finops.rego", "package finops\n"}, {"safety.rego", "package safety\n"}};
    b.data = {{"limits", {{"cpu", 2}, {"mem", "1Gi"}}}, {"zones", {"a", "b"}}};
    b.enforcement.entrypoints = {"data.finops.deny"};
    b.enforcement.log_input = true;
    b.enforcement.usage_windows = {"hour", "month"};
    b.enforcement.offline = {3600, "safe"};
    b.enforcement.policy_sets["safe"] = {{"safe.rego", "package safe\n"}};
    return b;
}

json sampleJson() { return json::parse(bundle::toJson(sample())); }

void expectParseError(const json& doc, const std::string& mention) {
    CAPTURE(doc.dump());
    const auto parsed = bundle::fromJson(doc.dump());
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code() == SharedErrc::kParse);
    CHECK_THAT(parsed.error().message(), Catch::Contains(mention));
}

}  // namespace

TEST_CASE("Bundle: toJson is compact with exactly the documented keys") {
    const std::string text = bundle::toJson(sample());
    CHECK(text.find('\n') == std::string::npos);
    CHECK(text.find(": ") == std::string::npos);
    const json doc = json::parse(text);
    std::vector<std::string> keys;
    for (const auto& item : doc.items()) keys.push_back(item.key());
    CHECK(keys == std::vector<std::string>{"data", "device", "enforcement", "expires_at", "issued_at",
                                           "policies", "schema", "source", "version"});
    CHECK(doc["schema"] == 1);
    CHECK(doc["device"] == "dev-1");
    CHECK(doc["version"] == 7);
    CHECK(doc["policies"]["finops.rego"] == "package finops\n");
}

TEST_CASE("Bundle: fromJson(toJson(b)) gives back every field") {
    const Bundle original = sample();
    const auto parsed = bundle::fromJson(bundle::toJson(original));
    REQUIRE(parsed);
    CHECK(parsed->schema == 1);
    CHECK(parsed->device_id == original.device_id);
    CHECK(parsed->version == original.version);
    CHECK(parsed->issued_at == original.issued_at);
    CHECK(parsed->expires_at == original.expires_at);
    CHECK(parsed->source == original.source);
    CHECK(parsed->policies == original.policies);
    CHECK(parsed->data == original.data);
    CHECK(parsed->enforcement == original.enforcement);
    CHECK(bundle::toJson(*parsed) == bundle::toJson(original));
}

TEST_CASE("Bundle: enforcement is optional, and checked when present") {
    auto doc = sampleJson();
    doc.erase("enforcement");
    auto parsed = bundle::fromJson(doc.dump());
    REQUIRE(parsed);
    CHECK(parsed->enforcement == bundle::Enforcement{});
    CHECK(parsed->enforcement.offline.after == "keep");

    doc = sampleJson();
    doc["enforcement"]["offline"]["after"] = "missing";
    expectParseError(doc, "neither \"keep\" nor a policy set");
    doc = sampleJson();
    doc["enforcement"]["usage_windows"] = {"fortnight"};
    expectParseError(doc, "unknown window \"fortnight\"");
    doc = sampleJson();
    doc["enforcement"]["colour"] = 1;
    expectParseError(doc, "unknown field \"enforcement.colour\"");
    doc = sampleJson();
    doc["enforcement"]["offline"]["max_age"] = -1;
    expectParseError(doc, "max_age");
    doc = sampleJson();
    doc["enforcement"]["entrypoints"] = {"finops.deny"};
    expectParseError(doc, "must start with \"data.\"");
    doc = sampleJson();
    doc["enforcement"]["policy_sets"]["safe"] = json::object();
    expectParseError(doc, "is empty");
    // The digest covers enforcement: a changed offline rule is a changed bundle.
    auto changed = sample();
    changed.enforcement.offline.max_age = 7200;
    CHECK(changed.contentDigest() != sample().contentDigest());
}

TEST_CASE("Bundle: retry is optional, part of the content, and an unsigned integer") {
    auto b = sample();
    CHECK(bundle::toJson(b).find("\"retry\"") == std::string::npos);  // absent at 0
    const auto without = b.contentDigest();
    b.retry = 2;
    auto parsed = bundle::fromJson(bundle::toJson(b));
    REQUIRE(parsed);
    CHECK(parsed->retry == 2);
    CHECK(b.contentDigest() != without);
    auto resigned = b;
    resigned.version += 1;
    resigned.issued_at += 60;
    CHECK(resigned.contentDigest() == b.contentDigest());
    for (const json& bad : {json(-1), json("1"), json(1.5)}) {
        auto doc = json::parse(bundle::toJson(b));
        doc["retry"] = bad;
        auto refused = bundle::fromJson(doc.dump());
        REQUIRE_FALSE(refused);
        CHECK_THAT(refused.error().what(), Catch::Contains("retry"));
    }
}

TEST_CASE("Bundle: fromJson accepts negative times and empty policies and data") {
    auto doc = sampleJson();
    doc["issued_at"] = -5;
    doc["policies"] = json::object();
    doc["data"] = json::object();
    const auto parsed = bundle::fromJson(doc.dump());
    REQUIRE(parsed);
    CHECK(parsed->issued_at == -5);
    CHECK(parsed->policies.empty());
}

TEST_CASE("Bundle: fromJson rejects text that is not a JSON object with kParse") {
    for (const char* text : {"", "{", "not json", "[]", "42", "\"dev\""}) {
        CAPTURE(text);
        const auto parsed = bundle::fromJson(text);
        REQUIRE_FALSE(parsed);
        CHECK(parsed.error().code() == SharedErrc::kParse);
    }
}

TEST_CASE("Bundle: fromJson names each missing field") {
    for (const char* field :
         {"schema", "device", "version", "issued_at", "expires_at", "source", "policies", "data"}) {
        auto doc = sampleJson();
        doc.erase(field);
        expectParseError(doc, std::string("missing field \"") + field + "\"");
    }
}

TEST_CASE("Bundle: fromJson names each field of the wrong type") {
    const std::pair<const char*, json> cases[] = {
        {"schema", "1"},          {"device", 5},           {"version", -1},
        {"version", 1.5},         {"version", "7"},        {"issued_at", "now"},
        {"issued_at", 1.5},       {"expires_at", nullptr}, {"source", json::object()},
        {"policies", json::array()}, {"data", json::array()}, {"data", "x"},
    };
    for (const auto& [field, value] : cases) {
        auto doc = sampleJson();
        doc[field] = value;
        expectParseError(doc, std::string("\"") + field + "\"");
    }
}

TEST_CASE("Bundle: fromJson rejects a policy whose body is not a string, naming it") {
    auto doc = sampleJson();
    doc["policies"]["bad.rego"] = 3;
    expectParseError(doc, "bad.rego");
}

TEST_CASE("Bundle: fromJson rejects an unknown schema, an unknown field and an out-of-range time") {
    auto doc = sampleJson();
    doc["schema"] = 2;
    expectParseError(doc, "unsupported schema 2");
    doc = sampleJson();
    doc["extra"] = true;
    expectParseError(doc, "unknown field \"extra\"");
    doc = sampleJson();
    doc["expires_at"] = std::uint64_t{1} << 63;
    expectParseError(doc, "\"expires_at\" is out of range");
}

TEST_CASE("Bundle: fromJson rejects a malformed device id") {
    const std::string ids[] = {"", "dev/1", "dev 1", "..", "d\xc3\xa9v", std::string(65, 'a')};
    for (const std::string& id : ids) {
        auto doc = sampleJson();
        doc["device"] = id;
        expectParseError(doc, "\"device\" is not a valid device id");
    }
}

TEST_CASE("Bundle: isValidDeviceId accepts [A-Za-z0-9._-]{1,64}") {
    CHECK(bundle::isValidDeviceId("dev-1"));
    CHECK(bundle::isValidDeviceId("A.b_C-9"));
    CHECK(bundle::isValidDeviceId(std::string(64, 'x')));
    CHECK_FALSE(bundle::isValidDeviceId(std::string(65, 'x')));
    CHECK_FALSE(bundle::isValidDeviceId(""));
    CHECK_FALSE(bundle::isValidDeviceId("a+b"));
    CHECK_FALSE(bundle::isValidDeviceId("a/b"));
    CHECK_FALSE(bundle::isValidDeviceId(std::string("a\0b", 3)));
    // Path levels that would walk the tree.
    CHECK_FALSE(bundle::isValidDeviceId("."));
    CHECK_FALSE(bundle::isValidDeviceId(".."));
    CHECK(bundle::isValidDeviceId("..."));
}

TEST_CASE("Bundle: contentDigest is equal for equal policies and data whatever the metadata") {
    const Bundle a = sample();
    Bundle b = sample();
    b.version = 99;
    b.issued_at = 1;
    b.expires_at = 2;
    b.source = "other";
    b.device_id = "dev-2";
    CHECK(a.contentDigest() == b.contentDigest());
    CHECK(a.contentDigest().rfind("sha256:", 0) == 0);
    CHECK(a.contentDigest().size() == 7 + 64);
    // Key order in the data does not matter.
    Bundle c = sample();
    c.data = json::parse(R"({"zones":["a","b"],"limits":{"mem":"1Gi","cpu":2}})");
    CHECK(c.contentDigest() == a.contentDigest());
}

TEST_CASE("Bundle: contentDigest differs when a policy or the data changes") {
    const Bundle a = sample();
    Bundle policy = sample();
    policy.policies["finops.rego"] += " ";
    Bundle renamed = sample();
    renamed.policies.erase("finops.rego");
    renamed.policies["finops2.rego"] = "package finops\n";
    Bundle data = sample();
    data.data["limits"]["cpu"] = 3;
    Bundle order = sample();  // array order is meaningful
    order.data["zones"] = {"b", "a"};
    CHECK(policy.contentDigest() != a.contentDigest());
    CHECK(renamed.contentDigest() != a.contentDigest());
    CHECK(data.contentDigest() != a.contentDigest());
    CHECK(order.contentDigest() != a.contentDigest());
}

TEST_CASE("Bundle: artifacts round-trip, are optional, and are checked when present") {
    Bundle b = sample();
    const std::string digest(64, 'e');
    b.artifacts.push_back({bundle::ArtifactKind::kFirmware, "rootfs", "2.0.0", digest, 4096,
                           "/v1/artifacts/" + digest, json::object()});
    b.artifacts.push_back({bundle::ArtifactKind::kModel, "detector", "7", digest, 100, "/v1/artifacts/" + digest,
                           {{"source", "registry"}, {"metrics", {{"fairness", 0.9}}}}});
    const auto parsed = bundle::fromJson(bundle::toJson(b));
    REQUIRE(parsed);
    CHECK(parsed->artifacts == b.artifacts);
    REQUIRE(parsed->firmware() != nullptr);
    CHECK(parsed->firmware()->name == "rootfs");
    // Artifacts are part of what the device is told to do.
    CHECK(b.contentDigest() != sample().contentDigest());
    // A bundle without artifacts has no "artifacts" key (older devices accept it unchanged).
    CHECK_FALSE(json::parse(bundle::toJson(sample())).contains("artifacts"));

    const json good = json::parse(bundle::toJson(b));
    auto withArtifact = [&](const json& artifact) {
        json doc = good;
        doc["artifacts"] = json::array({artifact});
        return doc;
    };
    const json fw = good["artifacts"][0];
    expectParseError(withArtifact([&] { auto a = fw; a["kind"] = "kernel"; return a; }()), "neither");
    expectParseError(withArtifact([&] { auto a = fw; a["sha256"] = std::string(64, 'E'); return a; }()), "lowercase hex");
    expectParseError(withArtifact([&] { auto a = fw; a["url"] = "https://evil.example/x"; return a; }()),
                     "/v1/artifacts/<sha256>");
    expectParseError(withArtifact([&] { auto a = fw; a["url"] = "/v1/artifacts/../../etc/passwd"; return a; }()),
                     "/v1/artifacts/<sha256>");
    expectParseError(withArtifact([&] { auto a = fw; a["name"] = "../x"; return a; }()), "valid name");
    expectParseError(withArtifact([&] { auto a = fw; a["size"] = -1; return a; }()), "unsigned");
    expectParseError(withArtifact([&] { auto a = fw; a.erase("version"); return a; }()), "artifacts[0].version");
    expectParseError(withArtifact([&] { auto a = fw; a["extra"] = 1; return a; }()), "unknown field");
    expectParseError(withArtifact([&] { auto a = fw; a["provenance"] = "x"; return a; }()), "provenance");
    json two = good;
    two["artifacts"] = json::array({fw, fw});
    expectParseError(two, "more than one firmware");
    json models = good;
    models["artifacts"] = json::array({good["artifacts"][1], good["artifacts"][1]});
    expectParseError(models, "appears twice");
}
