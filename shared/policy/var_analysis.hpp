#pragma once
// Internal: which variables a term or body mentions, needs bound, or can bind.
#include <set>
#include <string>

#include "shared/policy/ast.hpp"

namespace edge::policy::detail {

/// Every variable of a term or body, closures included.
void allVars(const Term& t, std::set<std::string>& out);
void bodyVars(const Body& body, std::set<std::string>& out);
/// Vars that must be bound before the term can be evaluated; bare vars in an output position
/// and ref operands can be bound by evaluation instead. `outer` are the vars a closure sees.
void needVars(const Term& t, const std::set<std::string>& outer, std::set<std::string>& out,
              bool output_position);
/// Vars in positions that unification binds (bare vars, inside array/object/set literals).
void bareVars(const Term& t, std::set<std::string>& out);
[[nodiscard]] bool subset(const std::set<std::string>& a, const std::set<std::string>& b);

}  // namespace edge::policy::detail
