#pragma once
// Test helpers: call a builtin by name and unpack its result or error.
#include <catch2/catch.hpp>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "shared/policy/builtins.hpp"

namespace edge::policy::test {

inline BuiltinResult callBuiltin(std::string_view name, std::vector<Value> args) {
    const Builtin* b = findBuiltin(name);
    INFO("builtin " << name);
    REQUIRE(b != nullptr);
    REQUIRE(b->arity == static_cast<int>(args.size()));
    BuiltinContext ctx;
    return b->fn(args, ctx);
}

/// The value of a call that must succeed and be defined.
inline Value eval(std::string_view name, std::vector<Value> args) {
    auto r = callBuiltin(name, std::move(args));
    INFO(name << ": " << (r ? std::string("ok") : r.error().message()));
    REQUIRE(r.has_value());
    REQUIRE(r->has_value());
    return **r;
}

/// True when the call succeeds but is undefined.
inline bool isUndefined(std::string_view name, std::vector<Value> args) {
    auto r = callBuiltin(name, std::move(args));
    return r.has_value() && !r->has_value();
}

/// The message of a call that must fail with `code`.
inline std::string failure(PolicyErrc code, std::string_view name, std::vector<Value> args) {
    auto r = callBuiltin(name, std::move(args));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == make_error_code(code));
    return r.error().message();
}

inline Value json(std::string_view text) {
    auto v = parseJson(text);
    INFO(text);
    REQUIRE(v.has_value());
    return *v;
}

inline Value str(std::string s) { return Value::string(std::move(s)); }
/// An array of strings.
inline Value strs(std::initializer_list<const char*> items) {
    Array out;
    for (const char* s : items) out.push_back(str(s));
    return Value::array(std::move(out));
}
template <class T>
Value num(T v) {
    if constexpr (std::is_integral_v<T>) {
        return Value::number(static_cast<std::int64_t>(v));
    } else {
        return Value::number(static_cast<double>(v));
    }
}

}  // namespace edge::policy::test

namespace Catch {
template <>
struct StringMaker<edge::policy::Value> {
    static std::string convert(const edge::policy::Value& v) { return v.toRego(); }
};
}  // namespace Catch
