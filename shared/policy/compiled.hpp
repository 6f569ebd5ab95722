#pragma once
// Internal: the compiled form of a Policy, shared by the compiler and the evaluator.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shared/policy/ast.hpp"
#include "shared/policy/engine.hpp"

namespace edge::policy {

/// A node of the rule tree: data.<path>. Rules hang at the node of their head's ground prefix.
struct RuleNode {
    std::vector<std::string> path;  // after "data"
    std::map<std::string, std::unique_ptr<RuleNode>> children;
    std::vector<RuleP> complete;        // value rules whose whole head ref is ground
    std::vector<RuleP> partial_set;     // p contains x
    std::vector<RuleP> partial_object;  // p[k] := v, p.q[k].r := v, p[k] contains v (suffix from prefix_len)
    std::vector<RuleP> functions;
    RuleP default_rule;
    std::size_t prefix_len = 0;
    bool is_package = false;  // a module's package: a document even with no rules  // ground items of the head ref for partial_object rules
    [[nodiscard]] bool hasRules() const {
        return !complete.empty() || !partial_set.empty() || !partial_object.empty() ||
               (default_rule && default_rule->kind != RuleKind::kFunction);
    }
    [[nodiscard]] bool isFunction() const {
        return !functions.empty() || (default_rule && default_rule->kind == RuleKind::kFunction);
    }
    [[nodiscard]] const RuleNode* child(const std::string& name) const {
        auto it = children.find(name);
        return it == children.end() ? nullptr : it->second.get();
    }
};

struct Policy::Impl {
    std::vector<Module> modules;
    RuleNode root;
    std::vector<std::string> packages;
    std::vector<std::string> tests;
};

struct PreparedQuery::Impl {
    std::shared_ptr<const Policy::Impl> policy;
    Body body;
    std::vector<std::string> vars;  // named variables of the query, in order of appearance
};

/// Compiles parsed modules into the rule tree (resolving names, ordering bodies, checking).
[[nodiscard]] Result<std::shared_ptr<Policy::Impl>> compileModules(std::vector<Module> modules);
/// Resolves and orders a query body against a compiled policy.
[[nodiscard]] Result<std::shared_ptr<PreparedQuery::Impl>> compileQuery(
    std::shared_ptr<const Policy::Impl> policy, Body body);

}  // namespace edge::policy
