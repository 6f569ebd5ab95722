// time.* builtins with OPA's semantics: instants are int64 nanoseconds since the Unix epoch
// (1677-09-21T00:12:43.145224192Z … 2262-04-11T23:47:16.854775807Z); a time operand is either
// ns or [ns, tz] (format also takes [ns, tz, layout]); tz is "", "UTC", "Local" or an IANA
// name; layouts are Go's. time.now_ns() is the evaluation's fixed clock (BuiltinContext).
#include <array>
#include <map>
#include <string>
#include <string_view>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"
#include "shared/policy/go_time.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;
using ZonePtr = std::shared_ptr<const TimeZone>;

constexpr std::int64_t kNanos = 1'000'000'000;
constexpr std::string_view kRfc3339 = "2006-01-02T15:04:05Z07:00";
constexpr std::string_view kRfc3339Nano = "2006-01-02T15:04:05.999999999Z07:00";

/// Go's layout constants that OPA accepts by name.
std::string_view namedLayout(std::string_view layout) {
    static const std::map<std::string_view, std::string_view> kLayouts = {
        {"ANSIC", "Mon Jan _2 15:04:05 2006"},
        {"UnixDate", "Mon Jan _2 15:04:05 MST 2006"},
        {"RubyDate", "Mon Jan 02 15:04:05 -0700 2006"},
        {"RFC822", "02 Jan 06 15:04 MST"},
        {"RFC822Z", "02 Jan 06 15:04 -0700"},
        {"RFC850", "Monday, 02-Jan-06 15:04:05 MST"},
        {"RFC1123", "Mon, 02 Jan 2006 15:04:05 MST"},
        {"RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700"},
        {"RFC3339", kRfc3339},
        {"RFC3339Nano", kRfc3339Nano},
    };
    const auto it = kLayouts.find(layout);
    return it == kLayouts.end() ? layout : it->second;
}

Instant instantOf(std::int64_t ns) {
    std::int64_t sec = ns / kNanos;
    std::int64_t rem = ns % kNanos;
    if (rem < 0) {
        --sec;
        rem += kNanos;
    }
    return {sec, static_cast<std::int32_t>(rem)};
}

/// Nanoseconds of an instant, or OPA's error when it does not fit int64.
BuiltinResult safeUnixNano(std::string_view name, Instant t) {
    constexpr Instant kMin = {-9'223'372'037, 145'224'192};
    constexpr Instant kMax = {9'223'372'036, 854'775'807};
    if (t.sec < kMin.sec || (t.sec == kMin.sec && t.nsec < kMin.nsec) || t.sec > kMax.sec ||
        (t.sec == kMax.sec && t.nsec > kMax.nsec)) {
        return fail(builtinError(name, "time outside of valid range"));
    }
    // (sec + 1) first so that the most negative instant does not overflow on the way.
    const std::int64_t ns =
        t.sec < 0 ? (t.sec + 1) * kNanos + (t.nsec - kNanos) : t.sec * kNanos + t.nsec;
    return ok(Value::number(ns));
}

struct TzTime {
    Instant t;
    ZonePtr zone;
    std::string layout;
};

Result<ZonePtr> zoneNamed(std::string_view name, std::string_view tz) {
    if (tz.empty() || tz == "UTC") return TimeZone::utc();
    if (tz == "Local") return TimeZone::local();
    auto zone = TimeZone::load(tz);
    if (!zone) return fail(builtinError(name, zone.error().message()));
    return *zone;
}

/// OPA's tzTime: ns | [ns] | [ns, tz] | [ns, tz, layout].
Result<TzTime> tzTime(std::string_view name, const Value& a) {
    constexpr std::string_view kExpected = "either number (ns) or [number (ns), string (tz)]";
    TzTime out{{}, TimeZone::utc(), {}};
    const Value* ns = &a;
    if (a.isArray()) {
        const auto& items = a.asArray();
        if (items.empty()) return fail(typeError(name, 1, kExpected, a));
        ns = &items[0];
        if (!ns->isNumber()) return fail(typeError(name, 1, "number", *ns));
        if (items.size() > 1) {
            if (!items[1].isString()) return fail(typeError(name, 1, "string", items[1]));
            auto zone = zoneNamed(name, items[1].asString());
            if (!zone) return fail(zone.error());
            out.zone = *zone;
        }
        if (items.size() > 2) {
            if (!items[2].isString()) return fail(typeError(name, 1, "string", items[2]));
            out.layout = items[2].asString();
        }
    } else if (!a.isNumber()) {
        return fail(typeError(name, 1, kExpected, a));
    }
    std::int64_t i = 0;
    if (!ns->asNumber().toInt(i)) return fail(builtinError(name, "timestamp too big"));
    out.t = instantOf(i);
    return out;
}

Value intArray(std::initializer_list<std::int64_t> items) {
    Array out;
    for (auto i : items) out.push_back(Value::number(i));
    return Value::array(std::move(out));
}

// A builtin of one time operand, mapped through f(TzTime).
template <class F>
Builtin oneTime(std::string_view name, F f) {
    return Builtin{name, 1, [name, f](Args args, BuiltinContext&) -> BuiltinResult {
                       auto t = tzTime(name, args[0]);
                       if (!t) return fail(t.error());
                       return f(*t);
                   }};
}

BuiltinResult parseNs(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "time.parse_ns";
    for (int k = 0; k < 2; ++k) {
        if (!args[static_cast<std::size_t>(k)].isString()) {
            return fail(typeError(kName, k + 1, "string", args[static_cast<std::size_t>(k)]));
        }
    }
    auto t = parseTime(namedLayout(args[0].asString()), args[1].asString());
    if (!t) return fail(builtinError(kName, t.error().message()));
    return safeUnixNano(kName, *t);
}

BuiltinResult addDate(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "time.add_date";
    auto t = tzTime(kName, args[0]);
    if (!t) return fail(t.error());
    std::array<std::int64_t, 3> delta{};
    for (int k = 0; k < 3; ++k) {
        auto v = intOperand(kName, k + 2, args[static_cast<std::size_t>(k) + 1]);
        if (!v) return fail(v.error());
        delta[static_cast<std::size_t>(k)] = *v;
    }
    // Far beyond the representable range; rejecting here keeps the date arithmetic in int64.
    constexpr std::int64_t kMaxYears = 1'000'000'000;
    auto beyond = [](std::int64_t v, std::int64_t limit) { return v < -limit || v > limit; };
    if (beyond(delta[0], kMaxYears) || beyond(delta[1], 12 * kMaxYears) ||
        beyond(delta[2], 366 * kMaxYears)) {
        return fail(builtinError(kName, "time outside of valid range"));
    }
    const CivilTime c = civilTime(t->t, *t->zone);
    const Instant r = makeDate(c.year + delta[0], c.month + delta[1], c.day + delta[2], c.hour,
                               c.minute, c.second, c.nsec, *t->zone);
    return safeUnixNano(kName, r);
}

BuiltinResult diff(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "time.diff";
    auto a = tzTime(kName, args[0]);
    if (!a) return fail(a.error());
    auto b = tzTime(kName, args[1]);
    if (!b) return fail(b.error());
    Instant t1 = a->t;
    Instant t2 = b->t;  // both read in the first operand's zone
    if (t1.sec > t2.sec || (t1.sec == t2.sec && t1.nsec > t2.nsec)) std::swap(t1, t2);
    const CivilTime c1 = civilTime(t1, *a->zone);
    const CivilTime c2 = civilTime(t2, *a->zone);
    std::int64_t year = c2.year - c1.year;
    std::int64_t month = c2.month - c1.month;
    std::int64_t day = c2.day - c1.day;
    std::int64_t hour = c2.hour - c1.hour;
    std::int64_t min = c2.minute - c1.minute;
    std::int64_t sec = c2.second - c1.second;
    if (sec < 0) {
        sec += 60;
        --min;
    }
    if (min < 0) {
        min += 60;
        --hour;
    }
    if (hour < 0) {
        hour += 24;
        --day;
    }
    if (day < 0) {
        day += daysInMonth(c1.month, c1.year);
        --month;
    }
    if (month < 0) {
        month += 12;
        --year;
    }
    return ok(intArray({year, month, day, hour, min, sec}));
}

}  // namespace

void addTimeBuiltins(std::vector<Builtin>& out) {
    out.push_back({"time.now_ns", 0, [](Args, BuiltinContext& ctx) -> BuiltinResult {
                       return ok(Value::number(ctx.now_ns));
                   }});
    out.push_back({"time.parse_ns", 2, parseNs});
    out.push_back({"time.parse_rfc3339_ns", 1, [](Args args, BuiltinContext&) -> BuiltinResult {
                       constexpr std::string_view kName = "time.parse_rfc3339_ns";
                       if (!args[0].isString()) return fail(typeError(kName, 1, "string", args[0]));
                       auto t = parseTime(kRfc3339, args[0].asString());
                       if (!t) return fail(builtinError(kName, t.error().message()));
                       return safeUnixNano(kName, *t);
                   }});
    out.push_back({"time.parse_duration_ns", 1, [](Args args, BuiltinContext&) -> BuiltinResult {
                       constexpr std::string_view kName = "time.parse_duration_ns";
                       if (!args[0].isString()) return fail(typeError(kName, 1, "string", args[0]));
                       auto d = parseDuration(args[0].asString());
                       if (!d) return fail(builtinError(kName, d.error().message()));
                       return ok(Value::number(*d));
                   }});
    out.push_back(oneTime("time.date", [](const TzTime& t) -> BuiltinResult {
        const CivilTime c = civilTime(t.t, *t.zone);
        return ok(intArray({c.year, c.month, c.day}));
    }));
    out.push_back(oneTime("time.clock", [](const TzTime& t) -> BuiltinResult {
        const CivilTime c = civilTime(t.t, *t.zone);
        return ok(intArray({c.hour, c.minute, c.second}));
    }));
    out.push_back(oneTime("time.weekday", [](const TzTime& t) -> BuiltinResult {
        constexpr std::array<std::string_view, 7> kDays = {
            "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
        return ok(Value::string(
            std::string(kDays[static_cast<std::size_t>(civilTime(t.t, *t.zone).weekday)])));
    }));
    out.push_back(oneTime("time.format", [](const TzTime& t) -> BuiltinResult {
        const std::string_view layout = t.layout.empty() ? kRfc3339Nano : namedLayout(t.layout);
        return ok(Value::string(formatTime(t.t, *t.zone, layout)));
    }));
    out.push_back({"time.add_date", 4, addDate});
    out.push_back({"time.diff", 2, diff});
}

}  // namespace edge::policy::detail
