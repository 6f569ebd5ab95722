#include <catch2/catch.hpp>

#include <fstream>

#include "controlplane/fleet.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;


TEST_CASE("compileFleet: the example fleet compiles into one bundle per device") {
    auto fleet = controlplane::compileFleet(std::filesystem::path(EDGE_TEST_SOURCE_DIR) /
                                            "deploy/examples/fleet");
    REQUIRE(fleet);
    REQUIRE(fleet->bundles.size() == 3);
    const auto& b1 = fleet->bundles.at("edge-1");
    CHECK(b1.device_id == "edge-1");
    CHECK(b1.policies.size() == 4);
    CHECK(b1.artifacts.empty());
    // The group's enforcement block travels in the bundle, its fail-safe set read from the fleet.
    CHECK(b1.enforcement.offline.max_age == 72 * 3600);
    CHECK(b1.enforcement.offline.after == "lockdown");
    CHECK(b1.enforcement.policy_sets.at("lockdown").contains("policies/lockdown.rego"));
    CHECK(fleet->bundles.at("edge-3").enforcement == bundle::Enforcement{});
    CHECK(b1.data["finops_data"]["unit_costs"]["nvidia_gpu"]["hourly_rate"] == 2.5);
    CHECK(b1.data["locality"]["allowed_regions"]["personal"]["eu"] == true);
    CHECK(fleet->bundles.at("edge-3").policies.size() == 1);
    CHECK(b1.contentDigest() == fleet->bundles.at("edge-2").contentDigest());
    CHECK(b1.contentDigest() != fleet->bundles.at("edge-3").contentDigest());
    CHECK(fleet->revision.starts_with("sha256:"));
}

TEST_CASE("compileFleet: each kind of bad fleet is refused with a message naming it") {
    test::TempDir dir;
    test::writeFile(dir / "policies/p.rego", "package p\n");
    test::writeFile(dir / "policies/broken.rego", "package broken\ndeny contains x if {\n");
    struct Case {
        std::string yaml;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {"groups: {g: {}}\ndevices: {d1: {group: nope}}\n", "unknown group 'nope'"},
        {"groups: {g: {policies: [missing.rego]}}\ndevices: {}\n", "missing.rego"},
        {"groups: {g: {policies: [../x.rego]}}\ndevices: {}\n", "escapes"},
        {"groups: {g: {policies: [/etc/x.rego]}}\ndevices: {}\n", "must be relative"},
        {"groups: {g: {colour: red}}\ndevices: {}\n", "unknown key 'colour'"},
        {"groups: {g: {}}\ndevices: {'bad/id': {group: g}}\n", "device ids"},
        {"groups: {g: {}}\ndevices: {d1: {}}\n", "'group' is required"},
        {"groups: [\n", "fleet.yaml:"},
        {"extra: 1\n", "unknown key 'extra'"},
        {"groups: {g: {policies: [policies/broken.rego]}}\ndevices: {}\n", "do not compile"},
        {"groups: {g: {enforcement: {offline: {max_age: 2s, after: nowhere}}}}\ndevices: {}\n",
         "neither 'keep' nor one of the group's policy_sets"},
        {"groups: {g: {enforcement: {offline: {max_age: soon}}}}\ndevices: {}\n", "max_age"},
        {"groups: {g: {enforcement: {usage_windows: [fortnight]}}}\ndevices: {}\n", "unknown window 'fortnight'"},
        {"groups: {g: {enforcement: {entrypoints: [finops.deny]}}}\ndevices: {}\n", "must start with 'data.'"},
        {"groups: {g: {enforcement: {policy_sets: {safe: [policies/broken.rego]}}}}\ndevices: {}\n",
         "policy set 'safe' do not compile"},
    };
    for (const auto& c : cases) {
        test::writeFile(dir / "fleet.yaml", c.yaml);
        auto fleet = controlplane::compileFleet(dir.path());
        INFO(c.yaml);
        REQUIRE_FALSE(fleet);
        CHECK_THAT(fleet.error().what(), Catch::Contains(c.expected));
    }
}

TEST_CASE("yamlToJson: plain scalars are typed, quoted ones stay strings") {
    auto j = controlplane::yamlToJson("a: 1\nb: '1'\nc: true\nd: 2.5\ne: ~\nf: [x, 2]\n", "t");
    REQUIRE(j);
    CHECK((*j)["a"] == 1);
    CHECK((*j)["b"] == "1");
    CHECK((*j)["c"] == true);
    CHECK((*j)["d"] == 2.5);
    CHECK((*j)["e"].is_null());
    CHECK((*j)["f"] == nlohmann::json::array({"x", 2}));
}

TEST_CASE("compileFleet: a group's artifacts reach its bundles, checked against the artifact store") {
    test::TempDir dir;
    const std::string fw(64, 'a');
    const std::string model(64, 'b');
    test::writeFile(dir / "fleet.yaml",
                    "groups:\n  g:\n    artifacts:\n"
                    "      - {kind: firmware, name: rootfs, version: '2.0', sha256: " + fw + "}\n"
                    "      - kind: model\n        name: detector\n        version: '7'\n        sha256: " + model +
                    "\n        size: 10\n        provenance: {source: s, metrics: {fairness: 0.9}}\n"
                    "devices: {d1: {group: g}}\n");
    const std::string zst(64, 'c');
    const std::string content(64, 'd');
    const controlplane::ArtifactLookup store = [&](std::string_view digest) -> Result<controlplane::StoredArtifact> {
        if (digest == fw) return controlplane::StoredArtifact{4096};
        if (digest == model) return controlplane::StoredArtifact{10};
        if (digest == zst) return controlplane::StoredArtifact{100, true, content, 5000};
        return fail(SharedErrc::kNotFound, "not stored");
    };
    auto fleet = controlplane::compileFleet(dir.path(), store);
    REQUIRE(fleet);
    const auto& artifacts = fleet->bundles.at("d1").artifacts;
    REQUIRE(artifacts.size() == 2);
    CHECK(artifacts[0].kind == bundle::ArtifactKind::kFirmware);
    CHECK(artifacts[0].size == 4096);  // taken from the store
    CHECK(artifacts[0].url == "/v1/artifacts/" + fw);
    CHECK(artifacts[1].provenance["metrics"]["fairness"] == 0.9);
    REQUIRE(fleet->bundles.at("d1").firmware() != nullptr);
    // A zstd file in the store: sent compressed, bound by what it decompresses to.
    test::writeFile(dir / "fleet.yaml", "groups: {g: {artifacts: [{kind: model, name: m, version: '1', sha256: " + zst +
                                            "}]}}\ndevices: {d1: {group: g}}\n");
    auto zstd_fleet = controlplane::compileFleet(dir.path(), store);
    REQUIRE(zstd_fleet);
    const auto& z = zstd_fleet->bundles.at("d1").artifacts.at(0);
    CHECK(z.compression == "zstd");
    CHECK(z.sha256 == content);
    CHECK(z.size == 5000);
    CHECK(z.transfer_sha256 == zst);
    CHECK(z.transfer_size == 100);
    CHECK(z.url == "/v1/artifacts/" + zst);
    CHECK(bundle::fromJson(bundle::toJson(zstd_fleet->bundles.at("d1")))->artifacts == zstd_fleet->bundles.at("d1").artifacts);
    CHECK(fleet->bundles.at("d1").firmware()->version == "2.0");

    struct Case {
        std::string artifacts;
        std::string expected;
    };
    const std::vector<Case> cases = {
        {"[{kind: firmware, name: r, version: '1', sha256: " + std::string(64, 'e') + "}]", "not in the artifact store"},
        {"[{kind: firmware, name: r, version: '1', sha256: " + fw + ", size: 5}]", "does not match the stored"},
        {"[{kind: kernel, name: r, version: '1', sha256: " + fw + "}]", "neither 'firmware' nor 'model'"},
        {"[{kind: firmware, name: r, version: '1', sha256: ABC}]", "64 lowercase hex"},
        {"[{kind: firmware, name: ../r, version: '1', sha256: " + fw + "}]", "names are"},
        {"[{kind: firmware, name: r, sha256: " + fw + "}]", "'version' is required"},
        {"[{kind: firmware, name: r, version: '1', sha256: " + fw + "}, {kind: firmware, name: s, version: '2', sha256: " +
             fw + "}]", "more than one firmware"},
        {"[{kind: model, name: m, version: '1', sha256: " + model + "}, {kind: model, name: m, version: '2', sha256: " +
             model + "}]", "appears twice"},
        {"[{kind: firmware, name: r, version: '1', sha256: " + fw + ", provenance: {a: 1}}]", "for models"},
        {"[{kind: firmware, name: r, version: '1', sha256: " + fw + ", colour: red}]", "unknown key 'colour'"},
    };
    for (const auto& c : cases) {
        test::writeFile(dir / "fleet.yaml", "groups: {g: {artifacts: " + c.artifacts + "}}\ndevices: {}\n");
        auto refused = controlplane::compileFleet(dir.path(), store);
        INFO(c.artifacts);
        REQUIRE_FALSE(refused);
        CHECK_THAT(refused.error().what(), Catch::Contains(c.expected));
    }
    // Without a store, sizes must be given.
    test::writeFile(dir / "fleet.yaml", "groups: {g: {artifacts: [{kind: firmware, name: r, version: '1', sha256: " +
                                            fw + "}]}}\ndevices: {}\n");
    auto no_store = controlplane::compileFleet(dir.path());
    REQUIRE_FALSE(no_store);
    CHECK_THAT(no_store.error().what(), Catch::Contains("'size' is required"));
}
