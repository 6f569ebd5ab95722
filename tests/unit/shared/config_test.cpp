#include <catch2/catch.hpp>

#include "shared/core/config.hpp"

using namespace edge;
using config::ConfigFile;

TEST_CASE("ConfigFile: reads typed values, dotted nested keys and relative paths") {
    auto file = ConfigFile::parse(
        "device_id: dev-1\nport: 42\nenabled: true\nttl: 7d\nstate_dir: state\n"
        "http:\n  listen: 127.0.0.1:80\nkeys: [a, b]\n",
        "edged.yaml", "/etc/edge");
    REQUIRE(file);
    CHECK(*file->string("device_id") == "dev-1");
    CHECK(*file->integer("port", 0, 0, 100) == 42);
    CHECK(*file->boolean("enabled", false));
    CHECK(*file->duration("ttl", {}) == std::chrono::hours(168));
    CHECK(*file->path("state_dir") == "/etc/edge/state");
    CHECK(*file->string("http.listen") == "127.0.0.1:80");
    CHECK(*file->strings("keys") == std::vector<std::string>{"a", "b"});
    CHECK(*file->string("missing", "fallback") == "fallback");
    CHECK(file->finish());
}

TEST_CASE("ConfigFile: every bad input names the file, line and key") {
    SECTION("unknown key (a typo) is an error") {
        auto file = ConfigFile::parse("device_id: a\nstate_dri: x\n", "edged.yaml", "/");
        REQUIRE(file);
        (void)file->string("device_id");
        auto st = file->finish();
        REQUIRE_FALSE(st);
        CHECK(st.error().what() == "edged.yaml:2: key 'state_dri': unknown key");
        CHECK(st.error().code() == SharedErrc::kConfig);
    }
    SECTION("missing required key") {
        auto file = ConfigFile::parse("a: 1\n", "c.yaml", "/");
        auto v = file->string("device_id");
        REQUIRE_FALSE(v);
        CHECK(v.error().what() == "c.yaml: key 'device_id': missing, and it is required");
    }
    SECTION("wrong types") {
        auto file = ConfigFile::parse("n: ten\nb: yes\nd: 5 minutes\nr: 500\n", "c.yaml", "/");
        REQUIRE(file);
        CHECK_THAT(file->integer("n", 0, 0, 10).error().what(),
                   Catch::Equals("c.yaml:1: key 'n': expected an integer, got 'ten'"));
        CHECK_THAT(file->boolean("b", false).error().what(), Catch::Contains("key 'b'"));
        CHECK_THAT(file->duration("d", {}).error().what(), Catch::Contains("c.yaml:3: key 'd'"));
        CHECK_THAT(file->integer("r", 0, 0, 100).error().what(), Catch::Contains("outside 0..100"));
    }
    SECTION("not YAML at all") {
        auto file = ConfigFile::parse("a: [1, 2\n", "c.yaml", "/");
        REQUIRE_FALSE(file);
        CHECK_THAT(file.error().what(), Catch::StartsWith("c.yaml:"));
    }
    SECTION("top level must be a mapping") {
        auto file = ConfigFile::parse("- a\n- b\n", "c.yaml", "/");
        REQUIRE_FALSE(file);
    }
}

TEST_CASE("ConfigFile: durations accept ms, s, m, h, d and nothing else") {
    CHECK(*ConfigFile::parseDuration("250ms") == std::chrono::milliseconds(250));
    CHECK(*ConfigFile::parseDuration("2h") == std::chrono::hours(2));
    CHECK_FALSE(ConfigFile::parseDuration("2"));
    CHECK_FALSE(ConfigFile::parseDuration("-1s"));
    CHECK_FALSE(ConfigFile::parseDuration("s"));
    CHECK_FALSE(ConfigFile::parseDuration("3w"));
}
