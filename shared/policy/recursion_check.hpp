#pragma once
// Internal: the compiler's recursion check over the rule tree.
#include "shared/policy/compiled.hpp"

namespace edge::policy {

/// Fails with a rego_recursion_error (PolicyErrc::kCompile) naming the cycle when a rule or
/// function depends on itself, directly or through other rules.
[[nodiscard]] Status checkRecursion(const RuleNode& root);

}  // namespace edge::policy
