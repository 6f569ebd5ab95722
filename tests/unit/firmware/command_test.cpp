#include "firmware/command.hpp"

#include <catch2/catch.hpp>

#include "firmware/errors.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware {

using test::what;

TEST_CASE("runCommand: captures stdout, stderr and the exit status", "[firmware]") {
    SystemClock clock;
    auto r = runCommand(clock, {"sh", "-c", "echo out; echo err >&2; exit 3"});
    INFO(what(r));
    REQUIRE(r);
    CHECK(r->exit_code == 3);
    CHECK(r->out == "out\n");
    CHECK(r->err == "err\n");
}

TEST_CASE("runCommand: arguments reach the program as they are, never through a shell",
          "[firmware]") {
    SystemClock clock;
    auto r = runCommand(clock, {"printf", "%s|", "A B", "$HOME;", "`id`"});
    REQUIRE(r);
    CHECK(r->out == "A B|$HOME;|`id`|");
}

TEST_CASE("runCommand: a command past its timeout is killed with its children", "[firmware]") {
    SystemClock clock;
    const auto t0 = clock.steady();
    auto r =
        runCommand(clock, {"sh", "-c", "sleep 30 & sleep 30"}, {std::chrono::milliseconds(200)});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == FirmwareErrc::kCommand);
    CHECK_THAT(r.error().what(), Catch::Contains("timed out after 200 ms"));
    CHECK(clock.steady() - t0 < std::chrono::seconds(5));
}

TEST_CASE("runCommand: output past the bound is an error", "[firmware]") {
    SystemClock clock;
    auto r = runCommand(clock, {"yes"}, {std::chrono::seconds(10), 10'000});
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().what(), Catch::Contains("more than 10000 bytes"));
}

TEST_CASE("runCommand: a program that does not exist is an error naming it", "[firmware]") {
    SystemClock clock;
    auto r = runCommand(clock, {"/nonexistent/fw_setenv", "X", "1"});
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().what(),
               Catch::Contains("/nonexistent/fw_setenv X 1") && Catch::Contains("cannot start"));
    REQUIRE_FALSE(runCommand(clock, {}));
}

TEST_CASE("runChecked: a non-zero exit names the command, the status and stderr", "[firmware]") {
    SystemClock clock;
    auto r = runChecked(clock, {"sh", "-c", "echo 'Cannot lock environment' >&2; exit 4"});
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().what(), Catch::Contains("exited with status 4: Cannot lock environment"));
    auto ok = runChecked(clock, {"echo", "hi"});
    REQUIRE(ok);
    CHECK(*ok == "hi\n");
}

}  // namespace edge::firmware
