#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>

#include "tests/unit/policy/builtin_call.hpp"

using namespace edge::policy;
using namespace edge::policy::test;

namespace {

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::int64_t kMinNs = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMaxNs = std::numeric_limits<std::int64_t>::max();

Value ints(std::initializer_list<std::int64_t> items) {
    Array out;
    for (auto i : items) out.push_back(num(i));
    return Value::array(std::move(out));
}

Value at(std::int64_t ns, const char* tz) { return Value::array({num(ns), str(tz)}); }

std::int64_t parseNs(const char* layout, const char* value) {
    const Value v = eval("time.parse_ns", {str(layout), str(value)});
    std::int64_t ns = 0;
    REQUIRE(v.isNumber());
    REQUIRE(v.asNumber().toInt(ns));
    return ns;
}

}  // namespace

TEST_CASE("time.now_ns: the evaluation's clock from the context") {
    const Builtin* b = findBuiltin("time.now_ns");
    REQUIRE(b != nullptr);
    BuiltinContext ctx;
    ctx.now_ns = 1'700'000'000'123'456'789;
    auto r = b->fn({}, ctx);
    REQUIRE(r.has_value());
    CHECK(**r == num(std::int64_t{1'700'000'000'123'456'789}));
}

TEST_CASE("time.parse_rfc3339_ns: offsets, fractions and the int64 limits") {
    CHECK(eval("time.parse_rfc3339_ns", {str("2017-06-02T19:00:00-07:00")}) ==
          num(std::int64_t{1496455200000000000}));
    CHECK(eval("time.parse_rfc3339_ns", {str("1970-01-01T00:00:00-00:00")}) == num(0));
    CHECK(eval("time.parse_rfc3339_ns", {str("1970-01-01T00:00:01.5Z")}) ==
          num(std::int64_t{1'500'000'000}));
    CHECK(eval("time.parse_rfc3339_ns", {str("1677-09-21T00:12:43.145224192-00:00")}) ==
          num(kMinNs));
    CHECK(eval("time.parse_rfc3339_ns", {str("2262-04-11T23:47:16.854775807-00:00")}) ==
          num(kMaxNs));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.parse_rfc3339_ns",
                       {str("1677-09-21T00:12:43.145224191-00:00")}),
               Catch::Contains("time outside of valid range"));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.parse_rfc3339_ns",
                       {str("2262-04-11T23:47:16.854775808-00:00")}),
               Catch::Contains("time outside of valid range"));
}

TEST_CASE("time.parse_rfc3339_ns: malformed input reports Go's parse error") {
    CHECK(failure(PolicyErrc::kBuiltinError, "time.parse_rfc3339_ns",
                  {str("2017-13-02T19:00:00Z")}) ==
          "time.parse_rfc3339_ns: parsing time \"2017-13-02T19:00:00Z\": month out of range");
    CHECK(failure(PolicyErrc::kBuiltinError, "time.parse_rfc3339_ns",
                  {str("2017-06-02 19:00:00Z")}) ==
          "time.parse_rfc3339_ns: parsing time \"2017-06-02 19:00:00Z\" as "
          "\"2006-01-02T15:04:05Z07:00\": "
          "cannot parse \" 19:00:00Z\" as \"T\"");
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "time.parse_rfc3339_ns", {str("2017-02-30T00:00:00Z")}),
        Catch::Contains("day out of range"));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.parse_rfc3339_ns",
                       {str("2017-02-03T00:00:00Zjunk")}),
               Catch::Contains("extra text: \"junk\""));
}

TEST_CASE("time.parse_ns: Go layouts, named layouts, 12-hour clocks and two-digit years") {
    CHECK(parseNs("2006-01-02T15:04:05Z07:00", "2017-06-02T19:00:00-07:00") == 1496455200000000000);
    CHECK(parseNs("01/02 03:04:05PM '06 -0700", "06/02 07:00:00PM '17 -0700") ==
          1496455200000000000);
    CHECK(parseNs("02 Jan 06 15:04 -0700", "02 Jun 17 19:00 -0700") == 1496455200000000000);
    CHECK(parseNs("RFC822Z", "02 Jun 17 19:00 -0700") == 1496455200000000000);
    CHECK(parseNs("2006-01-02", "2020-02-29") == 1582934400 * kSecond);
    CHECK(parseNs("Monday, January 2, 2006 3:04pm MST", "friday, june 2, 2017 7:00pm UTC") ==
          1496430000 * kSecond);
    CHECK(parseNs("2006-01-02 15:04:05.000", "2017-06-02 19:00:00.250") ==
          1496430000 * kSecond + 250'000'000);
    CHECK(parseNs("2006-01-02 15:04:05.999", "2017-06-02 19:00:00") == 1496430000 * kSecond);
    CHECK(parseNs("2006 002", "2020 060") == 1582934400 * kSecond);  // day of year: 29 February
    CHECK(parseNs("Jan _2 2006 MST", "Feb  3 2021 GMT+2") == 1612303200 * kSecond);
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "time.parse_ns", {str("2006-01-02"), str("2020-1-02")}),
        Catch::Contains("cannot parse \"1-02\" as \"01\""));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.parse_ns", {str("15:04"), str("25:00")}),
               Catch::Contains("hour out of range"));
}

TEST_CASE("time.format and time.parse_ns round-trip through the same layout") {
    const std::int64_t ns = 1670006453141828752;
    for (const char* layout : {"RFC3339Nano", "2006-01-02T15:04:05.000000000Z07:00",
                               "Jan 2 2006 15:04:05.999999999 -0700"}) {
        const Value text = eval("time.format", {Value::array({num(ns), str("UTC"), str(layout)})});
        REQUIRE(text.isString());
        CHECK(parseNs(layout, text.asString().c_str()) == ns);
    }
    const Value kolkata =
        eval("time.format", {Value::array({num(ns), str("Asia/Kolkata"), str("RFC3339Nano")})});
    CHECK(parseNs("RFC3339Nano", kolkata.asString().c_str()) == ns);
}

TEST_CASE("time.format: RFC3339Nano by default, zones and Go layouts") {
    const std::int64_t ns = 1670006453141828752;
    CHECK(eval("time.format", {num(ns)}) == str("2022-12-02T18:40:53.141828752Z"));
    CHECK(eval("time.format", {at(ns, "Asia/Kolkata")}) ==
          str("2022-12-03T00:10:53.141828752+05:30"));
    CHECK(eval("time.format", {Value::array({num(ns), str("Asia/Kolkata"),
                                             str("Mon Jan 02 15:04:05 -0700 2006")})}) ==
          str("Sat Dec 03 00:10:53 +0530 2022"));
    CHECK(eval("time.format", {Value::array({num(ns), str("Asia/Kolkata"), str("RFC1123Z")})}) ==
          str("Sat, 03 Dec 2022 00:10:53 +0530"));
    CHECK(eval("time.format", {Value::array({num(ns), str("America/New_York"), str("RFC1123")})}) ==
          str("Fri, 02 Dec 2022 13:40:53 EST"));
    CHECK(eval("time.format", {Value::array({num(ns), str(""), str("3:04PM __2 .000 ,99 Z07")})}) ==
          str("6:40PM 336 .141 ,14 Z"));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.format", {num(1582977600 * 10e12)}),
               Catch::Contains("timestamp too big"));
}

TEST_CASE("time.date, time.clock and time.weekday read the wall clock of a zone") {
    const std::int64_t ns = 1517832000 * kSecond;  // 2018-02-05T12:00:00Z
    CHECK(eval("time.date", {at(ns, "")}) == ints({2018, 2, 5}));
    CHECK(eval("time.date", {num(1582977600 * kSecond)}) == ints({2020, 2, 29}));
    CHECK(eval("time.clock", {at(ns, "America/New_York")}) == ints({7, 0, 0}));
    CHECK(eval("time.clock", {at(1530000000 * kSecond, "America/New_York")}) ==
          ints({4, 0, 0}));  // EDT
    // Past the last listed transition the zone's POSIX rule applies (2200-01-15 and 2200-07-15,
    // 12:00 UTC), in both hemispheres.
    CHECK(eval("time.clock", {at(std::int64_t{7259371200} * kSecond, "America/New_York")}) ==
          ints({7, 0, 0}));
    CHECK(eval("time.clock", {at(std::int64_t{7275009600} * kSecond, "America/New_York")}) ==
          ints({8, 0, 0}));
    CHECK(eval("time.clock", {at(std::int64_t{7259371200} * kSecond, "Australia/Sydney")}) ==
          ints({23, 0, 0}));
    CHECK(eval("time.clock", {at(std::int64_t{7275009600} * kSecond, "Australia/Sydney")}) ==
          ints({22, 0, 0}));
    CHECK(eval("time.weekday", {num(std::int64_t{1517918400000000000})}) == str("Tuesday"));
    CHECK(eval("time.weekday", {num(std::int64_t{1518350400000000000})}) == str("Sunday"));
    CHECK(eval("time.date", {num(kMinNs)}) == ints({1677, 9, 21}));
    CHECK(eval("time.date", {num(-1)}) == ints({1969, 12, 31}));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.weekday", {num(1582977600.0 * 1e12)}),
               Catch::Contains("timestamp too big"));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.clock", {at(0, "Mars/Olympus_Mons")}),
               Catch::Contains("unknown time zone Mars/Olympus_Mons"));
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.clock", {at(0, "../etc/passwd")}),
               Catch::Contains("invalid location name"));
    CHECK(failure(PolicyErrc::kTypeError, "time.date", {str("x")}) ==
          "time.date: operand 1 must be either number (ns) or [number (ns), string (tz)] but got "
          "string");
}

TEST_CASE("time.add_date: calendar arithmetic with Go's normalisation and range checks") {
    CHECK(eval("time.add_date", {num(std::int64_t{1585852421593912000}), num(3), num(9),
                                 num(12)}) == num(std::int64_t{1705257221593912000}));
    CHECK(eval("time.add_date", {num(std::int64_t{1585852421593912000}), num(-1), num(-1),
                                 num(-1)}) == num(std::int64_t{1551465221593912000}));
    // 31 January + 1 month is 3 March (Go normalises 31 February).
    CHECK(eval("time.add_date", {num(parseNs("2006-01-02", "2021-01-31")), num(0), num(1),
                                 num(0)}) == num(parseNs("2006-01-02", "2021-03-03")));
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "time.add_date", {num(0), num(2262), num(1), num(1)}),
        Catch::Contains("time outside of valid range"));
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "time.add_date", {num(kMinNs), num(0), num(0), num(-1)}),
        Catch::Contains("time outside of valid range"));
    CHECK_THAT(
        failure(PolicyErrc::kBuiltinError, "time.add_date", {num(0), num(kMaxNs), num(0), num(0)}),
        Catch::Contains("time outside of valid range"));
}

TEST_CASE("time.diff: years, months, days, hours, minutes, seconds between two instants") {
    const std::int64_t now = 1700000000 * kSecond;
    CHECK(eval("time.diff", {num(now + 61 * kSecond), num(now)}) == ints({0, 0, 0, 0, 1, 1}));
    CHECK(eval("time.diff", {at(now + 60 * kSecond, "UTC"), at(now, "Asia/Shanghai")}) ==
          ints({0, 0, 0, 0, 1, 0}));
    CHECK(eval("time.diff", {num(parseNs("2006-01-02", "2020-02-02")),
                             num(parseNs("2006-01-02", "2020-03-01"))}) ==
          ints({0, 0, 28, 0, 0, 0}));
    CHECK(eval("time.diff", {num(parseNs("2006-01-02", "2021-02-02")),
                             num(parseNs("2006-01-02", "2021-03-01"))}) ==
          ints({0, 0, 27, 0, 0, 0}));
    CHECK(eval("time.diff", {num(parseNs("2006-01-02", "2004-02-29")),
                             num(parseNs("2006-01-02", "2005-03-01"))}) ==
          ints({1, 0, 1, 0, 0, 0}));
}

TEST_CASE("time.parse_duration_ns: Go duration syntax") {
    CHECK(eval("time.parse_duration_ns", {str("1h2m3.5s")}) == num(std::int64_t{3723500000000}));
    CHECK(eval("time.parse_duration_ns", {str("300ms")}) == num(std::int64_t{300'000'000}));
    CHECK(eval("time.parse_duration_ns", {str("-1.5h")}) == num(std::int64_t{-5'400'000'000'000}));
    CHECK(eval("time.parse_duration_ns", {str("1us2µs3ns")}) == num(std::int64_t{3003}));
    CHECK(eval("time.parse_duration_ns", {str("0")}) == num(0));
    CHECK(eval("time.parse_duration_ns", {str("-2562047h47m16.854775808s")}) == num(kMinNs));
    CHECK(failure(PolicyErrc::kBuiltinError, "time.parse_duration_ns", {str("1d")}) ==
          "time.parse_duration_ns: time: unknown unit \"d\" in duration \"1d\"");
    CHECK(failure(PolicyErrc::kBuiltinError, "time.parse_duration_ns", {str("10")}) ==
          "time.parse_duration_ns: time: missing unit in duration \"10\"");
    CHECK(failure(PolicyErrc::kBuiltinError, "time.parse_duration_ns", {str("")}) ==
          "time.parse_duration_ns: time: invalid duration \"\"");
    CHECK_THAT(failure(PolicyErrc::kBuiltinError, "time.parse_duration_ns", {str("3000000h")}),
               Catch::Contains("invalid duration"));
}
