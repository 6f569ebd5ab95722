#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "shared/core/fs.hpp"
#include "shared/core/text.hpp"

using namespace edge;

TEST_CASE("untrustedText: printable ASCII stays, other bytes are escaped, long input is cut") {
    CHECK(untrustedText("bytes 0-9/10") == "bytes 0-9/10");
    CHECK(untrustedText(std::string("a\nb\r\x1b[2J\xff\xc3\x28\\z", 13)) ==
          "a\\x0ab\\x0d\\x1b[2J\\xff\\xc3(\\x5cz");
    CHECK(untrustedText(std::string("\0x", 2)) == "\\x00x");
    CHECK(untrustedText(std::string(600, 'a'), 512) == std::string(512, 'a') + "...");
    // A multi-byte character cut in the middle leaves no broken UTF-8 behind.
    const std::string euro = "\xe2\x82\xac";
    const auto cut = untrustedText("ab" + euro, 3);
    CHECK(cut == "ab\\xe2...");
    CHECK_NOTHROW(nlohmann::json(cut).dump());
}

TEST_CASE("jsonText: invalid UTF-8 in a string becomes U+FFFD instead of an exception") {
    const nlohmann::json j = {{"reason", std::string("server said \xff\xfe")}, {"n", 1}};
    CHECK_THROWS(j.dump());
    const auto text = jsonText(j);
    CHECK(text == "{\"n\":1,\"reason\":\"server said \xef\xbf\xbd\xef\xbf\xbd\"}");
    CHECK(nlohmann::json::parse(text)["n"] == 1);
}

TEST_CASE("fs::UniqueFd: closes on reset and when it goes, gives up on release") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    {
        fs::UniqueFd a(fds[0]);
        fs::UniqueFd b(std::move(a));
        CHECK(a.get() == -1);
        CHECK(b.get() == fds[0]);
        fs::UniqueFd c(fds[1]);
        const int raw = c.release();
        CHECK(c.get() == -1);
        CHECK(::fcntl(raw, F_GETFD) != -1);  // still open
        c.reset(raw);
        CHECK(c.close() == 0);
        CHECK(::fcntl(raw, F_GETFD) == -1);
    }
    CHECK(::fcntl(fds[0], F_GETFD) == -1);  // closed by b
}
