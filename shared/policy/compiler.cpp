// The compiler: builds the rule tree, resolves names (rule references, imports, functions),
// renames shadowed and wildcard variables, and orders each body so variables are bound before
// they are needed (as OPA's safety reordering does).
#include <algorithm>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "shared/policy/builtins.hpp"
#include "shared/policy/compiled.hpp"
#include "shared/policy/recursion_check.hpp"
#include "shared/policy/var_analysis.hpp"

namespace edge::policy {
namespace {

using detail::allVars;
using detail::bareVars;
using detail::bodyVars;
using detail::needVars;
using detail::subset;

std::unexpected<Error> compileError(const Location& loc, std::string_view msg) {
    return fail(PolicyErrc::kCompile, fmt::format("{}: {}", loc.str(), msg));
}

RuleNode* ensureNode(RuleNode& root, const std::vector<std::string>& path) {
    RuleNode* node = &root;
    for (const auto& part : path) {
        auto& child = node->children[part];
        if (!child) {
            child = std::make_unique<RuleNode>();
            child->path = node->path;
            child->path.push_back(part);
        }
        node = child.get();
    }
    return node;
}

const RuleNode* findNode(const RuleNode& root, const std::vector<std::string>& path) {
    const RuleNode* node = &root;
    for (const auto& part : path) {
        node = node->child(part);
        if (node == nullptr) return nullptr;
    }
    return node;
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (true) {
        auto dot = s.find('.', start);
        out.push_back(s.substr(start, dot - start));
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    return out;
}

// ---- the rewriter

class Compiler {
public:
    explicit Compiler(Policy::Impl& impl) : impl_(impl) {}

    Status build() {
        for (auto& module : impl_.modules) {
            std::string pkg = "data";
            for (const auto& p : module.package) pkg += "." + p;
            if (std::find(impl_.packages.begin(), impl_.packages.end(), pkg) == impl_.packages.end()) {
                impl_.packages.push_back(pkg);
            }
            ensureNode(impl_.root, module.package)->is_package = true;  // an empty package is still a document
            for (const auto& rule : module.rules) {
                if (auto st = insert(module, rule); !st) return st;
            }
        }
        for (auto& module : impl_.modules) {
            module_ = &module;
            rule_names_.clear();
            for (const auto& other : impl_.modules) {
                if (other.package != module.package) continue;
                for (const auto& r : other.rules) rule_names_.insert(r->ref[0]->value.asString());
            }
            imports_.clear();
            for (const auto& imp : module.imports) {
                if (imp.path[0] == "future" || imp.path[0] == "rego") continue;
                const std::string alias = imp.alias.empty() ? imp.path.back() : imp.alias;
                imports_[alias] = imp.path;
            }
            for (const auto& rule : module.rules) {
                for (Rule* r = rule.get(); r != nullptr; r = r->else_rule.get()) {
                    if (auto st = rewriteRule(*r); !st) return st;
                }
            }
        }
        return {};
    }

    Status rewriteQuery(Body& body, std::vector<std::string>& vars) {
        module_ = nullptr;
        rule_names_.clear();
        imports_.clear();
        std::set<std::string> outer;
        if (auto st = rewriteBody(body, outer, {}); !st) return st;
        std::set<std::string> seen;
        collectOrdered(body, vars, seen);
        return {};
    }

private:
    void collectOrdered(const Body& body, std::vector<std::string>& vars, std::set<std::string>& seen) {
        std::set<std::string> all;
        std::vector<std::string> order;
        std::function<void(const Term&)> walk = [&](const Term& t) {
            if (t.kind == TermKind::kVar) {
                if (!t.name.empty() && t.name[0] != '$' && seen.insert(t.name).second) vars.push_back(t.name);
                return;
            }
            if (t.kind == TermKind::kArrayCompr || t.kind == TermKind::kSetCompr || t.kind == TermKind::kObjectCompr) return;
            for (const auto& i : t.items) walk(*i);
            for (const auto& [k, v] : t.pairs) {
                walk(*k);
                walk(*v);
            }
        };
        for (const auto& e : body) {
            if (e.negated) continue;
            if (e.term) walk(*e.term);
            if (e.kind == ExprKind::kSomeIn) {
                if (e.key) walk(*e.key);
                walk(*e.val);
                walk(*e.coll);
            }
        }
    }

    Status insert(const Module& module, const RuleP& rule) {
        std::vector<std::string> path = module.package;
        std::size_t ground = 0;
        for (const auto& item : rule->ref) {
            if (item->kind != TermKind::kValue || !item->value.isString()) break;
            ++ground;
        }
        const bool fully_ground = ground == rule->ref.size();
        std::size_t take = ground;
        if (rule->kind == RuleKind::kComplete && !fully_ground) {
            rule->kind = RuleKind::kPartialObject;  // p[0] := 1: a non-string key
            rule->key = rule->ref.back();
        }
        if (rule->kind == RuleKind::kPartialObject && fully_ground) {
            // p["k"] := v with a constant key is a complete rule at p.k.
            rule->kind = RuleKind::kComplete;
        }
        const bool set_with_suffix = rule->kind == RuleKind::kPartialSet && !fully_ground;
        for (std::size_t i = 0; i < take; ++i) path.push_back(rule->ref[i]->value.asString());
        RuleNode* node = ensureNode(impl_.root, path);
        const std::string name = rule->ref.back()->kind == TermKind::kValue && rule->ref.back()->value.isString()
                                     ? rule->ref.back()->value.asString() : std::string();
        if (rule->kind == RuleKind::kFunction && !fully_ground) {
            return compileError(rule->loc, "function names must be plain references");
        }
        if (!name.empty() && name.starts_with("test_") && rule->kind == RuleKind::kComplete && fully_ground) {
            std::string full = "data";
            for (const auto& p : path) full += "." + p;
            if (std::find(impl_.tests.begin(), impl_.tests.end(), full) == impl_.tests.end()) impl_.tests.push_back(full);
        }
        if (rule->is_default) {
            if (rule->kind == RuleKind::kFunction) {
                node->default_rule = rule;  // default function value
                return {};
            }
            if (node->default_rule) return compileError(rule->loc, "multiple default rules " + name + " found");
            node->default_rule = rule;
            return {};
        }
        switch (rule->kind) {
            case RuleKind::kComplete: node->complete.push_back(rule); break;
            case RuleKind::kPartialSet:
                if (set_with_suffix) {
                    node->partial_object.push_back(rule);  // p[q] contains r: sets at the leaves
                    node->prefix_len = ground;
                } else {
                    node->partial_set.push_back(rule);
                }
                break;
            case RuleKind::kPartialObject:
                node->partial_object.push_back(rule);
                node->prefix_len = ground;
                break;
            case RuleKind::kFunction: node->functions.push_back(rule); break;
        }
        const int kinds = !node->complete.empty() + !node->partial_set.empty() + node->isFunction();
        if (kinds > 1) return compileError(rule->loc, "conflicting rules " + name + " found");
        return {};
    }

    Status rewriteRule(Rule& rule) {
        std::set<std::string> declared;
        std::set<std::string> outer;
        for (auto& arg : rule.args) {
            if (auto st = renameWildcards(arg); !st) return st;
            std::set<std::string> vs;
            allVars(*arg, vs);
            declared.insert(vs.begin(), vs.end());
        }
        // Head vars are bound by the body; they belong to the body's scope.
        bound_stack_.push_back(declared);
        auto body_st = rewriteBody(rule.body, outer, declared);
        bound_stack_.pop_back();
        if (!body_st) return body_st;
        std::set<std::string> body_vars;
        bodyVars(rule.body, body_vars);
        declared.insert(body_vars.begin(), body_vars.end());
        for (std::size_t i = 1; i < rule.ref.size(); ++i) {
            if (auto st = resolveTerm(rule.ref[i], declared, outer); !st) return st;
        }
        if (rule.kind == RuleKind::kPartialObject) rule.key = rule.ref.back();
        if (rule.key) {
            if (auto st = resolveTerm(rule.key, declared, outer); !st) return st;
        }
        if (rule.value) {
            if (auto st = resolveTerm(rule.value, declared, outer); !st) return st;
        }
        for (auto& arg : rule.args) {
            if (auto st = resolveTerm(arg, declared, outer); !st) return st;
        }
        indexRule(rule);
        // Every variable left in the head must be bound by the arguments or the body.
        std::set<std::string> head_vars;
        for (std::size_t i = 1; i < rule.ref.size(); ++i) allVarsNoClosures(*rule.ref[i], head_vars);
        if (rule.key) allVarsNoClosures(*rule.key, head_vars);
        if (rule.value) allVarsNoClosures(*rule.value, head_vars);
        for (const auto& v : head_vars) {
            if (v == "data" || v == "input" || v == "_" || v.starts_with("$_") || declared.contains(v)) continue;
            return compileError(rule.loc, fmt::format("var {} is unsafe", v));
        }
        return {};
    }

    /// Finds `input.a.b == <scalar>` (or `=`) in the body and records it as the rule's index.
    static void indexRule(Rule& rule) {
        if (rule.else_rule || rule.is_default || rule.kind == RuleKind::kFunction) return;
        for (const auto& e : rule.body) {
            if (e.kind != ExprKind::kTerm || e.negated || !e.withs.empty()) continue;
            const Term& t = *e.term;
            if (t.kind != TermKind::kCall || (t.name != "equal" && t.special != Term::Special::kEq) ||
                t.items.size() != 2) {
                continue;
            }
            for (int side = 0; side < 2; ++side) {
                const Term& ref = *t.items[side];
                const Term& val = *t.items[1 - side];
                if (ref.kind != TermKind::kRef || val.kind != TermKind::kValue) continue;
                if (ref.items[0]->kind != TermKind::kVar || ref.items[0]->name != "input") continue;
                if (val.value.isArray() || val.value.isObject() || val.value.isSet()) continue;
                std::vector<std::string> path;
                for (std::size_t i = 1; i < ref.items.size(); ++i) {
                    const Term& op = *ref.items[i];
                    if (op.kind != TermKind::kValue || !op.value.isString()) {
                        path.clear();
                        break;
                    }
                    path.push_back(op.value.asString());
                }
                if (path.empty()) continue;
                rule.index_path = std::move(path);
                rule.index_value = val.value;
                return;
            }
        }
    }

    Status renameWildcards(TermP& t) {
        if (t->kind == TermKind::kVar && t->name == "_") {
            t = makeVar(fmt::format("$_{}", counter_++), t->loc);
            return {};
        }
        for (auto& i : t->items) {
            if (auto st = renameWildcards(i); !st) return st;
        }
        for (auto& [k, v] : t->pairs) {
            if (auto st = renameWildcards(k); !st) return st;
            if (auto st = renameWildcards(v); !st) return st;
        }
        if (t->key) {
            if (auto st = renameWildcards(t->key); !st) return st;
        }
        if (t->val) {
            if (auto st = renameWildcards(t->val); !st) return st;
        }
        return {};
    }

    // Declared (local) vars of a body: := targets, some, some-in and every vars.
    static void declaredVars(const Body& body, std::set<std::string>& out) {
        for (const auto& e : body) {
            if (e.kind == ExprKind::kSome) out.insert(e.vars.begin(), e.vars.end());
            if (e.kind == ExprKind::kSomeIn) {
                if (e.key) bareVars(*e.key, out);
                bareVars(*e.val, out);
            }
            if (e.kind == ExprKind::kTerm && e.term->kind == TermKind::kCall && e.term->name == "assign") {
                bareVars(*e.term->items[0], out);
            }
        }
    }

    static void renameClosuresIn(TermP& t, const std::map<std::string, std::string>& renames) {
        if (t->kind == TermKind::kArrayCompr || t->kind == TermKind::kSetCompr || t->kind == TermKind::kObjectCompr) {
            renameTerm(t, renames);
            return;
        }
        for (auto& i : t->items) renameClosuresIn(i, renames);
        for (auto& [k, v] : t->pairs) {
            renameClosuresIn(k, renames);
            renameClosuresIn(v, renames);
        }
    }
    static void renameClosures(Expr& e, const std::map<std::string, std::string>& renames) {
        if (e.term) renameClosuresIn(e.term, renames);
        if (e.coll) renameClosuresIn(e.coll, renames);
    }

    static void renameTerm(TermP& t, const std::map<std::string, std::string>& renames) {
        if (t->kind == TermKind::kVar) {
            auto it = renames.find(t->name);
            if (it != renames.end()) t = makeVar(it->second, t->loc);
            return;
        }
        for (auto& i : t->items) renameTerm(i, renames);
        for (auto& [k, v] : t->pairs) {
            renameTerm(k, renames);
            renameTerm(v, renames);
        }
        if (t->key) renameTerm(t->key, renames);
        if (t->val) renameTerm(t->val, renames);
        if (t->body) renameBody(*t->body, renames);
    }
    static void renameBody(Body& body, const std::map<std::string, std::string>& renames) {
        for (auto& e : body) {
            if (e.term) renameTerm(e.term, renames);
            for (auto& v : e.vars) {
                auto it = renames.find(v);
                if (it != renames.end()) v = it->second;
            }
            if (e.key) renameTerm(e.key, renames);
            if (e.val) renameTerm(e.val, renames);
            if (e.coll) renameTerm(e.coll, renames);
            if (e.body) renameBody(*e.body, renames);
            for (auto& w : e.withs) renameTerm(w.value, renames);
        }
    }

    // outer: vars visible from enclosing bodies; declared: locals known so far.
    Status rewriteBody(Body& body, const std::set<std::string>& outer, std::set<std::string> declared,
                       std::map<std::string, std::string>* renames_out = nullptr) {
        for (auto& e : body) {
            if (e.term) {
                if (auto st = renameWildcards(e.term); !st) return st;
            }
            if (e.key) {
                if (auto st = renameWildcards(e.key); !st) return st;
            }
            if (e.val) {
                if (auto st = renameWildcards(e.val); !st) return st;
            }
            if (e.coll) {
                if (auto st = renameWildcards(e.coll); !st) return st;
            }
            for (auto& w : e.withs) {
                if (auto st = renameWildcards(w.value); !st) return st;
            }
        }
        // A var declared with := later in the body is a different variable inside comprehensions
        // that come before the declaration: give those their own name.
        for (std::size_t i = 0; i < body.size(); ++i) {
            const auto& e = body[i];
            if (e.kind != ExprKind::kTerm || e.term->kind != TermKind::kCall || e.term->name != "assign") continue;
            std::set<std::string> assigned;
            bareVars(*e.term->items[0], assigned);
            for (const auto& v : assigned) {
                const std::map<std::string, std::string> local{{v, fmt::format("{}${}", v, counter_++)}};
                for (std::size_t j = 0; j < i; ++j) renameClosures(body[j], local);
            }
        }
        std::set<std::string> here;
        declaredVars(body, here);
        std::map<std::string, std::string> renames;
        for (const auto& v : here) {
            if (outer.contains(v)) renames[v] = fmt::format("{}${}", v, counter_++);
        }
        if (!renames.empty()) renameBody(body, renames);
        if (renames_out != nullptr) *renames_out = renames;
        here.clear();
        declaredVars(body, here);
        declared.insert(here.begin(), here.end());
        std::set<std::string> visible = outer;
        for (const auto& e : body) {
            if (e.term) allVarsNoClosures(*e.term, visible);
            visible.insert(e.vars.begin(), e.vars.end());
            if (e.key) allVarsNoClosures(*e.key, visible);
            if (e.val) allVarsNoClosures(*e.val, visible);
            if (e.coll) allVarsNoClosures(*e.coll, visible);
        }
        const std::set<std::string> enclosing_bound = bound_stack_.empty() ? std::set<std::string>{} : bound_stack_.back();
        std::set<std::string> here_bound = enclosing_bound;
        for (const auto& e : body) {
            if (e.term) allVarsNoClosures(*e.term, here_bound);
            here_bound.insert(e.vars.begin(), e.vars.end());
            if (e.key) allVarsNoClosures(*e.key, here_bound);
            if (e.val) allVarsNoClosures(*e.val, here_bound);
            if (e.coll) allVarsNoClosures(*e.coll, here_bound);
        }
        bound_stack_.push_back(here_bound);
        for (auto& e : body) {
            if (auto st = rewriteExpr(e, declared, visible); !st) {
                bound_stack_.pop_back();
                return st;
            }
        }
        bound_stack_.pop_back();
        reorder(body, enclosing_bound);
        return {};
    }

    Status rewriteExpr(Expr& e, const std::set<std::string>& declared, const std::set<std::string>& visible) {
        if (e.term) {
            if (auto st = resolveTerm(e.term, declared, visible); !st) return st;
        }
        if (e.kind == ExprKind::kEvery) {
            std::set<std::string> inner_declared = declared;
            std::map<std::string, std::string> renames;
            std::set<std::string> ev;
            if (e.key) bareVars(*e.key, ev);
            bareVars(*e.val, ev);
            for (const auto& v : ev) {
                if (visible.contains(v)) renames[v] = fmt::format("{}${}", v, counter_++);
            }
            if (!renames.empty()) {
                if (e.key) renameTerm(e.key, renames);
                renameTerm(e.val, renames);
                renameBody(*e.body, renames);
            }
            ev.clear();
            if (e.key) bareVars(*e.key, ev);
            bareVars(*e.val, ev);
            inner_declared.insert(ev.begin(), ev.end());
            if (auto st = resolveTerm(e.coll, declared, visible); !st) return st;
            std::set<std::string> inner_outer = visible;
            inner_outer.insert(ev.begin(), ev.end());
            // Vars declared inside the every body shadow outer ones.
            if (auto st = rewriteBody(*e.body, visible, inner_declared); !st) return st;
        } else {
            if (e.key) {
                if (auto st = resolveTerm(e.key, declared, visible); !st) return st;
            }
            if (e.val) {
                if (auto st = resolveTerm(e.val, declared, visible); !st) return st;
            }
            if (e.coll) {
                if (auto st = resolveTerm(e.coll, declared, visible); !st) return st;
            }
        }
        for (auto& w : e.withs) {
            if (auto st = resolveWithTarget(w); !st) return st;
            if (auto st = resolveTerm(w.value, declared, visible); !st) return st;
        }
        return {};
    }

    Status resolveWithTarget(With& w) {
        // Targets stay as written: input…, data…, or a function name (var, ref or call name).
        TermP& t = w.target;
        if (t->kind == TermKind::kVar) {
            if (t->name == "input" || t->name == "data") {
                t = makeRef({t}, t->loc);
                return {};
            }
            if (rule_names_.contains(t->name) && module_ != nullptr) {
                std::vector<TermP> items{makeVar("data", t->loc)};
                for (const auto& p : module_->package) items.push_back(makeValue(Value::string(p), t->loc));
                items.push_back(makeValue(Value::string(t->name), t->loc));
                t = makeRef(std::move(items), t->loc);
                return {};
            }
            return {};  // a builtin name
        }
        if (t->kind == TermKind::kRef && t->items[0]->kind == TermKind::kVar) {
            const auto& head = t->items[0]->name;
            if (head == "input" || head == "data") return {};
            auto imp = imports_.find(head);
            if (imp != imports_.end()) {
                std::vector<TermP> items{makeVar(imp->second[0], t->loc)};
                for (std::size_t i = 1; i < imp->second.size(); ++i) items.push_back(makeValue(Value::string(imp->second[i]), t->loc));
                items.insert(items.end(), t->items.begin() + 1, t->items.end());
                t = makeRef(std::move(items), t->loc);
                return {};
            }
            if (rule_names_.contains(head) && module_ != nullptr) {
                std::vector<TermP> items{makeVar("data", t->loc)};
                for (const auto& p : module_->package) items.push_back(makeValue(Value::string(p), t->loc));
                items.push_back(makeValue(Value::string(head), t->loc));
                items.insert(items.end(), t->items.begin() + 1, t->items.end());
                t = makeRef(std::move(items), t->loc);
            }
        }
        return {};
    }

    // Var -> ref to a rule or import, unless local.
    std::optional<TermP> globalRef(const std::string& name, const Location& loc,
                                   const std::set<std::string>& declared) const {
        if (declared.contains(name)) return std::nullopt;
        if (name == "input" || name == "data") return makeRef({makeVar(name, loc)}, loc);
        auto imp = imports_.find(name);
        if (imp != imports_.end()) {
            std::vector<TermP> items{makeVar(imp->second[0], loc)};
            for (std::size_t i = 1; i < imp->second.size(); ++i) items.push_back(makeValue(Value::string(imp->second[i]), loc));
            return makeRef(std::move(items), loc);
        }
        if (module_ != nullptr && rule_names_.contains(name)) {
            std::vector<TermP> items{makeVar("data", loc)};
            for (const auto& p : module_->package) items.push_back(makeValue(Value::string(p), loc));
            items.push_back(makeValue(Value::string(name), loc));
            return makeRef(std::move(items), loc);
        }
        return std::nullopt;
    }

    Status resolveTerm(TermP& t, const std::set<std::string>& declared, const std::set<std::string>& visible) {
        switch (t->kind) {
            case TermKind::kValue: return {};
            case TermKind::kVar: {
                if (auto ref = globalRef(t->name, t->loc, declared)) t = *ref;
                return {};
            }
            case TermKind::kRef: {
                auto& head = t->items[0];
                if (head->kind == TermKind::kVar) {
                    if (auto ref = globalRef(head->name, head->loc, declared)) {
                        auto items = (*ref)->items;
                        items.insert(items.end(), t->items.begin() + 1, t->items.end());
                        t = makeRef(std::move(items), t->loc);
                    }
                } else if (auto st = resolveTerm(head, declared, visible); !st) {
                    return st;
                }
                for (std::size_t i = 1; i < t->items.size(); ++i) {
                    if (auto st = resolveTerm(t->items[i], declared, visible); !st) return st;
                }
                return {};
            }
            case TermKind::kCall: {
                for (auto& a : t->items) {
                    if (auto st = resolveTerm(a, declared, visible); !st) return st;
                }
                return resolveCall(*t);
            }
            case TermKind::kArray:
            case TermKind::kSet:
                for (auto& a : t->items) {
                    if (auto st = resolveTerm(a, declared, visible); !st) return st;
                }
                return {};
            case TermKind::kObject:
                for (auto& [k, v] : t->pairs) {
                    if (auto st = resolveTerm(k, declared, visible); !st) return st;
                    if (auto st = resolveTerm(v, declared, visible); !st) return st;
                }
                return {};
            case TermKind::kArrayCompr:
            case TermKind::kSetCompr:
            case TermKind::kObjectCompr: {
                std::map<std::string, std::string> renames;
                if (auto st = rewriteBody(*t->body, visible, declared, &renames); !st) return st;
                if (!renames.empty()) {
                    if (t->key) renameTerm(t->key, renames);
                    renameTerm(t->val, renames);
                }
                std::set<std::string> inner = declared;
                bodyVars(*t->body, inner);
                if (t->key) {
                    if (auto st = resolveTerm(t->key, inner, visible); !st) return st;
                }
                return resolveTerm(t->val, inner, visible);
            }
        }
        return {};
    }

    Status resolveCall(Term& call) {
        static const std::set<std::string> kSpecial = {"eq", "assign", "internal.member_2",
                                                       "internal.member_3", "walk", "print",
                                                       "internal.print", "trace"};
        if (kSpecial.contains(call.name)) {
            using S = Term::Special;
            call.special = call.name == "eq" || call.name == "assign" ? S::kEq
                         : call.name == "internal.member_2"          ? S::kMember2
                         : call.name == "internal.member_3"          ? S::kMember3
                         : call.name == "walk"                       ? S::kWalk
                                                                     : S::kPrint;
            return {};
        }
        // User functions: in this package, through an import, or absolute.
        std::vector<std::string> path = split(call.name);
        std::vector<std::string> candidates_path;
        if (path[0] == "data") {
            candidates_path.assign(path.begin() + 1, path.end());
        } else if (auto imp = imports_.find(path[0]); imp != imports_.end() && imp->second[0] == "data") {
            candidates_path.assign(imp->second.begin() + 1, imp->second.end());
            candidates_path.insert(candidates_path.end(), path.begin() + 1, path.end());
        } else if (module_ != nullptr && rule_names_.contains(path[0])) {
            candidates_path = module_->package;
            candidates_path.insert(candidates_path.end(), path.begin(), path.end());
        }
        if (!candidates_path.empty()) {
            const RuleNode* node = findNode(impl_.root, candidates_path);
            if (node != nullptr && node->isFunction()) {
                call.node = node;
                call.name = "data";
                for (const auto& p : candidates_path) call.name += "." + p;
                return {};
            }
            if (node != nullptr && node->hasRules()) {
                return compileError(call.loc, fmt::format("{} is a rule, not a function", call.name));
            }
        }
        const Builtin* b = findBuiltin(call.name);
        if (b == nullptr) return compileError(call.loc, fmt::format("undefined function {}", call.name));
        const auto n = static_cast<int>(call.items.size());
        if (n != b->arity && n != b->arity + 1) {
            return compileError(call.loc, fmt::format("{}: arity mismatch: {} arguments, the builtin takes {}",
                                                      call.name, n, b->arity));
        }
        call.builtin = b;
        return {};
    }

    // Greedy safety ordering: pick the first expression whose needed vars are bound.
    static void reorder(Body& body, const std::set<std::string>& outer) {
        if (body.size() < 2) return;
        std::set<std::string> used_elsewhere = outer;
        for (const auto& e : body) {
            if (e.term) allVarsNoClosures(*e.term, used_elsewhere);
            used_elsewhere.insert(e.vars.begin(), e.vars.end());
            if (e.key) allVarsNoClosures(*e.key, used_elsewhere);
            if (e.val) allVarsNoClosures(*e.val, used_elsewhere);
            if (e.coll) allVarsNoClosures(*e.coll, used_elsewhere);
        }
        std::set<std::string> bound = outer;
        std::vector<Expr> remaining = std::move(body);
        body.clear();
        while (!remaining.empty()) {
            std::size_t pick = remaining.size();
            for (std::size_t i = 0; i < remaining.size(); ++i) {
                if (ready(remaining[i], bound, used_elsewhere)) {
                    pick = i;
                    break;
                }
            }
            if (pick == remaining.size()) pick = 0;
            Expr e = std::move(remaining[pick]);
            remaining.erase(remaining.begin() + static_cast<std::ptrdiff_t>(pick));
            if (!e.negated && e.kind != ExprKind::kEvery) {
                std::set<std::string> vs;
                if (e.term) allVarsNoClosures(*e.term, vs);
                if (e.key) allVars(*e.key, vs);
                if (e.val) allVars(*e.val, vs);
                bound.insert(vs.begin(), vs.end());
            }
            body.push_back(std::move(e));
        }
    }

    static void allVarsNoClosures(const Term& t, std::set<std::string>& out) {
        if (t.kind == TermKind::kArrayCompr || t.kind == TermKind::kSetCompr || t.kind == TermKind::kObjectCompr) return;
        if (t.kind == TermKind::kVar) out.insert(t.name);
        for (const auto& i : t.items) allVarsNoClosures(*i, out);
        for (const auto& [k, v] : t.pairs) {
            allVarsNoClosures(*k, out);
            allVarsNoClosures(*v, out);
        }
    }

    static bool ready(const Expr& e, const std::set<std::string>& bound, const std::set<std::string>& body_vars) {
        std::set<std::string> need;
        for (const auto& w : e.withs) needVars(*w.value, body_vars, need, false);
        if (e.negated) {
            std::set<std::string> vs;
            allVars(*e.term, vs);
            for (const auto& v : vs) {
                if (bound.contains(v) || body_vars.contains(v)) need.insert(v);
            }
            // Vars only in this negation are local to it (wildcards).
            std::erase_if(need, [&](const std::string& v) { return !bound.contains(v) && v.starts_with("$_"); });
            return subset(need, bound);
        }
        switch (e.kind) {
            case ExprKind::kSome: return true;
            case ExprKind::kSomeIn: needVars(*e.coll, body_vars, need, false); return subset(need, bound);
            case ExprKind::kEvery: {
                needVars(*e.coll, body_vars, need, false);
                return subset(need, bound);
            }
            case ExprKind::kTerm: break;
        }
        const Term& t = *e.term;
        if (t.kind == TermKind::kCall && (t.name == "eq" || t.name == "assign")) {
            needVars(*t.items[0], body_vars, need, true);
            needVars(*t.items[1], body_vars, need, true);
            if (!subset(need, bound)) return false;
            std::set<std::string> a;
            std::set<std::string> b;
            bareVars(*t.items[0], a);
            bareVars(*t.items[1], b);
            return subset(a, bound) || subset(b, bound);
        }
        if (t.kind == TermKind::kCall && t.builtin != nullptr &&
            static_cast<int>(t.items.size()) == t.builtin->arity + 1) {
            for (std::size_t i = 0; i + 1 < t.items.size(); ++i) needVars(*t.items[i], body_vars, need, false);
            needVars(*t.items.back(), body_vars, need, true);
            return subset(need, bound);
        }
        if (t.kind == TermKind::kCall && (t.name == "internal.member_2" || t.name == "internal.member_3")) {
            needVars(*t.items.back(), body_vars, need, false);
            return subset(need, bound);
        }
        needVars(t, body_vars, need, false);
        return subset(need, bound);
    }

    Policy::Impl& impl_;
    const Module* module_ = nullptr;
    std::set<std::string> rule_names_;
    std::map<std::string, std::vector<std::string>> imports_;
    int counter_ = 0;
    // Vars bound before a nested body runs (the enclosing bodies' own vars, not their closures').
    std::vector<std::set<std::string>> bound_stack_;
};

}  // namespace

Result<std::shared_ptr<Policy::Impl>> compileModules(std::vector<Module> modules) {
    auto impl = std::make_shared<Policy::Impl>();
    impl->modules = std::move(modules);
    Compiler compiler(*impl);
    if (auto st = compiler.build(); !st) return fail(st.error());
    if (auto st = checkRecursion(impl->root); !st) return fail(st.error());
    return impl;
}

Result<std::shared_ptr<PreparedQuery::Impl>> compileQuery(std::shared_ptr<const Policy::Impl> policy,
                                                          Body body) {
    auto q = std::make_shared<PreparedQuery::Impl>();
    q->policy = policy;
    q->body = std::move(body);
    Compiler compiler(const_cast<Policy::Impl&>(*policy));
    if (auto st = compiler.rewriteQuery(q->body, q->vars); !st) return fail(st.error());
    return q;
}

}  // namespace edge::policy
