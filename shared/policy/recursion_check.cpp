#include "shared/policy/recursion_check.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

namespace edge::policy {
namespace {

// ---- recursion check: rules may not depend on themselves (directly or through others)

void subtreeRules(const RuleNode* node, std::set<const RuleNode*>& out) {
    if (node->hasRules() || node->isFunction()) out.insert(node);
    for (const auto& [name, child] : node->children) subtreeRules(child.get(), out);
}

void termDeps(const RuleNode& root, const Term& t, std::set<const RuleNode*>& out);
void bodyDeps(const RuleNode& root, const Body& body, std::set<const RuleNode*>& out) {
    for (const auto& e : body) {
        for (const TermP* p : {&e.term, &e.key, &e.val, &e.coll}) {
            if (*p) termDeps(root, **p, out);
        }
        if (e.body) bodyDeps(root, *e.body, out);
        for (const auto& w : e.withs) termDeps(root, *w.value, out);
    }
}
void termDeps(const RuleNode& root, const Term& t, std::set<const RuleNode*>& out) {
    if (t.kind == TermKind::kRef && t.items[0]->kind == TermKind::kVar && t.items[0]->name == "data") {
        const RuleNode* node = &root;
        std::size_t i = 1;
        for (; i < t.items.size(); ++i) {
            const auto& op = *t.items[i];
            if (node->hasRules() || op.kind != TermKind::kValue || !op.value.isString()) break;
            const RuleNode* child = node->child(op.value.asString());
            if (child == nullptr) break;
            node = child;
        }
        if (node->hasRules() || node->isFunction()) {
            out.insert(node);
        } else if (i == t.items.size() || t.items[i]->kind != TermKind::kValue) {
            subtreeRules(node, out);
        }
    }
    if (t.kind == TermKind::kCall && t.node != nullptr) out.insert(t.node);
    for (const auto& i : t.items) termDeps(root, *i, out);
    for (const auto& [k, v] : t.pairs) {
        termDeps(root, *k, out);
        termDeps(root, *v, out);
    }
    if (t.key) termDeps(root, *t.key, out);
    if (t.val) termDeps(root, *t.val, out);
    if (t.body) bodyDeps(root, *t.body, out);
}

std::string nodeName(const RuleNode* node) {
    std::string s = "data";
    for (const auto& p : node->path) s += "." + p;
    return s;
}

}  // namespace

Status checkRecursion(const RuleNode& root) {
    std::map<const RuleNode*, std::set<const RuleNode*>> deps;
    std::function<void(const RuleNode*)> collect = [&](const RuleNode* node) {
        auto& d = deps[node];
        auto addRule = [&](const RuleP& rule) {
            for (const Rule* r = rule.get(); r != nullptr; r = r->else_rule.get()) {
                bodyDeps(root, r->body, d);
                if (r->value) termDeps(root, *r->value, d);
                if (r->key) termDeps(root, *r->key, d);
                for (const auto& item : r->ref) termDeps(root, *item, d);
            }
        };
        for (const auto* list : {&node->complete, &node->partial_set, &node->partial_object, &node->functions}) {
            for (const auto& rule : *list) addRule(rule);
        }
        if (node->default_rule) addRule(node->default_rule);
        for (const auto& [name, child] : node->children) collect(child.get());
    };
    collect(&root);
    std::map<const RuleNode*, int> state;  // 1 visiting, 2 done
    std::vector<const RuleNode*> stack;
    std::function<Status(const RuleNode*)> visit = [&](const RuleNode* node) -> Status {
        state[node] = 1;
        stack.push_back(node);
        for (const RuleNode* dep : deps[node]) {
            if (state[dep] == 1) {
                std::string cycle;
                auto it = std::find(stack.begin(), stack.end(), dep);
                for (; it != stack.end(); ++it) cycle += nodeName(*it) + " -> ";
                cycle += nodeName(dep);
                return fail(PolicyErrc::kCompile,
                            fmt::format("rego_recursion_error: rule {} is recursive: {}", nodeName(dep), cycle));
            }
            if (state[dep] == 0) {
                if (auto st = visit(dep); !st) return st;
            }
        }
        stack.pop_back();
        state[node] = 2;
        return {};
    };
    for (const auto& [node, d] : deps) {
        if (state[node] == 0) {
            if (auto st = visit(node); !st) return st;
        }
    }
    return {};
}


}  // namespace edge::policy
