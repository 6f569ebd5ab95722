#pragma once
// Internal: top-down evaluation with backtracking over the compiled rule tree.
#include "shared/policy/compiled.hpp"

namespace edge::policy {

/// Runs a prepared query; bindings include the query's result variable when it has one.
[[nodiscard]] Result<ResultSet> evaluate(const PreparedQuery::Impl& query, const EvalOptions& options,
                                         const std::string& result_var);
/// The value of the result variable in the first solution, or nullopt when undefined.
[[nodiscard]] Result<std::optional<Value>> evaluateValue(const PreparedQuery::Impl& query, const EvalOptions& options,
                                                         const std::string& result_var);

}  // namespace edge::policy
