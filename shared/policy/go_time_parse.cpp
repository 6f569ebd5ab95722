// Go's time.Parse for go_time.hpp: the value is consumed element by element of the layout;
// error texts are Go's ParseError texts.
#include <cstdint>
#include <string>
#include <string_view>

#include "shared/policy/errors.hpp"
#include "shared/policy/go_time.hpp"
#include "shared/policy/go_time_layout.hpp"

namespace edge::policy::detail {
namespace {

using namespace layout;

bool getNum(std::string_view& s, bool fixed, int& out) {
    if (!isDigitAt(s, 0)) return false;
    if (!isDigitAt(s, 1)) {
        if (fixed) return false;
        out = s[0] - '0';
        s.remove_prefix(1);
        return true;
    }
    out = (s[0] - '0') * 10 + (s[1] - '0');
    s.remove_prefix(2);
    return true;
}

bool getNum3(std::string_view& s, bool fixed, int& out) {
    int n = 0;
    std::size_t i = 0;
    for (; i < 3 && isDigitAt(s, i); ++i) n = n * 10 + (s[i] - '0');
    if (i == 0 || (fixed && i != 3)) return false;
    out = n;
    s.remove_prefix(i);
    return true;
}

bool atoi(std::string_view s, int& out) {
    bool neg = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s.empty() || s.size() > 9) return false;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + (c - '0');
    }
    out = neg ? -v : v;
    return true;
}

std::string_view cutSpace(std::string_view s) {
    while (!s.empty() && s[0] == ' ') s.remove_prefix(1);
    return s;
}

bool skip(std::string_view& value, std::string_view prefix) {
    while (!prefix.empty()) {
        if (prefix[0] == ' ') {
            if (!value.empty() && value[0] != ' ') return false;
            prefix = cutSpace(prefix);
            value = cutSpace(value);
            continue;
        }
        if (value.empty() || value[0] != prefix[0]) return false;
        prefix.remove_prefix(1);
        value.remove_prefix(1);
    }
    return true;
}

template <std::size_t N>
bool lookup(const std::array<std::string_view, N>& tab, std::string_view& value, int& index) {
    for (std::size_t i = 0; i < N; ++i) {
        const auto v = tab[i];
        if (value.size() < v.size()) continue;
        bool same = true;
        for (std::size_t k = 0; k < v.size() && same; ++k) {
            char a = value[k];
            char b = v[k];
            if (a >= 'A' && a <= 'Z') a = static_cast<char>(a | 0x20);
            if (b >= 'A' && b <= 'Z') b = static_cast<char>(b | 0x20);
            same = a == b;
        }
        if (same) {
            index = static_cast<int>(i);
            value.remove_prefix(v.size());
            return true;
        }
    }
    return false;
}

// Go's parseNanoseconds: value starts with the separator, nbytes counts it.
bool parseNanoseconds(std::string_view value, std::size_t nbytes, int& ns) {
    if (value.empty() || (value[0] != '.' && value[0] != ',')) return false;
    if (nbytes > 10) nbytes = 10;
    int v = 0;
    for (std::size_t i = 1; i < nbytes; ++i) {
        if (!isDigitAt(value, i)) return false;
        v = v * 10 + (value[i] - '0');
    }
    for (std::size_t i = nbytes; i < 10; ++i) v *= 10;
    ns = v;
    return true;
}

std::size_t signedOffsetLength(std::string_view value) {
    if (value.empty() || (value[0] != '-' && value[0] != '+')) return 0;
    std::size_t i = 1;
    std::int64_t x = 0;
    while (i < value.size() && value[i] >= '0' && value[i] <= '9' && x <= 23)
        x = x * 10 + (value[i++] - '0');
    if (i == 1 || x > 23) return 0;
    return i;
}

// Go's parseTimeZone: the length of a zone abbreviation at the start of value, or 0.
std::size_t timeZoneLength(std::string_view value) {
    if (value.size() < 3) return 0;
    if (value.starts_with("ChST") || value.starts_with("MeST")) return 4;
    if (value.starts_with("GMT")) return 3 + signedOffsetLength(value.substr(3));
    if (value[0] == '+' || value[0] == '-') return signedOffsetLength(value);
    std::size_t upper = 0;
    while (upper < 6 && upper < value.size() && value[upper] >= 'A' && value[upper] <= 'Z') ++upper;
    switch (upper) {
        case 3:
            return 3;
        case 4:
            return (value[3] == 'T' || value.starts_with("WITA")) ? 4 : 0;
        case 5:
            return value[4] == 'T' ? 5 : 0;
        default:
            return 0;
    }
}

std::unexpected<Error> timeError(std::string message) {
    return fail(PolicyErrc::kBuiltinError, std::move(message));
}

}  // namespace

Result<Instant> parseTime(std::string_view layout, std::string_view value) {
    const std::string_view orig_layout = layout;
    const std::string_view orig_value = value;
    auto parse_error = [&](std::string_view layout_elem, std::string_view value_elem,
                           std::string_view message) {
        if (message.empty()) {
            return timeError("parsing time " + goTimeQuote(orig_value) + " as " +
                             goTimeQuote(orig_layout) + ": cannot parse " +
                             goTimeQuote(value_elem) + " as " + goTimeQuote(layout_elem));
        }
        return timeError("parsing time " + goTimeQuote(orig_value) + std::string(message));
    };
    bool am_set = false;
    bool pm_set = false;
    int year = 0, month = -1, day = -1, yday = -1, hour = 0, min = 0, sec = 0, nsec = 0;
    bool utc = false;
    std::int64_t zone_offset = -1;
    std::string_view zone_name;
    for (;;) {
        const Chunk ch = nextChunk(layout);
        const std::string_view std_str =
            layout.substr(ch.prefix.size(), layout.size() - ch.prefix.size() - ch.suffix.size());
        if (!skip(value, ch.prefix)) return parse_error(ch.prefix, value, "");
        if (ch.std == Std::kNone) {
            if (!value.empty())
                return parse_error("", value, ": extra text: " + goTimeQuote(value));
            break;
        }
        layout = ch.suffix;
        const std::string_view hold = value;
        bool ok = true;
        std::string_view range_err;
        int index = 0;
        switch (ch.std) {
            case Std::kYear:
                if (value.size() < 2 || !atoi(value.substr(0, 2), year)) {
                    ok = false;
                    break;
                }
                value.remove_prefix(2);
                year += year >= 69 ? 1900 : 2000;
                break;
            case Std::kLongYear:
                if (value.size() < 4 || !isDigitAt(value, 0) || !atoi(value.substr(0, 4), year)) {
                    ok = false;
                    break;
                }
                value.remove_prefix(4);
                break;
            case Std::kMonth:
                ok = lookup(kShortMonths, value, index);
                month = index + 1;
                break;
            case Std::kLongMonth:
                ok = lookup(kLongMonths, value, index);
                month = index + 1;
                break;
            case Std::kNumMonth:
            case Std::kZeroMonth:
                ok = getNum(value, ch.std == Std::kZeroMonth, month);
                if (ok && (month <= 0 || month > 12)) range_err = "month";
                break;
            case Std::kWeekDay:
                ok = lookup(kShortDays, value, index);
                break;
            case Std::kLongWeekDay:
                ok = lookup(kLongDays, value, index);
                break;
            case Std::kDay:
            case Std::kUnderDay:
            case Std::kZeroDay:
                if (ch.std == Std::kUnderDay && !value.empty() && value[0] == ' ')
                    value.remove_prefix(1);
                ok = getNum(value, ch.std == Std::kZeroDay, day);
                break;
            case Std::kUnderYearDay:
            case Std::kZeroYearDay:
                for (int k = 0; k < 2; ++k) {
                    if (ch.std == Std::kUnderYearDay && !value.empty() && value[0] == ' ')
                        value.remove_prefix(1);
                }
                ok = getNum3(value, ch.std == Std::kZeroYearDay, yday);
                break;
            case Std::kHour:
                ok = getNum(value, false, hour);
                if (hour < 0 || hour >= 24) range_err = "hour";
                break;
            case Std::kHour12:
            case Std::kZeroHour12:
                ok = getNum(value, ch.std == Std::kZeroHour12, hour);
                if (hour < 0 || hour > 12) range_err = "hour";
                break;
            case Std::kMinute:
            case Std::kZeroMinute:
                ok = getNum(value, ch.std == Std::kZeroMinute, min);
                if (min < 0 || min >= 60) range_err = "minute";
                break;
            case Std::kSecond:
            case Std::kZeroSecond: {
                ok = getNum(value, ch.std == Std::kZeroSecond, sec);
                if (!ok) break;
                if (sec < 0 || sec >= 60) {
                    range_err = "second";
                    break;
                }
                // A fractional second in the value that the layout does not mention.
                if (value.size() >= 2 && (value[0] == '.' || value[0] == ',') &&
                    isDigitAt(value, 1)) {
                    const Std next = nextChunk(layout).std;
                    if (next == Std::kFracSecond0 || next == Std::kFracSecond9) break;
                    std::size_t n = 2;
                    while (n < value.size() && isDigitAt(value, n)) ++n;
                    ok = parseNanoseconds(value, n, nsec);
                    value.remove_prefix(n);
                }
                break;
            }
            case Std::kPM:
            case Std::kpm: {
                if (value.size() < 2) {
                    ok = false;
                    break;
                }
                const std::string_view p = value.substr(0, 2);
                value.remove_prefix(2);
                const bool upper = ch.std == Std::kPM;
                if (p == (upper ? "PM" : "pm")) {
                    pm_set = true;
                } else if (p == (upper ? "AM" : "am")) {
                    am_set = true;
                } else {
                    ok = false;
                }
                break;
            }
            case Std::kTZ: {
                if (value.starts_with("UTC")) {
                    utc = true;
                    value.remove_prefix(3);
                    break;
                }
                const std::size_t n = timeZoneLength(value);
                if (n == 0) {
                    ok = false;
                    break;
                }
                zone_name = value.substr(0, n);
                value.remove_prefix(n);
                break;
            }
            case Std::kFracSecond0: {
                const auto ndigit = static_cast<std::size_t>(1 + ch.frac_digits);
                if (value.size() < ndigit) {
                    ok = false;
                    break;
                }
                ok = parseNanoseconds(value, ndigit, nsec);
                value.remove_prefix(ndigit);
                break;
            }
            case Std::kFracSecond9: {
                if (value.size() < 2 || (value[0] != '.' && value[0] != ',') ||
                    !isDigitAt(value, 1))
                    break;
                std::size_t i = 0;
                while (i + 1 < value.size() && isDigitAt(value, i + 1)) ++i;
                ok = parseNanoseconds(value, 1 + i, nsec);
                value.remove_prefix(1 + i);
                break;
            }
            default: {  // numeric zone offsets
                if (isIsoStd(ch.std) && !value.empty() && value[0] == 'Z') {
                    value.remove_prefix(1);
                    utc = true;
                    break;
                }
                std::string_view sign, hh, mm, ss = "00";
                const bool colon = ch.std == Std::kISO8601ColonTZ || ch.std == Std::kNumColonTZ;
                const bool colon_seconds =
                    ch.std == Std::kISO8601ColonSecondsTZ || ch.std == Std::kNumColonSecondsTZ;
                const bool seconds =
                    ch.std == Std::kISO8601SecondsTZ || ch.std == Std::kNumSecondsTz;
                const bool short_tz = ch.std == Std::kNumShortTZ || ch.std == Std::kISO8601ShortTZ;
                std::size_t used = 0;
                if (colon) {
                    if (value.size() < 6 || value[3] != ':') {
                        ok = false;
                        break;
                    }
                    sign = value.substr(0, 1), hh = value.substr(1, 2), mm = value.substr(4, 2),
                    used = 6;
                } else if (short_tz) {
                    if (value.size() < 3) {
                        ok = false;
                        break;
                    }
                    sign = value.substr(0, 1), hh = value.substr(1, 2), mm = "00", used = 3;
                } else if (colon_seconds) {
                    if (value.size() < 9 || value[3] != ':' || value[6] != ':') {
                        ok = false;
                        break;
                    }
                    sign = value.substr(0, 1), hh = value.substr(1, 2), mm = value.substr(4, 2),
                    ss = value.substr(7, 2), used = 9;
                } else if (seconds) {
                    if (value.size() < 7) {
                        ok = false;
                        break;
                    }
                    sign = value.substr(0, 1), hh = value.substr(1, 2), mm = value.substr(3, 2),
                    ss = value.substr(5, 2), used = 7;
                } else {
                    if (value.size() < 5) {
                        ok = false;
                        break;
                    }
                    sign = value.substr(0, 1), hh = value.substr(1, 2), mm = value.substr(3, 2),
                    used = 5;
                }
                value.remove_prefix(used);
                int hr = 0, mi = 0, se = 0;
                ok = getNum(hh, true, hr) && getNum(mm, true, mi) && getNum(ss, true, se);
                if (hr > 24) range_err = "time zone offset hour";
                if (mi > 60) range_err = "time zone offset minute";
                if (se > 60) range_err = "time zone offset second";
                zone_offset = (hr * 60 + mi) * 60 + se;
                if (sign[0] == '-') {
                    zone_offset = -zone_offset;
                } else if (sign[0] != '+') {
                    ok = false;
                }
                break;
            }
        }
        if (!range_err.empty())
            return parse_error(std_str, value, ": " + std::string(range_err) + " out of range");
        if (!ok) return parse_error(std_str, hold, "");
    }
    if (pm_set && hour < 12) {
        hour += 12;
    } else if (am_set && hour == 12) {
        hour = 0;
    }
    if (yday >= 0) {
        int d = 0;
        int m = 0;
        if (isLeapYear(year)) {
            if (yday == 31 + 29) {
                m = 2;
                d = 29;
            } else if (yday > 31 + 29) {
                --yday;
            }
        }
        if (yday < 1 || yday > 365) return parse_error("", value, ": day-of-year out of range");
        if (m == 0) {
            m = 1;
            int before = 0;
            while (before + daysInMonth(m, 2001) < yday) before += daysInMonth(m++, 2001);
            d = yday - before;
        }
        if (month >= 0 && month != m)
            return parse_error("", value, ": day-of-year does not match month");
        month = m;
        if (day >= 0 && day != d) return parse_error("", value, ": day-of-year does not match day");
        day = d;
    } else {
        if (month < 0) month = 1;
        if (day < 0) day = 1;
    }
    if (day < 1 || day > daysInMonth(month, year))
        return parse_error("", value, ": day out of range");
    Instant t = makeDate(year, month, day, hour, min, sec, nsec, *TimeZone::utc());
    if (!utc && zone_offset != -1) {
        t.sec -= zone_offset;
    } else if (!utc && zone_name.size() > 3 && zone_name.starts_with("GMT")) {
        int hours = 0;
        if (atoi(zone_name.substr(3), hours)) t.sec -= static_cast<std::int64_t>(hours) * 3600;
    }
    return t;
}

}  // namespace edge::policy::detail
