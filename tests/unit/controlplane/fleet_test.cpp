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
    CHECK(b1.policies.size() == 3);
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
