// Builtins OPA has that this engine deliberately does not offer (network access from a policy
// on an edge device). They exist so policies that mention them compile, and so tests can mock
// them with `with`; called for real they fail like any builtin error.
#include "shared/policy/builtins_registry.hpp"

namespace edge::policy::detail {

namespace {
Builtin unavailable(std::string_view name, int arity, std::string_view why) {
    return {name, arity, [name, why](std::span<const Value>, BuiltinContext&) -> BuiltinResult {
                return std::unexpected(builtinError(name, why));
            }};
}
}  // namespace

void addUnavailableBuiltins(std::vector<Builtin>& out) {
    out.push_back(unavailable("http.send", 1, "not available: policies on the device evaluate offline"));
    out.push_back(unavailable("io.jwt.decode_verify", 2, "not available in this engine yet (extended tier)"));
}

}  // namespace edge::policy::detail
