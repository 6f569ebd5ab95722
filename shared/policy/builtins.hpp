#pragma once
// Builtin functions of the core tier, by OPA name ("count", "sprintf", "regex.match", "plus"…).
// Operators are builtins too: plus minus mul div rem (arithmetic; minus/and/or on sets),
// equal neq lt lte gt gte, and (set intersection `&`), or (set union `|`).
//
// Contract of a BuiltinFn: args has exactly `arity` values. Return
//  - a Value: the result;
//  - std::nullopt: undefined without error (rare: e.g. object.get never is, but some are);
//  - an Error with PolicyErrc::kTypeError ("<name>: operand <n> must be <type> but got <type>")
//    or PolicyErrc::kBuiltinError (other failures) — the evaluator raises these when strict
//    builtin errors are on, and otherwise treats the call as undefined.
// Builtins are pure functions of their arguments and the context; thread-safe.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

#include "shared/policy/errors.hpp"
#include "shared/policy/value.hpp"

namespace edge::policy {

struct BuiltinContext {
    std::int64_t now_ns = 0;  // time.now_ns(): fixed for one evaluation
};

using BuiltinResult = Result<std::optional<Value>>;
using BuiltinFn = std::function<BuiltinResult(std::span<const Value> args, BuiltinContext& ctx)>;

struct Builtin {
    std::string_view name;
    int arity = 0;
    BuiltinFn fn;
};

/// nullptr for names that are not builtins.
[[nodiscard]] const Builtin* findBuiltin(std::string_view name);

/// Helpers for builtin implementations and the evaluator.
[[nodiscard]] Error typeError(std::string_view builtin, int operand, std::string_view expected,
                              const Value& got);
[[nodiscard]] Error builtinError(std::string_view builtin, std::string_view message);

}  // namespace edge::policy
