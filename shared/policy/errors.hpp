#pragma once
// Error codes of the policy engine. The conformance names are OPA's.
#include <string_view>
#include <system_error>

namespace edge::policy {

enum class PolicyErrc {
    kParse = 1,     // rego_parse_error
    kCompile,       // rego_compile_error (unsafe vars, arity, recursion, conflicts, unknown builtins)
    kTypeError,     // eval_type_error: an operand of the wrong type
    kBuiltinError,  // eval_builtin_error: a builtin failed on well-typed operands
    kConflict,      // eval_conflict_error: a complete rule or function with several outputs
    kLimit,         // deadline or step budget exhausted, or input too deep/large
    kInternal,
};

const std::error_category& policyCategory() noexcept;
inline std::error_code make_error_code(PolicyErrc e) noexcept {
    return {static_cast<int>(e), policyCategory()};
}
/// "rego_parse_error", "eval_type_error", …
std::string_view conformanceName(PolicyErrc e) noexcept;

}  // namespace edge::policy

template <>
struct std::is_error_code_enum<edge::policy::PolicyErrc> : std::true_type {};
