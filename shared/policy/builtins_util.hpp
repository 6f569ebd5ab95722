#pragma once
// Internal: small helpers shared by the builtins_*.cpp files (results and OPA-worded operand
// errors). Messages follow OPA's topdown/builtins package so conformance texts match.
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/policy/builtins.hpp"

namespace edge::policy::detail {

[[nodiscard]] inline BuiltinResult ok(Value v) { return std::optional<Value>(std::move(v)); }
[[nodiscard]] inline BuiltinResult undefinedResult() { return std::optional<Value>(); }

/// "one of {a, b, c}", the `expected` text OPA uses for several accepted types.
[[nodiscard]] std::string oneOf(std::initializer_list<std::string_view> types);

/// A type error with free text after the operand: "<builtin>: operand <n> <text>".
[[nodiscard]] Error operandError(std::string_view builtin, int operand, std::string_view text);

/// A wrong element inside a collection operand:
/// "<builtin>: operand <n> must be array of numbers but got array containing string".
[[nodiscard]] Error elementError(std::string_view builtin, int operand, const Value& composite,
                                 std::string_view expected, const Value& got);

/// An integral number operand (OPA's IntOperand): type error "must be number" for
/// non-numbers, "must be integer number but got floating-point number" for fractions.
[[nodiscard]] Result<std::int64_t> intOperand(std::string_view builtin, int operand,
                                              const Value& v);

/// json.filter, json.remove, json.patch (builtins_json_paths.cpp); called by
/// addCollectionBuiltins.
void addJsonPathBuiltins(std::vector<Builtin>& out);
/// yaml.marshal, yaml.unmarshal, yaml.is_valid (builtins_yaml.cpp); called by
/// addEncodingBuiltins.
void addYamlBuiltins(std::vector<Builtin>& out);

}  // namespace edge::policy::detail
