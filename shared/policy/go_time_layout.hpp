#pragma once
// Internal to go_time_layout.cpp and go_time_parse.cpp: the elements of a Go time layout, as
// Go's nextStdChunk splits one ("Jan", "2006", "15", "Z07:00", ".000", …).
#include <array>
#include <cstddef>
#include <string_view>

namespace edge::policy::detail::layout {

inline constexpr std::array<std::string_view, 12> kLongMonths = {
    "January", "February", "March",     "April",   "May",      "June",
    "July",    "August",   "September", "October", "November", "December"};
inline constexpr std::array<std::string_view, 12> kShortMonths = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
inline constexpr std::array<std::string_view, 7> kLongDays = {
    "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
inline constexpr std::array<std::string_view, 7> kShortDays = {"Sun", "Mon", "Tue", "Wed",
                                                               "Thu", "Fri", "Sat"};

enum class Std {
    kNone,
    kLongMonth,
    kMonth,
    kNumMonth,
    kZeroMonth,
    kLongWeekDay,
    kWeekDay,
    kDay,
    kUnderDay,
    kZeroDay,
    kUnderYearDay,
    kZeroYearDay,
    kHour,
    kHour12,
    kZeroHour12,
    kMinute,
    kZeroMinute,
    kSecond,
    kZeroSecond,
    kLongYear,
    kYear,
    kPM,
    kpm,
    kTZ,
    kISO8601TZ,
    kISO8601SecondsTZ,
    kISO8601ShortTZ,
    kISO8601ColonTZ,
    kISO8601ColonSecondsTZ,
    kNumTZ,
    kNumSecondsTz,
    kNumShortTZ,
    kNumColonTZ,
    kNumColonSecondsTZ,
    kFracSecond0,
    kFracSecond9,
};

struct Chunk {
    std::string_view prefix;
    Std std = Std::kNone;
    std::string_view suffix;
    int frac_digits = 0;
    char frac_sep = '.';
};

/// Whether s[i] is an ASCII digit (false past the end).
[[nodiscard]] inline bool isDigitAt(std::string_view s, std::size_t i) {
    return i < s.size() && s[i] >= '0' && s[i] <= '9';
}
[[nodiscard]] inline bool isTzOffsetStd(Std s) {
    return s >= Std::kISO8601TZ && s <= Std::kNumColonSecondsTZ;
}
[[nodiscard]] inline bool isIsoStd(Std s) {
    return s >= Std::kISO8601TZ && s <= Std::kISO8601ColonSecondsTZ;
}

/// The text before the first layout element, the element, and the rest (Std::kNone at the end).
[[nodiscard]] Chunk nextChunk(std::string_view layout);

}  // namespace edge::policy::detail::layout
