#include "shared/policy/errors.hpp"

#include <string>

namespace edge::policy {
namespace {

class PolicyCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "edge.policy"; }
    std::string message(int c) const override {
        switch (static_cast<PolicyErrc>(c)) {
            case PolicyErrc::kParse: return "policy parse error";
            case PolicyErrc::kCompile: return "policy compile error";
            case PolicyErrc::kTypeError: return "policy evaluation type error";
            case PolicyErrc::kBuiltinError: return "policy builtin error";
            case PolicyErrc::kConflict: return "policy evaluation conflict";
            case PolicyErrc::kLimit: return "policy evaluation limit exceeded";
            case PolicyErrc::kInternal: return "policy engine internal error";
        }
        return "unknown policy error";
    }
};

}  // namespace

const std::error_category& policyCategory() noexcept {
    static const PolicyCategory category;
    return category;
}

std::string_view conformanceName(PolicyErrc e) noexcept {
    switch (e) {
        case PolicyErrc::kParse: return "rego_parse_error";
        case PolicyErrc::kCompile: return "rego_compile_error";
        case PolicyErrc::kTypeError: return "eval_type_error";
        case PolicyErrc::kBuiltinError: return "eval_builtin_error";
        case PolicyErrc::kConflict: return "eval_conflict_error";
        case PolicyErrc::kLimit: return "eval_cancel_error";
        case PolicyErrc::kInternal: return "eval_internal_error";
    }
    return "eval_internal_error";
}

}  // namespace edge::policy
