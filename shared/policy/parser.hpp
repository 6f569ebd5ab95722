#pragma once
// Rego v1 parser: modules and queries into the syntax tree of ast.hpp.
// Errors: PolicyErrc::kParse, "file:line:col: expected X, found Y".
#include <string>
#include <string_view>

#include "shared/core/error.hpp"
#include "shared/policy/ast.hpp"

namespace edge::policy {

[[nodiscard]] Result<Module> parseModule(std::string_view source, const std::string& file);
[[nodiscard]] Result<Body> parseQuery(std::string_view source);

}  // namespace edge::policy
