#include "shared/policy/time_zone.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>

#include "shared/policy/errors.hpp"
#include "shared/policy/go_time.hpp"

namespace edge::policy::detail {
namespace {

constexpr std::int64_t kAlpha = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kOmega = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kSecondsPerDay = 86400;
constexpr std::size_t kMaxTzifBytes = 1 << 20;
constexpr std::size_t kMaxCachedZones = 1024;

std::unexpected<Error> tzError(std::string message) {
    return fail(PolicyErrc::kBuiltinError, std::move(message));
}

// ---- POSIX TZ rules ("EST5EDT,M3.2.0,M11.1.0"), as Go's tzset --------------------------------

struct Rule {
    enum class Kind { kJulian, kDayOfYear, kMonthWeekDay } kind = Kind::kMonthWeekDay;
    int day = 0;
    int week = 0;
    int mon = 0;
    int time = 7200;  // seconds after local midnight
};

bool parseName(std::string_view& s, std::string& name) {
    if (s.empty()) return false;
    if (s[0] == '<') {
        const auto close = s.find('>');
        if (close == std::string_view::npos) return false;
        name = std::string(s.substr(1, close - 1));
        s.remove_prefix(close + 1);
        return true;
    }
    std::size_t i = 0;
    while (i < s.size() && !(s[i] >= '0' && s[i] <= '9') && s[i] != ',' && s[i] != '-' &&
           s[i] != '+')
        ++i;
    if (i < 3) return false;
    name = std::string(s.substr(0, i));
    s.remove_prefix(i);
    return true;
}

bool parseNum(std::string_view& s, int min, int max, int& out) {
    std::size_t i = 0;
    out = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 4) out = out * 10 + (s[i++] - '0');
    if (i == 0 || out < min || out > max) return false;
    s.remove_prefix(i);
    return true;
}

// [+-]hh[:mm[:ss]], hours up to 167 (RFC 8536 allows it for rule times).
bool parseOffset(std::string_view& s, int& out) {
    int sign = 1;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        if (s[0] == '-') sign = -1;
        s.remove_prefix(1);
    }
    int h = 0;
    if (!parseNum(s, 0, 167, h)) return false;
    int total = h * 3600;
    for (int mult : {60, 1}) {
        if (s.empty() || s[0] != ':') break;
        s.remove_prefix(1);
        int v = 0;
        if (!parseNum(s, 0, 59, v)) return false;
        total += v * mult;
    }
    out = sign * total;
    return true;
}

bool parseRule(std::string_view& s, Rule& r) {
    if (s.empty()) return false;
    if (s[0] == 'J') {
        s.remove_prefix(1);
        r.kind = Rule::Kind::kJulian;
        if (!parseNum(s, 1, 365, r.day)) return false;
    } else if (s[0] == 'M') {
        s.remove_prefix(1);
        r.kind = Rule::Kind::kMonthWeekDay;
        if (!parseNum(s, 1, 12, r.mon) || s.empty() || s[0] != '.') return false;
        s.remove_prefix(1);
        if (!parseNum(s, 1, 5, r.week) || s.empty() || s[0] != '.') return false;
        s.remove_prefix(1);
        if (!parseNum(s, 0, 6, r.day)) return false;
    } else {
        r.kind = Rule::Kind::kDayOfYear;
        if (!parseNum(s, 0, 365, r.day)) return false;
    }
    r.time = 7200;
    if (!s.empty() && s[0] == '/') {
        s.remove_prefix(1);
        if (!parseOffset(s, r.time)) return false;
    }
    return true;
}

// Seconds from the start of `year` (UTC) to the rule's transition, for a zone at `offset`.
std::int64_t ruleTime(std::int64_t year, const Rule& r, int offset) {
    std::int64_t day = 0;  // zero-based day of the year
    switch (r.kind) {
        case Rule::Kind::kJulian:
            day = r.day - 1 + ((isLeapYear(year) && r.day >= 60) ? 1 : 0);
            break;
        case Rule::Kind::kDayOfYear:
            day = r.day;
            break;
        case Rule::Kind::kMonthWeekDay: {
            const std::int64_t first = daysFromCivil(year, r.mon, 1);
            const int dow = static_cast<int>(((first + 4) % 7 + 7) % 7);
            int d = (r.day - dow + 7) % 7;
            for (int i = 1; i < r.week && d + 7 < daysInMonth(r.mon, year); ++i) d += 7;
            day = first - daysFromCivil(year, 1, 1) + d;
            break;
        }
    }
    return day * kSecondsPerDay + r.time - offset;
}

bool tzset(std::string_view s, std::int64_t last_tx, std::int64_t sec, ZonePeriod& out) {
    std::string std_name;
    std::string dst_name;
    int std_offset = 0;
    if (!parseName(s, std_name) || !parseOffset(s, std_offset)) return false;
    std_offset = -std_offset;  // POSIX offsets are west of Greenwich
    if (s.empty() || s[0] == ',') {
        out = {std_name, std_offset, false, last_tx, kOmega};
        return true;
    }
    if (!parseName(s, dst_name)) return false;
    int dst_offset = std_offset + 3600;
    if (!s.empty() && s[0] != ',') {
        if (!parseOffset(s, dst_offset)) return false;
        dst_offset = -dst_offset;
    }
    if (s.empty()) s = ",M3.2.0,M11.1.0";
    Rule start_rule;
    Rule end_rule;
    if (s[0] != ',') return false;
    s.remove_prefix(1);
    if (!parseRule(s, start_rule) || s.empty() || s[0] != ',') return false;
    s.remove_prefix(1);
    if (!parseRule(s, end_rule) || !s.empty()) return false;

    const CivilTime c = civilTime(Instant{sec, 0}, *TimeZone::utc());
    const std::int64_t year_start = daysFromCivil(c.year, 1, 1) * kSecondsPerDay;
    const std::int64_t ysec = sec - year_start;
    std::int64_t start_sec = ruleTime(c.year, start_rule, std_offset);
    std::int64_t end_sec = ruleTime(c.year, end_rule, dst_offset);
    bool dst_is_dst = true;
    bool std_is_dst = false;
    if (end_sec < start_sec) {  // southern hemisphere: the "DST" period wraps the year end
        std::swap(start_sec, end_sec);
        std::swap(std_name, dst_name);
        std::swap(std_offset, dst_offset);
        std::swap(std_is_dst, dst_is_dst);
    }
    if (ysec < start_sec) {
        out = {std_name, std_offset, std_is_dst, year_start, start_sec + year_start};
    } else if (ysec >= end_sec) {
        out = {std_name, std_offset, std_is_dst, end_sec + year_start,
               year_start + 365 * kSecondsPerDay};
    } else {
        out = {dst_name, dst_offset, dst_is_dst, start_sec + year_start, end_sec + year_start};
    }
    return true;
}

// ---- TZif ------------------------------------------------------------------------------

class Reader {
public:
    explicit Reader(std::string_view data) : data_(data) {}
    bool take(std::size_t n, std::string_view& out) {
        if (data_.size() - pos_ < n) return false;
        out = data_.substr(pos_, n);
        pos_ += n;
        return true;
    }
    bool big(int bytes, std::int64_t& out) {
        std::string_view b;
        if (!take(static_cast<std::size_t>(bytes), b)) return false;
        std::uint64_t v = 0;
        for (char c : b) v = (v << 8) | static_cast<unsigned char>(c);
        out = bytes == 4 ? static_cast<std::int32_t>(static_cast<std::uint32_t>(v))
                         : static_cast<std::int64_t>(v);
        return true;
    }
    [[nodiscard]] std::string_view rest() const { return data_.substr(pos_); }

private:
    std::string_view data_;
    std::size_t pos_ = 0;
};

struct Header {
    char version = 0;
    std::int64_t isut = 0, isstd = 0, leap = 0, time = 0, type = 0, chars = 0;
};

bool readHeader(Reader& r, Header& h) {
    std::string_view magic;
    std::string_view version;
    std::string_view reserved;
    if (!r.take(4, magic) || magic != "TZif" || !r.take(1, version) || !r.take(15, reserved))
        return false;
    h.version = version[0];
    for (auto* field : {&h.isut, &h.isstd, &h.leap, &h.time, &h.type, &h.chars}) {
        if (!r.big(4, *field) || *field < 0 || *field > 100000) return false;
    }
    return true;
}

std::string readFile(const std::string& path, bool& found) {
    std::ifstream in(path, std::ios::binary);
    found = static_cast<bool>(in);
    if (!found) return {};
    std::string data(kMaxTzifBytes + 1, '\0');
    in.read(data.data(), static_cast<std::streamsize>(data.size()));
    data.resize(static_cast<std::size_t>(in.gcount()));
    return data;
}

}  // namespace

std::shared_ptr<const TimeZone> TimeZone::utc() {
    static const auto zone = [] {
        auto z = std::make_shared<TimeZone>();
        z->name_ = "UTC";
        z->types_.push_back({0, false, "UTC"});
        return std::shared_ptr<const TimeZone>(std::move(z));
    }();
    return zone;
}

std::shared_ptr<const TimeZone> TimeZone::local() {
    static const auto zone = [] {
        bool found = false;
        const std::string data = readFile("/etc/localtime", found);
        if (!found) return utc();
        auto z = fromTzif("Local", data);
        return z ? *z : utc();
    }();
    return zone;
}

Result<std::shared_ptr<const TimeZone>> TimeZone::fromTzif(std::string name,
                                                           std::string_view data) {
    auto bad = [] { return tzError("time: invalid location data"); };
    Reader r(data);
    Header h;
    if (!readHeader(r, h)) return bad();
    int time_size = 4;
    if (h.version >= '2') {
        std::string_view skip;
        const auto v1 = static_cast<std::size_t>(h.time * 5 + h.type * 6 + h.chars + h.leap * 8 +
                                                 h.isstd + h.isut);
        if (!r.take(v1, skip) || !readHeader(r, h)) return bad();
        time_size = 8;
    }
    if (h.type == 0) return bad();
    auto zone = std::make_shared<TimeZone>();
    zone->name_ = std::move(name);
    std::vector<std::int64_t> times(static_cast<std::size_t>(h.time));
    for (auto& t : times) {
        if (!r.big(time_size, t)) return bad();
    }
    std::string_view indexes;
    if (!r.take(static_cast<std::size_t>(h.time), indexes)) return bad();
    struct RawType {
        std::int64_t offset = 0, dst = 0, abbrev = 0;
    };
    std::vector<RawType> raw(static_cast<std::size_t>(h.type));
    for (auto& t : raw) {
        if (!r.big(4, t.offset) || !r.big(1, t.dst) || !r.big(1, t.abbrev)) return bad();
    }
    std::string_view chars;
    std::string_view skip;
    if (!r.take(static_cast<std::size_t>(h.chars), chars)) return bad();
    if (!r.take(static_cast<std::size_t>(h.leap * (time_size + 4) + h.isstd + h.isut), skip))
        return bad();
    for (const auto& t : raw) {
        if (t.abbrev >= static_cast<std::int64_t>(chars.size())) return bad();
        auto abbrev = chars.substr(static_cast<std::size_t>(t.abbrev));
        abbrev = abbrev.substr(0, abbrev.find('\0'));
        zone->types_.push_back({static_cast<int>(t.offset), t.dst != 0, std::string(abbrev)});
    }
    for (std::size_t k = 0; k < times.size(); ++k) {
        const auto type = static_cast<unsigned char>(indexes[k]);
        if (type >= zone->types_.size()) return bad();
        zone->transitions_.push_back({times[k], type});
    }
    if (zone->transitions_.empty()) zone->transitions_.push_back({kAlpha, 0});  // as Go does
    if (h.version >= '2') {
        auto footer = r.rest();
        if (footer.size() >= 2 && footer[0] == '\n') {
            footer.remove_prefix(1);
            zone->extend_ = std::string(footer.substr(0, footer.find('\n')));
        }
    }
    return std::shared_ptr<const TimeZone>(std::move(zone));
}

Result<std::shared_ptr<const TimeZone>> TimeZone::load(std::string_view name) {
    if (name.empty() || name == "UTC") return utc();
    if (name.find("..") != std::string_view::npos || name[0] == '/' || name[0] == '\\' ||
        name.find('\0') != std::string_view::npos || name.size() > 255) {
        return tzError("time: invalid location name");
    }
    static std::mutex mutex;
    static std::map<std::string, std::shared_ptr<const TimeZone>, std::less<>> cache;
    {
        std::lock_guard lock(mutex);
        if (auto it = cache.find(name); it != cache.end()) return it->second;
    }
    for (const char* dir : {"/usr/share/zoneinfo/", "/usr/share/lib/zoneinfo/",
                            "/usr/lib/locale/TZ/", "/etc/zoneinfo/"}) {
        bool found = false;
        const std::string data = readFile(dir + std::string(name), found);
        if (!found) continue;
        auto zone = fromTzif(std::string(name), data);
        if (!zone) return fail(zone.error());
        std::lock_guard lock(mutex);
        if (cache.size() < kMaxCachedZones) cache.emplace(std::string(name), *zone);
        return *zone;
    }
    return tzError("unknown time zone " + std::string(name));
}

ZonePeriod TimeZone::lookup(std::int64_t sec) const {
    if (transitions_.empty())
        return {types_[0].abbrev, types_[0].offset, types_[0].dst, kAlpha, kOmega};
    if (sec < transitions_.front().at) {
        // Go's lookupFirstZone: type 0 unless transitions use it; then the first standard type.
        std::size_t first = 0;
        const bool used = std::any_of(transitions_.begin(), transitions_.end(),
                                      [](const Transition& t) { return t.type == 0; });
        if (used) {
            for (std::size_t k = 0; k < types_.size(); ++k) {
                if (!types_[k].dst) {
                    first = k;
                    break;
                }
            }
        }
        const auto& z = types_[first];
        return {z.abbrev, z.offset, z.dst, kAlpha, transitions_.front().at};
    }
    std::size_t lo = 0;
    std::size_t hi = transitions_.size();
    std::int64_t end = kOmega;
    while (hi - lo > 1) {
        const std::size_t m = lo + (hi - lo) / 2;
        if (sec < transitions_[m].at) {
            end = transitions_[m].at;
            hi = m;
        } else {
            lo = m;
        }
    }
    const auto& z = types_[transitions_[lo].type];
    ZonePeriod period{z.abbrev, z.offset, z.dst, transitions_[lo].at, end};
    if (lo == transitions_.size() - 1 && !extend_.empty()) {
        ZonePeriod extended;
        if (tzset(extend_, period.start, sec, extended)) return extended;
    }
    return period;
}

std::int64_t TimeZone::fromLocal(std::int64_t local) const {
    const ZonePeriod guess = lookup(local);
    if (guess.offset == 0) return local;
    const std::int64_t utc = local - guess.offset;
    if (utc < guess.start || utc >= guess.end) return local - lookup(utc).offset;
    return utc;
}

}  // namespace edge::policy::detail
