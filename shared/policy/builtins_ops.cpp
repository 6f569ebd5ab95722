// Operators and number/aggregate/type builtins, with OPA's semantics and error texts
// (topdown/arithmetic.go, aggregates.go, numbers.go, casts.go, types.go).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"
#include "shared/policy/go_strings.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;

// numbers.range builds the whole array at once; beyond this it would only exhaust memory.
constexpr std::int64_t kMaxRangeElements = std::int64_t{1} << 20;

enum class ArithOp { kPlus, kMinus, kMul, kDiv, kRem };

Result<Value> fromDouble(std::string_view name, double r) {
    if (!std::isfinite(r)) return fail(builtinError(name, "arithmetic result out of range"));
    return Value::number(r);
}

// Integers stay integers while the result fits int64 (and, for division, is exact);
// everything else is computed on doubles.
Result<Value> arith(std::string_view name, ArithOp op, const Number& x, const Number& y) {
    if (x.is_int && y.is_int) {
        const std::int64_t a = x.i;
        const std::int64_t b = y.i;
        std::int64_t r = 0;
        switch (op) {
            case ArithOp::kPlus:
                if (!__builtin_add_overflow(a, b, &r)) return Value::number(r);
                break;
            case ArithOp::kMinus:
                if (!__builtin_sub_overflow(a, b, &r)) return Value::number(r);
                break;
            case ArithOp::kMul:
                if (!__builtin_mul_overflow(a, b, &r)) return Value::number(r);
                break;
            case ArithOp::kDiv:
                if (b == 0) return fail(builtinError(name, "divide by zero"));
                if (b != -1 && a % b == 0) return Value::number(a / b);
                if (b == -1 && a != std::numeric_limits<std::int64_t>::min()) {
                    return Value::number(-a);
                }
                break;
            case ArithOp::kRem:
                if (b == 0) return fail(builtinError(name, "modulo by zero"));
                return Value::number(b == -1 ? std::int64_t{0} : a % b);
        }
    }
    const double a = x.asDouble();
    const double b = y.asDouble();
    switch (op) {
        case ArithOp::kPlus: return fromDouble(name, a + b);
        case ArithOp::kMinus: return fromDouble(name, a - b);
        case ArithOp::kMul: return fromDouble(name, a * b);
        case ArithOp::kDiv:
            if (b == 0) return fail(builtinError(name, "divide by zero"));
            return fromDouble(name, a / b);
        case ArithOp::kRem:
            // Integral doubles (beyond int64) still have an exact remainder.
            if (std::trunc(a) != a || std::trunc(b) != b) {
                return fail(builtinError(name, "modulo on floating-point number"));
            }
            if (b == 0) return fail(builtinError(name, "modulo by zero"));
            return fromDouble(name, std::fmod(a, b));
    }
    return fail(builtinError(name, "unknown operator"));
}

BuiltinFn arithBuiltin(std::string_view name, ArithOp op) {
    return [name, op](Args args, BuiltinContext&) -> BuiltinResult {
        if (!args[0].isNumber()) return fail(typeError(name, 1, "number", args[0]));
        if (!args[1].isNumber()) return fail(typeError(name, 2, "number", args[1]));
        auto r = arith(name, op, args[0].asNumber(), args[1].asNumber());
        if (!r) return fail(std::move(r.error()));
        return ok(std::move(*r));
    };
}

BuiltinResult minus(Args args, BuiltinContext&) {
    const Value& a = args[0];
    const Value& b = args[1];
    if (a.isNumber() && b.isNumber()) {
        auto r = arith("minus", ArithOp::kMinus, a.asNumber(), b.asNumber());
        if (!r) return fail(std::move(r.error()));
        return ok(std::move(*r));
    }
    if (a.isSet() && b.isSet()) {
        Set out;
        std::set_difference(a.asSet().begin(), a.asSet().end(), b.asSet().begin(), b.asSet().end(),
                            std::inserter(out, out.end()), ValueLess{});
        return ok(Value::set(std::move(out)));
    }
    if (!a.isNumber() && !a.isSet()) {
        return fail(typeError("minus", 1, oneOf({"number", "set"}), a));
    }
    if (b.isNumber()) return fail(typeError("minus", 2, "set", b));
    return fail(typeError("minus", 2, "number", b));
}

// abs, round, ceil, floor: integers are unchanged (abs aside); doubles map through f.
BuiltinFn unaryBuiltin(std::string_view name, double (*f)(double), bool is_abs) {
    return [name, f, is_abs](Args args, BuiltinContext&) -> BuiltinResult {
        if (!args[0].isNumber()) return fail(typeError(name, 1, "number", args[0]));
        const Number& n = args[0].asNumber();
        if (n.is_int) {
            if (!is_abs || n.i >= 0) return ok(args[0]);
            if (n.i == std::numeric_limits<std::int64_t>::min()) {
                return ok(Value::number(-static_cast<double>(n.i)));
            }
            return ok(Value::number(-n.i));
        }
        return ok(Value::number(f(n.d)));
    };
}

BuiltinFn compareBuiltin(bool (*pred)(int)) {
    return [pred](Args args, BuiltinContext&) -> BuiltinResult {
        return ok(Value::boolean(pred(args[0].compare(args[1]))));
    };
}

// OPA's BigIntOperand: "must be integer" for non-numbers.
Result<std::int64_t> integerOperand(std::string_view name, int pos, const Value& v) {
    if (!v.isNumber()) return fail(typeError(name, pos, "integer", v));
    return intOperand(name, pos, v);
}

Result<Value> makeRange(std::string_view name, std::int64_t from, std::int64_t to,
                        std::int64_t step) {
    // Unsigned (modular) arithmetic: the distance of two int64s always fits a uint64.
    const auto ufrom = static_cast<std::uint64_t>(from);
    const auto uto = static_cast<std::uint64_t>(to);
    const std::uint64_t steps =
        (from <= to ? uto - ufrom : ufrom - uto) / static_cast<std::uint64_t>(step);
    if (steps >= static_cast<std::uint64_t>(kMaxRangeElements)) {
        return fail(PolicyErrc::kLimit, std::string(name) + ": range of more than " +
                                            std::to_string(kMaxRangeElements) +
                                            " numbers exceeds the limit");
    }
    Array out;
    out.reserve(static_cast<std::size_t>(steps + 1));
    for (std::uint64_t k = 0; k <= steps; ++k) {
        const std::uint64_t delta = k * static_cast<std::uint64_t>(step);
        out.push_back(
            Value::number(static_cast<std::int64_t>(from <= to ? ufrom + delta : ufrom - delta)));
    }
    return Value::array(std::move(out));
}

BuiltinResult numbersRange(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "numbers.range";
    auto from = integerOperand(kName, 1, args[0]);
    if (!from) return fail(std::move(from.error()));
    auto to = integerOperand(kName, 2, args[1]);
    if (!to) return fail(std::move(to.error()));
    auto r = makeRange(kName, *from, *to, 1);
    if (!r) return fail(std::move(r.error()));
    return ok(std::move(*r));
}

BuiltinResult numbersRangeStep(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "numbers.range_step";
    auto from = integerOperand(kName, 1, args[0]);
    if (!from) return fail(std::move(from.error()));
    auto to = integerOperand(kName, 2, args[1]);
    if (!to) return fail(std::move(to.error()));
    auto step = integerOperand(kName, 3, args[2]);
    if (!step) return fail(std::move(step.error()));
    if (*step <= 0) return fail(builtinError(kName, "step must be a positive integer"));
    auto r = makeRange(kName, *from, *to, *step);
    if (!r) return fail(std::move(r.error()));
    return ok(std::move(*r));
}

BuiltinResult count(Args args, BuiltinContext&) {
    const Value& v = args[0];
    switch (v.kind()) {
        case Kind::kString:
        case Kind::kArray:
        case Kind::kObject:
        case Kind::kSet: return ok(Value::number(static_cast<std::int64_t>(v.size())));
        default: return fail(typeError("count", 1, oneOf({"array", "object", "set", "string"}), v));
    }
}

// Calls f on each element of an array or set; false when v is neither.
template <class F>
bool forEachElement(const Value& v, F&& f) {
    if (v.isArray()) {
        for (const auto& e : v.asArray()) f(e);
        return true;
    }
    if (v.isSet()) {
        for (const auto& e : v.asSet()) f(e);
        return true;
    }
    return false;
}

// sum and product: exact on int64 while possible, then on doubles.
BuiltinFn accumulateBuiltin(std::string_view name, bool is_product) {
    return [name, is_product](Args args, BuiltinContext&) -> BuiltinResult {
        const Value& coll = args[0];
        if (!coll.isArray() && !coll.isSet()) {
            return fail(typeError(name, 1, oneOf({"set", "array"}), coll));
        }
        const Value* bad = nullptr;
        forEachElement(coll, [&](const Value& e) {
            if (!bad && !e.isNumber()) bad = &e;
        });
        if (bad) return fail(elementError(name, 1, coll, "number", *bad));
        bool exact = true;
        std::int64_t acc = is_product ? 1 : 0;
        forEachElement(coll, [&](const Value& e) {
            if (!exact) return;
            const Number& n = e.asNumber();
            std::int64_t next = 0;
            const bool inexact =
                !n.is_int || (is_product ? __builtin_mul_overflow(acc, n.i, &next)
                                         : __builtin_add_overflow(acc, n.i, &next));
            if (inexact) {
                exact = false;
                return;
            }
            acc = next;
        });
        if (exact) return ok(Value::number(acc));
        // A fraction or an int64 overflow: accumulate everything on doubles.
        double dacc = is_product ? 1 : 0;
        forEachElement(coll, [&](const Value& e) {
            const double d = e.asNumber().asDouble();
            dacc = is_product ? dacc * d : dacc + d;
        });
        if (!std::isfinite(dacc)) return fail(builtinError(name, "arithmetic result out of range"));
        return ok(Value::number(dacc));
    };
}

BuiltinFn extremeBuiltin(std::string_view name, bool is_max) {
    return [name, is_max](Args args, BuiltinContext&) -> BuiltinResult {
        const Value& coll = args[0];
        const Value* best = nullptr;
        const bool is_coll = forEachElement(coll, [&](const Value& e) {
            if (!best) {
                best = &e;
                return;
            }
            const int c = e.compare(*best);
            if (is_max ? c > 0 : c < 0) best = &e;
        });
        if (!is_coll) return fail(typeError(name, 1, oneOf({"set", "array"}), coll));
        if (!best) return undefinedResult();
        return ok(*best);
    };
}

BuiltinResult sortBuiltin(Args args, BuiltinContext&) {
    const Value& coll = args[0];
    if (coll.isSet()) return ok(Value::array(Array(coll.asSet().begin(), coll.asSet().end())));
    if (!coll.isArray()) return fail(typeError("sort", 1, oneOf({"set", "array"}), coll));
    Array items = coll.asArray();
    std::stable_sort(items.begin(), items.end(), ValueLess{});
    return ok(Value::array(std::move(items)));
}

// internal.member_2: `x in coll` (values of arrays and objects, elements of sets).
BuiltinResult member2(Args args, BuiltinContext&) {
    const Value& x = args[0];
    const Value& coll = args[1];
    bool found = false;
    if (coll.isSet()) {
        found = coll.get(x) != nullptr;
    } else if (coll.isArray()) {
        found = std::any_of(coll.asArray().begin(), coll.asArray().end(),
                            [&](const Value& e) { return e == x; });
    } else if (coll.isObject()) {
        found = std::any_of(coll.asObject().begin(), coll.asObject().end(),
                            [&](const auto& kv) { return kv.second == x; });
    }
    return ok(Value::boolean(found));
}

// internal.member_3: `k, v in coll`.
BuiltinResult member3(Args args, BuiltinContext&) {
    const Value& key = args[0];
    const Value& val = args[1];
    const Value& coll = args[2];
    bool found = false;
    if (coll.isSet()) {
        found = coll.get(key) != nullptr && key == val;
    } else if (coll.isArray() || coll.isObject()) {
        const Value* got = coll.get(key);
        found = got != nullptr && *got == val;
    }
    return ok(Value::boolean(found));
}

BuiltinFn kindPredicate(Kind kind) {
    return [kind](Args args, BuiltinContext&) -> BuiltinResult {
        return ok(Value::boolean(args[0].kind() == kind));
    };
}

BuiltinResult typeName(Args args, BuiltinContext&) {
    return ok(Value::string(std::string(args[0].typeName())));
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// A decimal literal as Go's strconv.ParseFloat reads it (hex floats and digit separators are
// not supported). Sets `range_error` for magnitudes beyond double.
std::optional<Value> parseGoFloat(std::string_view s, bool& range_error) {
    range_error = false;
    std::size_t p = 0;
    bool negative = false;
    if (p < s.size() && (s[p] == '+' || s[p] == '-')) negative = s[p++] == '-';
    const std::size_t body = p;
    std::size_t int_digits = 0;
    std::size_t frac_digits = 0;
    while (p < s.size() && isDigit(s[p])) ++p, ++int_digits;
    bool integral = true;
    if (p < s.size() && s[p] == '.') {
        integral = false;
        ++p;
        while (p < s.size() && isDigit(s[p])) ++p, ++frac_digits;
    }
    if (int_digits + frac_digits == 0) return std::nullopt;
    long exponent = 0;
    if (p < s.size() && (s[p] == 'e' || s[p] == 'E')) {
        integral = false;
        ++p;
        bool exp_negative = false;
        if (p < s.size() && (s[p] == '+' || s[p] == '-')) exp_negative = s[p++] == '-';
        if (p >= s.size() || !isDigit(s[p])) return std::nullopt;
        while (p < s.size() && isDigit(s[p])) {
            if (exponent < 100000) exponent = exponent * 10 + (s[p] - '0');
            ++p;
        }
        if (exp_negative) exponent = -exponent;
    }
    if (p != s.size()) return std::nullopt;
    const std::string_view digits = s.substr(body);
    if (integral) {
        std::int64_t i = 0;
        const std::string signed_digits = (negative ? "-" : "") + std::string(digits);
        const auto r =
            std::from_chars(signed_digits.data(), signed_digits.data() + signed_digits.size(), i);
        if (r.ec == std::errc()) return Value::number(i);
    }
    double d = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), d);
    if (r.ec == std::errc::result_out_of_range) {
        // Decimal magnitude of the literal decides between overflow and underflow.
        std::size_t lead = body;
        while (lead < s.size() && (s[lead] == '0' || s[lead] == '.')) ++lead;
        const long int_part =
            static_cast<long>(int_digits) - static_cast<long>(std::min(lead - body, int_digits));
        if (int_part + exponent > 0) {
            range_error = true;
            return std::nullopt;
        }
        d = 0;
    } else if (r.ec != std::errc()) {
        return std::nullopt;
    }
    return Value::number(negative ? -d : d);
}

BuiltinResult toNumber(Args args, BuiltinContext&) {
    const Value& v = args[0];
    switch (v.kind()) {
        case Kind::kNull: return ok(Value::number(std::int64_t{0}));
        case Kind::kBool: return ok(Value::number(std::int64_t{v.asBool() ? 1 : 0}));
        case Kind::kNumber: return ok(v);
        case Kind::kString: {
            const std::string& s = v.asString();
            const std::string trimmed =
                toLower(std::string_view(s).substr(std::min(s.find_first_not_of("+-"), s.size())));
            if (trimmed == "inf" || trimmed == "infinity" || trimmed == "nan") {
                return fail(typeError("to_number", 1, "valid number string", v));
            }
            bool range_error = false;
            auto n = parseGoFloat(s, range_error);
            if (!n) {
                return fail(builtinError(
                    "to_number", "strconv.ParseFloat: parsing " + goQuote(s) +
                                     (range_error ? ": value out of range" : ": invalid syntax")));
            }
            return ok(std::move(*n));
        }
        default:
            return fail(
                typeError("to_number", 1, oneOf({"null", "boolean", "number", "string"}), v));
    }
}

void add(std::vector<Builtin>& out, std::string_view name, int arity, BuiltinFn fn) {
    out.push_back(Builtin{name, arity, std::move(fn)});
}

}  // namespace

void addOperatorBuiltins(std::vector<Builtin>& out) {
    add(out, "plus", 2, arithBuiltin("plus", ArithOp::kPlus));
    add(out, "minus", 2, minus);
    add(out, "mul", 2, arithBuiltin("mul", ArithOp::kMul));
    add(out, "div", 2, arithBuiltin("div", ArithOp::kDiv));
    add(out, "rem", 2, arithBuiltin("rem", ArithOp::kRem));
    add(out, "abs", 1,
        unaryBuiltin(
            "abs", [](double d) { return std::fabs(d); }, true));
    // std::round rounds half away from zero, as OPA's round does.
    add(out, "round", 1,
        unaryBuiltin(
            "round", [](double d) { return std::round(d); }, false));
    add(out, "ceil", 1,
        unaryBuiltin(
            "ceil", [](double d) { return std::ceil(d); }, false));
    add(out, "floor", 1,
        unaryBuiltin(
            "floor", [](double d) { return std::floor(d); }, false));

    add(out, "equal", 2, compareBuiltin([](int c) { return c == 0; }));
    add(out, "neq", 2, compareBuiltin([](int c) { return c != 0; }));
    add(out, "lt", 2, compareBuiltin([](int c) { return c < 0; }));
    add(out, "lte", 2, compareBuiltin([](int c) { return c <= 0; }));
    add(out, "gt", 2, compareBuiltin([](int c) { return c > 0; }));
    add(out, "gte", 2, compareBuiltin([](int c) { return c >= 0; }));

    add(out, "numbers.range", 2, numbersRange);
    add(out, "numbers.range_step", 3, numbersRangeStep);

    add(out, "count", 1, count);
    add(out, "sum", 1, accumulateBuiltin("sum", false));
    add(out, "product", 1, accumulateBuiltin("product", true));
    add(out, "max", 1, extremeBuiltin("max", true));
    add(out, "min", 1, extremeBuiltin("min", false));
    add(out, "sort", 1, sortBuiltin);
    add(out, "internal.member_2", 2, member2);
    add(out, "internal.member_3", 3, member3);

    add(out, "is_number", 1, kindPredicate(Kind::kNumber));
    add(out, "is_string", 1, kindPredicate(Kind::kString));
    add(out, "is_boolean", 1, kindPredicate(Kind::kBool));
    add(out, "is_array", 1, kindPredicate(Kind::kArray));
    add(out, "is_set", 1, kindPredicate(Kind::kSet));
    add(out, "is_object", 1, kindPredicate(Kind::kObject));
    add(out, "is_null", 1, kindPredicate(Kind::kNull));
    add(out, "type_name", 1, typeName);
    add(out, "to_number", 1, toNumber);
}

}  // namespace edge::policy::detail
