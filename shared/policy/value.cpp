#include "shared/policy/value.hpp"

#include <charconv>
#include <cstdint>
#include <mutex>
#include <unordered_set>
#include <cmath>
#include <limits>

#include "shared/policy/go_strings.hpp"

namespace edge::policy {
namespace {

// 2^63 as a double: the first double past int64's range.
constexpr double kTwo63 = 9223372036854775808.0;

bool fitsInt64(double d) { return d >= -kTwo63 && d < kTwo63; }

int sign(auto a, auto b) { return a < b ? -1 : (b < a ? 1 : 0); }

// Exact comparison of an int64 with a double (no rounding of the int to double).
int compareIntDouble(std::int64_t i, double d) {
    if (std::isnan(d)) return 1;  // NaN sorts first among numbers (never produced normally)
    if (d >= kTwo63) return -1;
    if (d < -kTwo63) return 1;
    const double t = std::trunc(d);
    const auto ti = static_cast<std::int64_t>(t);
    if (i != ti) return i < ti ? -1 : 1;
    return d > t ? -1 : (d < t ? 1 : 0);
}

int compareDoubles(double a, double b) {
    const bool na = std::isnan(a);
    const bool nb = std::isnan(b);
    if (na || nb) return na == nb ? 0 : (na ? -1 : 1);
    return sign(a, b);
}

bool integralText(const std::string& t) {
    return t.find_first_of(".eE") == std::string::npos;
}

// Exact order of two integers given as decimal text ("-123", "4567").
int compareIntegerTexts(std::string_view a, std::string_view b) {
    const bool na = !a.empty() && a[0] == '-';
    const bool nb = !b.empty() && b[0] == '-';
    if (na != nb) return na ? -1 : 1;
    if (na) {
        a.remove_prefix(1);
        b.remove_prefix(1);
    }
    int c = a.size() != b.size() ? sign(a.size(), b.size()) : sign(a.compare(b), 0);
    return na ? -c : c;
}

int compareNumbers(const Number& a, const Number& b) {
    if (a.is_int && b.is_int) return sign(a.i, b.i);
    const std::string* at = a.text();
    const std::string* bt = b.text();
    if ((at || bt) && (a.is_int || (at && integralText(*at))) && (b.is_int || (bt && integralText(*bt)))) {
        return compareIntegerTexts(at ? *at : std::to_string(a.i), bt ? *bt : std::to_string(b.i));
    }
    if (a.is_int) return compareIntDouble(a.i, b.d);
    if (b.is_int) return -compareIntDouble(b.i, a.d);
    return compareDoubles(a.d, b.d);
}

template <class Range>
int compareRanges(const Range& a, const Range& b) {
    auto ia = a.begin();
    auto ib = b.begin();
    for (; ia != a.end() && ib != b.end(); ++ia, ++ib) {
        if (const int c = ia->compare(*ib); c != 0) return c;
    }
    return sign(a.size(), b.size());
}

int compareObjects(const Object& a, const Object& b) {
    auto ia = a.begin();
    auto ib = b.begin();
    for (; ia != a.end() && ib != b.end(); ++ia, ++ib) {
        if (const int c = ia->first.compare(ib->first); c != 0) return c;
        if (const int c = ia->second.compare(ib->second); c != 0) return c;
    }
    return sign(a.size(), b.size());
}

void appendRego(std::string& out, const Value& v) {
    switch (v.kind()) {
        case Kind::kNull: out += "null"; return;
        case Kind::kBool: out += v.asBool() ? "true" : "false"; return;
        case Kind::kNumber: out += formatNumber(v.asNumber()); return;
        case Kind::kString: out += detail::goQuote(v.asString()); return;
        case Kind::kArray: {
            out += '[';
            bool first = true;
            for (const auto& e : v.asArray()) {
                if (!first) out += ", ";
                first = false;
                appendRego(out, e);
            }
            out += ']';
            return;
        }
        case Kind::kObject: {
            out += '{';
            bool first = true;
            for (const auto& [k, e] : v.asObject()) {
                if (!first) out += ", ";
                first = false;
                appendRego(out, k);
                out += ": ";
                appendRego(out, e);
            }
            out += '}';
            return;
        }
        case Kind::kSet: {
            if (v.asSet().empty()) {
                out += "set()";
                return;
            }
            out += '{';
            bool first = true;
            for (const auto& e : v.asSet()) {
                if (!first) out += ", ";
                first = false;
                appendRego(out, e);
            }
            out += '}';
            return;
        }
    }
}

// Go's encoding/json float format: 'f' unless the exponent is very small or large, then 'e'
// with the exponent's leading zero dropped ("1e-07" -> "1e-7").
std::string formatDouble(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "+Inf" : "-Inf";
    char buf[64];
    const double a = std::fabs(d);
    const bool exp_form = a != 0 && (a < 1e-6 || a >= 1e21);
    const auto fmt = exp_form ? std::chars_format::scientific : std::chars_format::fixed;
    const auto res = std::to_chars(buf, buf + sizeof buf, d, fmt);
    std::string s(buf, res.ptr);
    if (exp_form) {
        const std::size_t n = s.size();
        if (n >= 4 && s[n - 4] == 'e' && s[n - 3] == '-' && s[n - 2] == '0') s.erase(n - 2, 1);
    }
    return s;
}

}  // namespace

bool Number::toInt(std::int64_t& out) const {
    if (is_int) {
        out = i;
        return true;
    }
    if (!std::isfinite(d) || std::trunc(d) != d || !fitsInt64(d)) return false;
    out = static_cast<std::int64_t>(d);
    return true;
}

namespace {
const std::string* internLiteral(std::string_view literal) {
    constexpr std::size_t kMaxBytes = 4u << 20;
    static std::mutex mutex;
    static std::unordered_set<std::string> pool;  // node-based: addresses stay valid
    static std::size_t bytes = 0;
    std::lock_guard lock(mutex);
    std::string key(literal);
    if (auto it = pool.find(key); it != pool.end()) return &*it;
    if (bytes + key.size() > kMaxBytes) return nullptr;
    bytes += key.size();
    return &*pool.insert(std::move(key)).first;
}

Number inexact(double d, std::string_view literal) {
    return Number{false, static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(internLiteral(literal))), d};
}
}  // namespace

std::optional<Number> Number::ofLiteral(std::string_view literal) {
    const char* first = literal.data();
    const char* last = literal.data() + literal.size();
    const bool integral = literal.find_first_of(".eE") == std::string_view::npos;
    if (integral) {
        std::int64_t i = 0;
        const auto r = std::from_chars(first, last, i);
        if (r.ec == std::errc() && r.ptr == last) return ofInt(i);
    }
    double d = 0;
    const auto r = std::from_chars(first, last, d);
    if (r.ptr != last || (r.ec != std::errc() && r.ec != std::errc::result_out_of_range)) return std::nullopt;
    if (r.ec == std::errc::result_out_of_range) {
        // Past double's range: keep the literal; the approximation is infinity (or zero).
        const bool tiny = literal.find("e-") != std::string_view::npos || literal.find("E-") != std::string_view::npos;
        d = tiny ? 0.0 : (literal[0] == '-' ? -HUGE_VAL : HUGE_VAL);
        return inexact(d, literal);
    }
    if (integral) return inexact(d, literal);  // past int64
    return ofDouble(d);
}

Number Number::ofDouble(double v) {
    if (std::isfinite(v) && std::trunc(v) == v && fitsInt64(v)) {
        return ofInt(static_cast<std::int64_t>(v));
    }
    return {false, 0, v};
}

bool ValueLess::operator()(const Value& a, const Value& b) const {
    // Object keys are almost always strings: compare those without the general dispatch.
    if (a.isString() && b.isString()) return a.asString() < b.asString();
    return a.compare(b) < 0;
}
bool ValueLess::operator()(const Value& a, std::string_view b) const {
    if (!a.isString()) return a.kind() < Kind::kString;
    return std::string_view(a.asString()) < b;
}
bool ValueLess::operator()(std::string_view a, const Value& b) const {
    if (!b.isString()) return Kind::kString < b.kind();
    return a < std::string_view(b.asString());
}

Value Value::boolean(bool b) { return Value(Rep(b)); }
Value Value::number(std::int64_t i) { return Value(Rep(Number::ofInt(i))); }
Value Value::number(double d) { return Value(Rep(Number::ofDouble(d))); }
Value Value::number(Number n) {
    if (n.is_int || n.text()) return Value(Rep(n));
    return Value(Rep(Number::ofDouble(n.d)));
}
Value Value::string(std::string s) {
    return Value(Rep(std::make_shared<const std::string>(std::move(s))));
}
Value Value::array(Array items) {
    return Value(Rep(std::make_shared<const Array>(std::move(items))));
}
Value Value::object(Object items) {
    return Value(Rep(std::make_shared<const Object>(std::move(items))));
}
Value Value::set(Set items) { return Value(Rep(std::make_shared<const Set>(std::move(items)))); }

Value Value::emptyObject() {
    static const Value empty = object({});
    return empty;
}
Value Value::emptySet() {
    static const Value empty = set({});
    return empty;
}
Value Value::emptyArray() {
    static const Value empty = array({});
    return empty;
}

const Value* Value::get(std::string_view key) const {
    if (!isObject()) return nullptr;
    const auto& items = asObject();
    const auto it = items.find(key);
    return it == items.end() ? nullptr : &it->second;
}

const Value* Value::get(const Value& key) const {
    if (key.isString() && isObject()) return get(std::string_view(key.asString()));
    switch (kind()) {
        case Kind::kArray: {
            if (!key.isNumber()) return nullptr;
            std::int64_t idx = 0;
            const auto& items = asArray();
            if (!key.asNumber().toInt(idx) || idx < 0 ||
                static_cast<std::uint64_t>(idx) >= items.size()) {
                return nullptr;
            }
            return &items[static_cast<std::size_t>(idx)];
        }
        case Kind::kObject: {
            const auto& items = asObject();
            const auto it = items.find(key);
            return it == items.end() ? nullptr : &it->second;
        }
        case Kind::kSet: {
            const auto& items = asSet();
            const auto it = items.find(key);
            return it == items.end() ? nullptr : &*it;
        }
        default: return nullptr;
    }
}

std::size_t Value::size() const {
    switch (kind()) {
        case Kind::kString: return detail::runeCount(asString());
        case Kind::kArray: return asArray().size();
        case Kind::kObject: return asObject().size();
        case Kind::kSet: return asSet().size();
        default: return 0;
    }
}

int Value::compare(const Value& other) const {
    if (kind() != other.kind()) return sign(kind(), other.kind());
    // Shared payloads (copies of one value) are equal without a walk.
    switch (kind()) {
        case Kind::kNull: return 0;
        case Kind::kBool: return sign(asBool(), other.asBool());
        case Kind::kNumber: return compareNumbers(asNumber(), other.asNumber());
        case Kind::kString: {
            if (&asString() == &other.asString()) return 0;
            const int c = asString().compare(other.asString());
            return c < 0 ? -1 : (c > 0 ? 1 : 0);
        }
        case Kind::kArray:
            if (&asArray() == &other.asArray()) return 0;
            return compareRanges(asArray(), other.asArray());
        case Kind::kObject:
            if (&asObject() == &other.asObject()) return 0;
            return compareObjects(asObject(), other.asObject());
        case Kind::kSet:
            if (&asSet() == &other.asSet()) return 0;
            return compareRanges(asSet(), other.asSet());
    }
    return 0;
}

std::string Value::toRego() const {
    std::string out;
    appendRego(out, *this);
    return out;
}

std::string_view Value::typeName() const {
    switch (kind()) {
        case Kind::kNull: return "null";
        case Kind::kBool: return "boolean";
        case Kind::kNumber: return "number";
        case Kind::kString: return "string";
        case Kind::kArray: return "array";
        case Kind::kObject: return "object";
        case Kind::kSet: return "set";
    }
    return "unknown";
}

std::string formatNumber(const Number& n) {
    if (n.is_int) return std::to_string(n.i);
    if (const std::string* t = n.text()) return *t;
    return formatDouble(n.d);
}

}  // namespace edge::policy
