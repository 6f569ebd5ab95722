#pragma once
// Internal: Go's time package as OPA's time.* builtins expose it — proleptic Gregorian civil
// dates, time.Date normalisation, layout-based Format/Parse ("2006-01-02T15:04:05Z07:00") and
// ParseDuration. Error texts are Go's, because OPA passes them through.
#include <cstdint>
#include <string>
#include <string_view>

#include "shared/core/error.hpp"
#include "shared/policy/time_zone.hpp"

namespace edge::policy::detail {

/// An instant: seconds since the Unix epoch and nanoseconds within that second.
struct Instant {
    std::int64_t sec = 0;
    std::int32_t nsec = 0;  // 0 … 999'999'999
};

struct CivilTime {
    std::int64_t year = 1970;
    int month = 1;  // 1 … 12
    int day = 1;    // 1 … 31
    int hour = 0;
    int minute = 0;
    int second = 0;
    int nsec = 0;
    int weekday = 4;  // 0 = Sunday
    int yday = 1;     // 1 … 366
    int offset = 0;   // seconds east of UTC
    std::string zone_abbrev;
};

[[nodiscard]] bool isLeapYear(std::int64_t year);
[[nodiscard]] int daysInMonth(int month, std::int64_t year);
/// Days since 1970-01-01 of a proleptic Gregorian date (month 1 … 12, day 1 … 31).
[[nodiscard]] std::int64_t daysFromCivil(std::int64_t year, int month, int day);

/// The wall clock of `t` in `zone`.
[[nodiscard]] CivilTime civilTime(Instant t, const TimeZone& zone);
/// Go's time.Date: out-of-range fields carry into the next larger one. The year (after
/// carrying months) must stay within ±4e9 and the day within ±1e12 so nothing overflows.
[[nodiscard]] Instant makeDate(std::int64_t year, std::int64_t month, std::int64_t day,
                               std::int64_t hour, std::int64_t minute, std::int64_t second,
                               std::int64_t nsec, const TimeZone& zone);

/// Go's Time.Format.
[[nodiscard]] std::string formatTime(Instant t, const TimeZone& zone, std::string_view layout);
/// Go's time.Parse (times without a zone are UTC; zone abbreviations other than UTC/GMT±h
/// get offset 0).
[[nodiscard]] Result<Instant> parseTime(std::string_view layout, std::string_view value);
/// Go's time.ParseDuration, in nanoseconds.
[[nodiscard]] Result<std::int64_t> parseDuration(std::string_view s);
/// Go's time package quoting of values in error texts.
[[nodiscard]] std::string goTimeQuote(std::string_view s);

}  // namespace edge::policy::detail
