#include "shared/policy/go_time.hpp"

#include <array>
#include <cstdlib>
#include <limits>

#include "shared/policy/errors.hpp"

namespace edge::policy::detail {
namespace {

constexpr std::int64_t kSecondsPerDay = 86400;
std::int64_t floorDiv(std::int64_t a, std::int64_t b) {
    const std::int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

// Go's norm: moves whole multiples of base from lo into hi so that 0 <= lo < base.
void norm(std::int64_t& hi, std::int64_t& lo, std::int64_t base) {
    const std::int64_t carry = floorDiv(lo, base);
    hi += carry;
    lo -= carry * base;
}

std::unexpected<Error> timeError(std::string message) {
    return fail(PolicyErrc::kBuiltinError, std::move(message));
}

}  // namespace

bool isLeapYear(std::int64_t y) { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

int daysInMonth(int month, std::int64_t year) {
    constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && isLeapYear(year) ? 29 : kDays[static_cast<std::size_t>(month - 1)];
}

std::int64_t daysFromCivil(std::int64_t y, int m, int d) {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = floorDiv(y, 400);
    const std::int64_t yoe = y - era * 400;
    const std::int64_t mp = (m + 9) % 12;
    const std::int64_t doy = (153 * mp + 2) / 5 + d - 1;
    const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

CivilTime civilTime(Instant t, const TimeZone& zone) {
    const ZonePeriod z = zone.lookup(t.sec);
    CivilTime c;
    c.offset = z.offset;
    c.zone_abbrev = z.abbrev;
    c.nsec = t.nsec;
    const std::int64_t local = t.sec + z.offset;
    const std::int64_t days = floorDiv(local, kSecondsPerDay);
    const std::int64_t secs = local - days * kSecondsPerDay;
    c.hour = static_cast<int>(secs / 3600);
    c.minute = static_cast<int>(secs / 60 % 60);
    c.second = static_cast<int>(secs % 60);
    c.weekday = static_cast<int>(((days + 4) % 7 + 7) % 7);
    // Howard Hinnant's civil_from_days.
    const std::int64_t zd = days + 719468;
    const std::int64_t era = floorDiv(zd, 146097);
    const std::int64_t doe = zd - era * 146097;
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::int64_t mp = (5 * doy + 2) / 153;
    c.day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
    c.month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
    c.year = yoe + era * 400 + (c.month <= 2 ? 1 : 0);
    c.yday = static_cast<int>(days - daysFromCivil(c.year, 1, 1) + 1);
    return c;
}

Instant makeDate(std::int64_t year, std::int64_t month, std::int64_t day, std::int64_t hour,
                 std::int64_t minute, std::int64_t second, std::int64_t nsec,
                 const TimeZone& zone) {
    std::int64_t m = month - 1;
    norm(year, m, 12);
    norm(second, nsec, 1'000'000'000);
    norm(minute, second, 60);
    norm(hour, minute, 60);
    norm(day, hour, 24);
    const std::int64_t days = daysFromCivil(year, static_cast<int>(m) + 1, 1) + day - 1;
    const std::int64_t local = days * kSecondsPerDay + hour * 3600 + minute * 60 + second;
    return Instant{zone.fromLocal(local), static_cast<std::int32_t>(nsec)};
}

Result<std::int64_t> parseDuration(std::string_view s) {
    const std::string invalid = "time: invalid duration " + goTimeQuote(s);
    const std::string_view orig = s;
    constexpr std::uint64_t kLimit = std::uint64_t{1} << 63;
    bool neg = false;
    if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        s.remove_prefix(1);
    }
    if (s == "0") return 0;
    if (s.empty()) return timeError(invalid);
    std::uint64_t total = 0;
    while (!s.empty()) {
        if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) return timeError(invalid);
        std::uint64_t v = 0;
        std::size_t i = 0;
        for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
            if (v > kLimit / 10) return timeError(invalid);
            v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
            if (v > kLimit) return timeError(invalid);
        }
        const bool pre = i > 0;
        s.remove_prefix(i);
        std::uint64_t f = 0;
        double scale = 1;
        bool post = false;
        if (!s.empty() && s[0] == '.') {
            s.remove_prefix(1);
            bool overflow = false;
            std::size_t k = 0;
            for (; k < s.size() && s[k] >= '0' && s[k] <= '9'; ++k) {
                if (overflow) continue;
                if (f > (kLimit - 1) / 10) {
                    overflow = true;
                    continue;
                }
                const std::uint64_t y = f * 10 + static_cast<std::uint64_t>(s[k] - '0');
                if (y > kLimit) {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10;
            }
            post = k > 0;
            s.remove_prefix(k);
        }
        if (!pre && !post) return timeError(invalid);
        std::size_t u = 0;
        while (u < s.size() && s[u] != '.' && !(s[u] >= '0' && s[u] <= '9')) ++u;
        if (u == 0) return timeError("time: missing unit in duration " + goTimeQuote(orig));
        const std::string_view unit_name = s.substr(0, u);
        s.remove_prefix(u);
        std::uint64_t unit = 0;
        if (unit_name == "ns")
            unit = 1;
        else if (unit_name == "us" || unit_name == "\xC2\xB5s" || unit_name == "\xCE\xBCs")
            unit = 1'000;
        else if (unit_name == "ms")
            unit = 1'000'000;
        else if (unit_name == "s")
            unit = 1'000'000'000;
        else if (unit_name == "m")
            unit = 60'000'000'000;
        else if (unit_name == "h")
            unit = 3'600'000'000'000;
        else
            return timeError("time: unknown unit " + goTimeQuote(unit_name) + " in duration " +
                             goTimeQuote(orig));
        if (v > kLimit / unit) return timeError(invalid);
        v *= unit;
        if (f > 0) {
            v += static_cast<std::uint64_t>(static_cast<double>(f) *
                                            (static_cast<double>(unit) / scale));
            if (v > kLimit) return timeError(invalid);
        }
        total += v;
        if (total > kLimit) return timeError(invalid);
    }
    if (neg)
        return total == kLimit ? std::numeric_limits<std::int64_t>::min()
                               : -static_cast<std::int64_t>(total);
    if (total > kLimit - 1) return timeError(invalid);
    return static_cast<std::int64_t>(total);
}

std::string goTimeQuote(std::string_view s) {
    constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x80 || c < ' ') {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xF];
        } else {
            if (c == '"' || c == '\\') out += '\\';
            out += ch;
        }
    }
    out += '"';
    return out;
}

}  // namespace edge::policy::detail
