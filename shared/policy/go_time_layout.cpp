// Go's Time.Format for go_time.hpp, and the layout splitter shared with go_time_parse.cpp.
#include "shared/policy/go_time_layout.hpp"

#include <cstdlib>
#include <string>
#include <string_view>

#include "shared/policy/go_time.hpp"

namespace edge::policy::detail {

namespace layout {

Chunk nextChunk(std::string_view layout) {
    auto at = [&](std::size_t i, std::string_view word) {
        return layout.substr(i).starts_with(word);
    };
    auto chunk = [&](std::size_t i, Std std, std::size_t len) {
        return Chunk{layout.substr(0, i), std, layout.substr(i + len)};
    };
    for (std::size_t i = 0; i < layout.size(); ++i) {
        switch (layout[i]) {
            case 'J':
                if (at(i, "January")) return chunk(i, Std::kLongMonth, 7);
                if (at(i, "Jan") &&
                    !(i + 3 < layout.size() && layout[i + 3] >= 'a' && layout[i + 3] <= 'z')) {
                    return chunk(i, Std::kMonth, 3);
                }
                break;
            case 'M':
                if (at(i, "Monday")) return chunk(i, Std::kLongWeekDay, 6);
                if (at(i, "Mon") &&
                    !(i + 3 < layout.size() && layout[i + 3] >= 'a' && layout[i + 3] <= 'z')) {
                    return chunk(i, Std::kWeekDay, 3);
                }
                if (at(i, "MST")) return chunk(i, Std::kTZ, 3);
                break;
            case '0':
                if (i + 1 < layout.size() && layout[i + 1] >= '1' && layout[i + 1] <= '6') {
                    constexpr std::array<Std, 6> k0x = {Std::kZeroMonth,  Std::kZeroDay,
                                                        Std::kZeroHour12, Std::kZeroMinute,
                                                        Std::kZeroSecond, Std::kYear};
                    return chunk(i, k0x[static_cast<std::size_t>(layout[i + 1] - '1')], 2);
                }
                if (at(i, "002")) return chunk(i, Std::kZeroYearDay, 3);
                break;
            case '1':
                if (at(i, "15")) return chunk(i, Std::kHour, 2);
                return chunk(i, Std::kNumMonth, 1);
            case '2':
                if (at(i, "2006")) return chunk(i, Std::kLongYear, 4);
                return chunk(i, Std::kDay, 1);
            case '_':
                if (at(i, "_2")) {
                    if (at(i + 1, "2006"))
                        return Chunk{layout.substr(0, i + 1), Std::kLongYear, layout.substr(i + 5)};
                    return chunk(i, Std::kUnderDay, 2);
                }
                if (at(i, "__2")) return chunk(i, Std::kUnderYearDay, 3);
                break;
            case '3':
                return chunk(i, Std::kHour12, 1);
            case '4':
                return chunk(i, Std::kMinute, 1);
            case '5':
                return chunk(i, Std::kSecond, 1);
            case 'P':
                if (at(i, "PM")) return chunk(i, Std::kPM, 2);
                break;
            case 'p':
                if (at(i, "pm")) return chunk(i, Std::kpm, 2);
                break;
            case '-':
                if (at(i, "-070000")) return chunk(i, Std::kNumSecondsTz, 7);
                if (at(i, "-07:00:00")) return chunk(i, Std::kNumColonSecondsTZ, 9);
                if (at(i, "-0700")) return chunk(i, Std::kNumTZ, 5);
                if (at(i, "-07:00")) return chunk(i, Std::kNumColonTZ, 6);
                if (at(i, "-07")) return chunk(i, Std::kNumShortTZ, 3);
                break;
            case 'Z':
                if (at(i, "Z070000")) return chunk(i, Std::kISO8601SecondsTZ, 7);
                if (at(i, "Z07:00:00")) return chunk(i, Std::kISO8601ColonSecondsTZ, 9);
                if (at(i, "Z0700")) return chunk(i, Std::kISO8601TZ, 5);
                if (at(i, "Z07:00")) return chunk(i, Std::kISO8601ColonTZ, 6);
                if (at(i, "Z07")) return chunk(i, Std::kISO8601ShortTZ, 3);
                break;
            case '.':
            case ',':
                if (i + 1 < layout.size() && (layout[i + 1] == '0' || layout[i + 1] == '9')) {
                    const char ch = layout[i + 1];
                    std::size_t j = i + 1;
                    while (j < layout.size() && layout[j] == ch) ++j;
                    if (!isDigitAt(layout, j)) {
                        Chunk c{layout.substr(0, i),
                                ch == '0' ? Std::kFracSecond0 : Std::kFracSecond9,
                                layout.substr(j)};
                        c.frac_digits = static_cast<int>(j - (i + 1));
                        c.frac_sep = layout[i];
                        return c;
                    }
                }
                break;
            default:
                break;
        }
    }
    return Chunk{layout, Std::kNone, {}};
}

}  // namespace layout

namespace {

using namespace layout;

void appendInt(std::string& out, std::int64_t v, int width) {
    std::uint64_t u = static_cast<std::uint64_t>(v);
    if (v < 0) {
        out += '-';
        u = ~u + 1;
    }
    std::string digits = std::to_string(u);
    if (static_cast<int>(digits.size()) < width)
        out.append(static_cast<std::size_t>(width) - digits.size(), '0');
    out += digits;
}

}  // namespace

std::string formatTime(Instant t, const TimeZone& zone, std::string_view layout) {
    const CivilTime c = civilTime(t, zone);
    std::string out;
    while (!layout.empty()) {
        const Chunk ch = nextChunk(layout);
        out += ch.prefix;
        if (ch.std == Std::kNone) break;
        layout = ch.suffix;
        switch (ch.std) {
            case Std::kYear:
                appendInt(out, ((c.year % 100) + 100) % 100, 2);
                break;
            case Std::kLongYear:
                appendInt(out, c.year, 4);
                break;
            case Std::kMonth:
                out += kShortMonths[static_cast<std::size_t>(c.month - 1)];
                break;
            case Std::kLongMonth:
                out += kLongMonths[static_cast<std::size_t>(c.month - 1)];
                break;
            case Std::kNumMonth:
                appendInt(out, c.month, 0);
                break;
            case Std::kZeroMonth:
                appendInt(out, c.month, 2);
                break;
            case Std::kWeekDay:
                out += kShortDays[static_cast<std::size_t>(c.weekday)];
                break;
            case Std::kLongWeekDay:
                out += kLongDays[static_cast<std::size_t>(c.weekday)];
                break;
            case Std::kDay:
                appendInt(out, c.day, 0);
                break;
            case Std::kUnderDay:
                if (c.day < 10) out += ' ';
                appendInt(out, c.day, 0);
                break;
            case Std::kZeroDay:
                appendInt(out, c.day, 2);
                break;
            case Std::kUnderYearDay:
                if (c.yday < 100) out += c.yday < 10 ? "  " : " ";
                appendInt(out, c.yday, 0);
                break;
            case Std::kZeroYearDay:
                appendInt(out, c.yday, 3);
                break;
            case Std::kHour:
                appendInt(out, c.hour, 2);
                break;
            case Std::kHour12:
                appendInt(out, c.hour % 12 == 0 ? 12 : c.hour % 12, 0);
                break;
            case Std::kZeroHour12:
                appendInt(out, c.hour % 12 == 0 ? 12 : c.hour % 12, 2);
                break;
            case Std::kMinute:
                appendInt(out, c.minute, 0);
                break;
            case Std::kZeroMinute:
                appendInt(out, c.minute, 2);
                break;
            case Std::kSecond:
                appendInt(out, c.second, 0);
                break;
            case Std::kZeroSecond:
                appendInt(out, c.second, 2);
                break;
            case Std::kPM:
                out += c.hour >= 12 ? "PM" : "AM";
                break;
            case Std::kpm:
                out += c.hour >= 12 ? "pm" : "am";
                break;
            case Std::kTZ:
                if (!c.zone_abbrev.empty()) {
                    out += c.zone_abbrev;
                } else {
                    const int zone_min = std::abs(c.offset) / 60;
                    out += c.offset < 0 ? '-' : '+';
                    appendInt(out, zone_min / 60, 2);
                    appendInt(out, zone_min % 60, 2);
                }
                break;
            case Std::kFracSecond0:
            case Std::kFracSecond9: {
                const bool trim = ch.std == Std::kFracSecond9;
                if (trim && (ch.frac_digits == 0 || c.nsec == 0)) break;
                std::string frac;
                appendInt(frac, c.nsec, 9);
                if (ch.frac_digits < 9) frac.resize(static_cast<std::size_t>(ch.frac_digits));
                if (trim) {
                    while (!frac.empty() && frac.back() == '0') frac.pop_back();
                    if (frac.empty()) break;
                }
                out += ch.frac_sep;
                out += frac;
                break;
            }
            default:
                if (isTzOffsetStd(ch.std)) {
                    if (c.offset == 0 && isIsoStd(ch.std)) {
                        out += 'Z';
                        break;
                    }
                    const int abs_offset = std::abs(c.offset);
                    const int zone_min = abs_offset / 60;
                    out += c.offset < 0 ? '-' : '+';
                    appendInt(out, zone_min / 60, 2);
                    const bool colon =
                        ch.std == Std::kISO8601ColonTZ || ch.std == Std::kNumColonTZ ||
                        ch.std == Std::kISO8601ColonSecondsTZ || ch.std == Std::kNumColonSecondsTZ;
                    if (colon) out += ':';
                    if (ch.std != Std::kNumShortTZ && ch.std != Std::kISO8601ShortTZ)
                        appendInt(out, zone_min % 60, 2);
                    if (ch.std == Std::kISO8601SecondsTZ || ch.std == Std::kNumSecondsTz ||
                        ch.std == Std::kISO8601ColonSecondsTZ ||
                        ch.std == Std::kNumColonSecondsTZ) {
                        if (colon) out += ':';
                        appendInt(out, abs_offset % 60, 2);
                    }
                }
                break;
        }
    }
    return out;
}

}  // namespace edge::policy::detail
