// The evaluator's virtual documents (rule trees into values), rule and function evaluation, and
// calls to builtins and user functions (with `with` replacements).
#include "shared/policy/evaluator_internal.hpp"

namespace edge::policy::eval_detail {

bool Evaluator::mayMatch(const Rule& rule) const {
    if (rule.index_path.empty()) return true;
    if (!input_) return false;  // input.… is undefined: the indexed expression fails
    const Value* v = &*input_;
    for (const auto& key : rule.index_path) {
        v = v->get(std::string_view(key));
        if (v == nullptr) return false;
    }
    return *v == rule.index_value;
}

Result<std::optional<Value>> Evaluator::nodeValue(const RuleNode* node) {
    for (const auto& [cached, value] : caches_.back()) {
        if (cached == node) return value;
    }
    if (++depth_ > kMaxDepth) {
        --depth_;
        return fail(PolicyErrc::kLimit, "evaluation nested too deeply (recursive rules?)");
    }
    auto v = computeNode(node);
    --depth_;
    if (!v) return v;
    caches_.back().emplace_back(node, *v);
    return v;
}

Result<std::optional<Value>> Evaluator::computeNode(const RuleNode* node) {
    if (!node->complete.empty() || (node->default_rule && node->partial_object.empty() && node->partial_set.empty() &&
                                    node->children.empty())) {
        return completeValue(node);
    }
    if (!node->partial_set.empty()) {
        Set s;
        for (const auto& rule : node->partial_set) {
            if (!mayMatch(*rule)) continue;
            Frame fr;
            auto r = evalBody(rule->body, 0, fr, [&]() -> Result<bool> {
                return evalTerm(*rule->key, fr, [&](const Value& v) -> Result<bool> {
                    s.insert(v);
                    return true;
                });
            });
            if (!r) return fail(r.error());
        }
        return std::optional<Value>(Value::set(std::move(s)));
    }
    Builder b;
    bool defined = !node->partial_object.empty() || !node->children.empty() || node->is_package;
    if (const Value* base = baseAt(node->path); base != nullptr) {
        if (!base->isObject()) return std::optional<Value>(*base);
        for (const auto& [key, val] : base->asObject()) {
            b.kids[key].leaf = val;
            b.kids[key].base = true;
        }
        defined = true;
    }
    for (const auto& rule : node->partial_object) {
        if (!mayMatch(*rule)) continue;
        const bool set_rule = rule->kind == RuleKind::kPartialSet;
        const Term& value_term = set_rule ? *rule->key : *rule->value;
        Frame fr;
        auto r = evalBody(rule->body, 0, fr, [&]() -> Result<bool> {
            std::vector<Value> keys;
            std::vector<TermP> suffix(rule->ref.begin() + static_cast<std::ptrdiff_t>(node->prefix_len), rule->ref.end());
            return evalItems(suffix, 0, keys, fr, [&](std::vector<Value>& ks) -> Result<bool> {
                return evalTerm(value_term, fr, [&](const Value& val) -> Result<bool> {
                    Builder* cur = &b;
                    for (std::size_t j = 0; j < ks.size(); ++j) {
                        if (cur->leaf || cur->set_leaf) return conflictAt(rule->loc, "object keys must be unique");
                        cur = &cur->kids[ks[j]];
                    }
                    if (set_rule) {
                        if (cur->leaf || !cur->kids.empty()) return conflictAt(rule->loc, "object keys must be unique");
                        if (!cur->set_leaf) cur->set_leaf.emplace();
                        cur->set_leaf->insert(val);
                        return true;
                    }
                    if (cur->leaf && !(*cur->leaf == val)) return conflictAt(rule->loc, "object keys must be unique");
                    if (!cur->kids.empty() || cur->set_leaf) return conflictAt(rule->loc, "object keys must be unique");
                    cur->leaf = val;
                    return true;
                });
            });
        });
        if (!r) return fail(r.error());
    }
    for (const auto& [name, child] : node->children) {
        if (child->isFunction() && !child->hasRules()) continue;
        std::vector<std::string> child_path = child->path;
        std::optional<Value> cv;
        if (overridden(child_path)) {
            if (const Value* o = baseAt(child_path)) cv = *o;
        } else {
            auto v = nodeValue(child.get());
            if (!v) return fail(v.error());
            cv = *v;
        }
        if (!cv) continue;
        auto& slot = b.kids[Value::string(name)];
        if (!slot.merge(*cv)) {
            const Location where = !node->partial_object.empty() ? node->partial_object.front()->loc : Location{};
            return conflictAt(where, "object keys must be unique");
        }
    }
    if (!defined) return std::optional<Value>{};
    return std::optional<Value>(b.freeze());
}

Result<std::optional<Value>> Evaluator::completeValue(const RuleNode* node) {
    std::optional<Value> result;
    for (const auto& rule : node->complete) {
        if (!mayMatch(*rule)) continue;
        for (const Rule* r = rule.get(); r != nullptr; r = r->else_rule.get()) {
            bool produced = false;
            Frame fr;
            auto rr = evalBody(r->body, 0, fr, [&]() -> Result<bool> {
                return evalTerm(*r->value, fr, [&](const Value& v) -> Result<bool> {
                    produced = true;
                    if (result && !(*result == v)) {
                        return conflictAt(r->loc, "complete rules must not produce multiple outputs");
                    }
                    result = v;
                    return true;
                });
            });
            if (!rr) return fail(rr.error());
            if (produced) break;
        }
    }
    if (!result && node->default_rule) return defaultValue(node);
    return result;
}

Result<std::optional<Value>> Evaluator::defaultValue(const RuleNode* node) {
    std::optional<Value> result;
    Frame fr;
    auto rr = evalTerm(*node->default_rule->value, fr, [&](const Value& v) -> Result<bool> {
        result = v;
        return false;
    });
    if (!rr) return fail(rr.error());
    return result;
}

Result<bool> Evaluator::evalCall(const Term& call, Frame& f, OnValue k) {
    if (call.special == Term::Special::kMember2 || call.special == Term::Special::kMember3) {
        std::vector<Value> acc;
        return evalItems(call.items.data(), call.items.size(), 0, acc, f, [&](std::vector<Value>& args) -> Result<bool> {
            const Value& coll = args.back();
            bool found = false;
            auto r = forEachElement(coll, [&](const Value& key, const Value& val) -> Result<bool> {
                if (args.size() == 2 ? val == args[0] : (key == args[0] && val == args[1])) {
                    found = true;
                    return false;
                }
                return true;
            });
            if (!r) return r;
            return k(Value::boolean(found));
        });
    }
    if (call.special == Term::Special::kPrint) return k(Value::boolean(true));
    if (call.special == Term::Special::kWalk && call.items.size() == 1) {
        return evalTerm(*call.items[0], f, [&](const Value& root) -> Result<bool> {
            Array path;
            return walkAll(root, path, k);
        });
    }
    return callWithArgs(call, call.items.size(), f, k);
}

Result<bool> Evaluator::callWithArgs(const Term& call, std::size_t n, Frame& f, OnValue k) {
    Scratch<Value> scratch;
    std::vector<Value>& acc = *scratch;
    return evalItems(call.items.data(), n, 0, acc, f, [&](std::vector<Value>& args) -> Result<bool> {
        return invoke(call.name, call.builtin, call.node, args, k, call.loc);
    });
}

Result<bool> Evaluator::invoke(const std::string& name, const Builtin* builtin, const RuleNode* node, std::vector<Value>& args,
                    OnValue k, const Location& loc) {
    for (auto it = fn_overrides_.rbegin(); it != fn_overrides_.rend(); ++it) {
        if (it->first != name) continue;
        const Value replacement = it->second;
        if (replacement.isString() && replacement.asString().starts_with("\x01" "fn:")) {
            const std::string target = replacement.asString().substr(4);
            const Builtin* b = findBuiltin(target);
            const RuleNode* n = nullptr;
            if (target.starts_with("data.")) {
                std::vector<std::string> path;
                std::size_t start = 5;
                while (true) {
                    auto dot = target.find('.', start);
                    path.push_back(target.substr(start, dot - start));
                    if (dot == std::string::npos) break;
                    start = dot + 1;
                }
                n = findPathNode(path);
                b = nullptr;
            }
            // Avoid re-applying this same replacement while calling its target.
            auto saved = fn_overrides_;
            fn_overrides_.erase(std::next(it).base());
            auto r = invoke(target, b, n, args, k, loc);
            fn_overrides_ = std::move(saved);
            return r;
        }
        return k(replacement);
    }
    if (builtin != nullptr) {
        auto r = builtin->fn(std::span<const Value>(args), bctx_);
        if (!r) {
            // Builtin errors make the call undefined unless strict errors were asked for.
            if (opt_.strict_builtin_errors) {
                if (r.error().code().category() == policyCategory()) {
                    return evalError(static_cast<PolicyErrc>(r.error().code().value()), loc, r.error().what());
                }
                return fail(r.error());
            }
            return true;
        }
        if (!*r) return true;
        return k(**r);
    }
    if (node != nullptr) return callFunction(node, args, k);
    return fail(PolicyErrc::kCompile, fmt::format("undefined function {}", name));
}

Result<bool> Evaluator::callFunction(const RuleNode* node, const std::vector<Value>& args, OnValue k) {
    if (++depth_ > kMaxDepth) {
        --depth_;
        return fail(PolicyErrc::kLimit, "function calls nested too deeply (recursion?)");
    }
    std::optional<Value> result;
    for (const auto& rule : node->functions) {
        if (rule->args.size() != args.size()) continue;
        for (const Rule* r = rule.get(); r != nullptr; r = r->else_rule.get()) {
            bool produced = false;
            Frame fr;
            auto rr = bindArgs(*r, args, 0, fr, [&]() -> Result<bool> {
                return evalBody(r->body, 0, fr, [&]() -> Result<bool> {
                    return evalTerm(*r->value, fr, [&](const Value& v) -> Result<bool> {
                        produced = true;
                        if (result && !(*result == v)) {
                            return conflictAt(r->loc, "functions must not produce multiple outputs for same inputs");
                        }
                        result = v;
                        return true;
                    });
                });
            });
            if (!rr) {
                --depth_;
                return fail(rr.error());
            }
            if (produced) break;
        }
    }
    if (!result && node->default_rule) {
        auto d = defaultValue(node);
        if (!d) {
            --depth_;
            return fail(d.error());
        }
        result = std::move(*d);
    }
    --depth_;
    if (!result) return true;
    return k(*result);
}

Result<bool> Evaluator::bindArgs(const Rule& r, const std::vector<Value>& args, std::size_t i, Frame& fr, Next next) {
    if (i == args.size()) return next();
    return unifyValue(*r.args[i], args[i], fr, [&]() -> Result<bool> { return bindArgs(r, args, i + 1, fr, next); });
}

Result<bool> Evaluator::evalWalk(const Term& t, Frame& f, Next next) {
    return evalTerm(*t.items[0], f, [&](const Value& root) -> Result<bool> {
        Array path;
        return walkAll(root, path, [&](const Value& pair) -> Result<bool> {
            return unifyValue(*t.items[1], pair, f, next);
        });
    });
}

Result<bool> Evaluator::walkAll(const Value& v, Array& path, OnValue k) {
    auto r = k(Value::array({Value::array(path), v}));
    if (!r || !*r) return r;
    return forEachElement(v, [&](const Value& key, const Value& child) -> Result<bool> {
        path.push_back(key);
        auto rr = walkAll(child, path, k);
        path.pop_back();
        return rr;
    });
}

}  // namespace edge::policy::eval_detail
