#include "shared/policy/evaluator.hpp"

#include "shared/policy/evaluator_internal.hpp"

namespace edge::policy {
namespace eval_detail {

Result<std::optional<Value>> Evaluator::runValue(const PreparedQuery::Impl& q, const std::string& result_var) {
    Frame frame;
    std::optional<Value> out;
    auto r = evalBody(q.body, 0, frame, [&]() -> Result<bool> {
        if (const Value* v = frame.find(result_var)) {
            out = *v;
            return false;  // the first solution is the value
        }
        return true;
    });
    if (!r) return fail(r.error());
    return out;
}

Result<ResultSet> Evaluator::run(const PreparedQuery::Impl& q, const std::string& result_var) {
    Frame frame;
    ResultSet out;
    auto r = evalBody(q.body, 0, frame, [&]() -> Result<bool> {
        Bindings b;
        for (const auto& name : q.vars) {
            if (const Value* v = frame.find(name)) b.emplace(name, *v);
        }
        if (!result_var.empty()) {
            if (const Value* v = frame.find(result_var)) b.emplace(result_var, *v);
        }
        if (std::find(out.begin(), out.end(), b) == out.end()) out.push_back(std::move(b));
        return true;
    });
    if (!r) return fail(r.error());
    return out;
}

Status Evaluator::tick() {
    ++steps_;
    if (opt_.max_steps != 0 && steps_ > opt_.max_steps) {
        return fail(PolicyErrc::kLimit, fmt::format("evaluation exceeded its budget of {} steps", opt_.max_steps));
    }
    if (deadline_ && (steps_ & 1023) == 0 && clock_.steady() > *deadline_) {
        return fail(PolicyErrc::kLimit, "evaluation exceeded its deadline");
    }
    return {};
}

Result<bool> Evaluator::evalBody(const Body& body, std::size_t i, Frame& f, Next next) {
    // One step per expression entered for each partial solution: loops count every turn.
    if (auto st = tick(); !st) return fail(st.error());
    if (i == body.size()) return next();
    return evalExpr(body[i], f, [&]() -> Result<bool> { return evalBody(body, i + 1, f, next); }, true);
}

Result<bool> Evaluator::evalExpr(const Expr& e, Frame& f, Next next, bool apply_withs) {
    if (apply_withs && !e.withs.empty()) return evalWith(e, f, next);
    if (e.negated) {
        bool found = false;
        const auto m = f.mark();
        auto r = evalPositive(e, f, [&]() -> Result<bool> {
            found = true;
            return false;
        });
        f.undo(m);
        if (!r) return r;
        if (found) return true;
        return next();
    }
    return evalPositive(e, f, next);
}

Result<bool> Evaluator::evalPositive(const Expr& e, Frame& f, Next next) {
    switch (e.kind) {
        case ExprKind::kSome: return next();
        case ExprKind::kSomeIn:
            return evalTerm(*e.coll, f, [&](const Value& coll) -> Result<bool> {
                return forEachElement(coll, [&](const Value& k, const Value& v) -> Result<bool> {
                    const auto m = f.mark();
                    Result<bool> r = e.key ? unifyValue(*e.key, k, f, [&]() -> Result<bool> {
                        return unifyValue(*e.val, v, f, next);
                    })
                                           : unifyValue(*e.val, v, f, next);
                    f.undo(m);
                    return r;
                });
            });
        case ExprKind::kEvery:
            return evalTerm(*e.coll, f, [&](const Value& coll) -> Result<bool> {
                if (!coll.isArray() && !coll.isObject() && !coll.isSet()) return true;
                bool all = true;
                auto r = forEachElement(coll, [&](const Value& k, const Value& v) -> Result<bool> {
                    bool ok = false;
                    const auto m = f.mark();
                    auto body = [&]() -> Result<bool> {
                        return evalBody(*e.body, 0, f, [&]() -> Result<bool> {
                            ok = true;
                            return false;
                        });
                    };
                    Result<bool> rr = e.key ? unifyValue(*e.key, k, f, [&]() -> Result<bool> {
                        return unifyValue(*e.val, v, f, body);
                    })
                                            : unifyValue(*e.val, v, f, body);
                    f.undo(m);
                    if (!rr) return rr;
                    if (!ok) {
                        all = false;
                        return false;
                    }
                    return true;
                });
                if (!r) return r;
                if (!all) return true;
                return next();
            });
        case ExprKind::kTerm: break;
    }
    const Term& t = *e.term;
    if (t.kind == TermKind::kCall) {
        if (t.special == Term::Special::kEq) return unify(*t.items[0], *t.items[1], f, next);
        if (t.special == Term::Special::kWalk && t.items.size() == 2) return evalWalk(t, f, next);
        if (isRelationCall(t)) {
            const auto n = t.items.size() - 1;
            return callWithArgs(t, n, f, [&](const Value& result) -> Result<bool> {
                return unifyValue(*t.items.back(), result, f, next);
            });
        }
    }
    return evalTerm(t, f, [&](const Value& v) -> Result<bool> {
        if (v.isFalse()) return true;
        return next();
    });
}

bool Evaluator::isRelationCall(const Term& t) {
    if (t.builtin != nullptr) return static_cast<int>(t.items.size()) == t.builtin->arity + 1;
    if (t.node != nullptr && t.node->isFunction()) {
        const auto& first = !t.node->functions.empty() ? t.node->functions[0] : t.node->default_rule;
        return t.items.size() == first->args.size() + 1;
    }
    return false;
}

Result<bool> Evaluator::evalWith(const Expr& e, Frame& f, Next next) {
    // Evaluate the replacement values first (each must be defined).
    std::vector<Value> values;
    for (const auto& w : e.withs) {
        std::optional<Value> v;
        if (w.value->kind == TermKind::kVar && !f.find(w.value->name) && isFunctionName(w.value->name)) {
            v = Value::string("\x01" "fn:" + w.value->name);
        } else if (w.value->kind == TermKind::kRef &&
                   (refIsFunction(*w.value) || (w.value->items[0]->kind == TermKind::kVar &&
                                                !f.find(w.value->items[0]->name) &&
                                                isFunctionName(refPath(*w.value))))) {
            v = Value::string("\x01" "fn:" + refPath(*w.value));
        } else {
            auto r = evalTerm(*w.value, f, [&](const Value& x) -> Result<bool> {
                v = x;
                return false;
            });
            if (!r) return r;
        }
        if (!v) return true;
        values.push_back(std::move(*v));
    }
    struct Saved {
        std::optional<Value> input;
        Value data;
        std::size_t overrides;
        std::size_t fns;
    };
    auto apply = [&]() -> Saved {
        Saved s{input_, data_, data_overrides_.size(), fn_overrides_.size()};
        for (std::size_t i = 0; i < e.withs.size(); ++i) {
            const Term& target = *e.withs[i].target;
            if (target.kind == TermKind::kRef && target.items[0]->kind == TermKind::kVar &&
                (target.items[0]->name == "input" || target.items[0]->name == "data")) {
                std::vector<std::string> path;
                for (std::size_t j = 1; j < target.items.size(); ++j) {
                    const auto& op = *target.items[j];
                    path.push_back(op.kind == TermKind::kValue && op.value.isString() ? op.value.asString()
                                                                                      : op.value.toJson());
                }
                if (target.items[0]->name == "input") {
                    input_ = setPath(input_.value_or(Value::emptyObject()), path, 0, values[i]);
                } else {
                    const RuleNode* node = findPathNode(path);
                    if (node != nullptr && node->isFunction()) {
                        fn_overrides_.emplace_back(refPath(target), values[i]);
                    } else {
                        data_ = setPath(data_, path, 0, values[i]);
                        data_overrides_.push_back(path);
                    }
                }
            } else {
                const std::string name = target.kind == TermKind::kVar ? target.name : refPath(target);
                fn_overrides_.emplace_back(name, values[i]);
            }
        }
        caches_.emplace_back();
        return s;
    };
    auto restore = [&](Saved& s) {
        std::swap(input_, s.input);
        std::swap(data_, s.data);
        caches_.pop_back();
    };
    Saved saved = apply();
    auto overrides_now = data_overrides_;
    auto fns_now = fn_overrides_;
    auto r = evalExpr(e, f, [&]() -> Result<bool> {
        // The modifiers apply to this expression only: lift them around the rest.
        Saved inner{input_, data_, 0, 0};
        input_ = saved.input;
        data_ = saved.data;
        data_overrides_.resize(saved.overrides);
        fn_overrides_.resize(saved.fns);
        auto cache = std::move(caches_.back());
        caches_.pop_back();
        auto rr = next();
        caches_.push_back(std::move(cache));
        input_ = inner.input;
        data_ = inner.data;
        data_overrides_ = overrides_now;
        fn_overrides_ = fns_now;
        return rr;
    }, false);
    restore(saved);
    data_overrides_.resize(saved.overrides);
    fn_overrides_.resize(saved.fns);
    return r;
}

bool Evaluator::refIsFunction(const Term& ref) const {
    if (ref.items[0]->kind != TermKind::kVar || ref.items[0]->name != "data") return false;
    std::vector<std::string> path;
    for (std::size_t i = 1; i < ref.items.size(); ++i) {
        if (ref.items[i]->kind != TermKind::kValue || !ref.items[i]->value.isString()) return false;
        path.push_back(ref.items[i]->value.asString());
    }
    const RuleNode* node = findPathNode(path);
    return node != nullptr && node->isFunction();
}

std::string Evaluator::refPath(const Term& ref) {
    if (ref.kind == TermKind::kVar) return ref.name;
    std::string s = ref.items[0]->kind == TermKind::kVar ? ref.items[0]->name : "?";
    for (std::size_t i = 1; i < ref.items.size(); ++i) {
        const auto& op = *ref.items[i];
        s += "." + (op.kind == TermKind::kValue && op.value.isString() ? op.value.asString() : op.value.toJson());
    }
    return s;
}

const RuleNode* Evaluator::findPathNode(const std::vector<std::string>& path) const {
    const RuleNode* node = &pol_.root;
    for (const auto& p : path) {
        node = node->child(p);
        if (node == nullptr) return nullptr;
    }
    return node;
}

bool Evaluator::hasUnbound(const Term& t, const Frame& f) const {
    switch (t.kind) {
        case TermKind::kVar: return f.find(t.name) == nullptr;
        case TermKind::kArray:
        case TermKind::kSet:
            for (const auto& i : t.items) {
                if (hasUnbound(*i, f)) return true;
            }
            return false;
        case TermKind::kObject:
            for (const auto& [k, v] : t.pairs) {
                if (hasUnbound(*k, f) || hasUnbound(*v, f)) return true;
            }
            return false;
        default: return false;
    }
}

Result<bool> Evaluator::evalTerm(const Term& t, Frame& f, OnValue k) {
    switch (t.kind) {
        case TermKind::kValue: return k(t.value);
        case TermKind::kVar: {
            if (const Value* v = f.find(t.name)) {
                const Value copy = *v;  // later binds may move the frame's storage
                return k(copy);
            }
            return fail(PolicyErrc::kCompile, fmt::format("{}: var {} is unsafe", t.loc.str(), t.name));
        }
        case TermKind::kRef: return evalRef(t, f, k);
        case TermKind::kArray: {
            std::vector<Value> acc;
            return evalItems(t.items, 0, acc, f, [&](std::vector<Value>& items) -> Result<bool> {
                return k(Value::array(items));
            });
        }
        case TermKind::kSet: {
            std::vector<Value> acc;
            return evalItems(t.items, 0, acc, f, [&](std::vector<Value>& items) -> Result<bool> {
                return k(Value::set(Set(items.begin(), items.end())));
            });
        }
        case TermKind::kObject: {
            std::vector<TermP> flat;
            for (const auto& [key, val] : t.pairs) {
                flat.push_back(key);
                flat.push_back(val);
            }
            std::vector<Value> acc;
            return evalItems(flat, 0, acc, f, [&](std::vector<Value>& items) -> Result<bool> {
                Object o;
                for (std::size_t i = 0; i + 1 < items.size(); i += 2) o.insert_or_assign(items[i], items[i + 1]);
                return k(Value::object(std::move(o)));
            });
        }
        case TermKind::kArrayCompr:
        case TermKind::kSetCompr:
        case TermKind::kObjectCompr: return evalComprehension(t, f, k);
        case TermKind::kCall: return evalCall(t, f, k);
    }
    return true;
}

Result<bool> Evaluator::evalItems(const std::vector<TermP>& items, std::size_t i, std::vector<Value>& acc, Frame& f,
                       FnRef<Result<bool>(std::vector<Value>&)> k) {
    return evalItems(items.data(), items.size(), i, acc, f, k);
}

Result<bool> Evaluator::evalItems(const TermP* items, std::size_t n, std::size_t i, std::vector<Value>& acc, Frame& f,
                       FnRef<Result<bool>(std::vector<Value>&)> k) {
    if (i == n) return k(acc);
    const Term& t = *items[i];
    if (t.kind == TermKind::kValue) {  // the common case: no enumeration, no callback frame
        acc.push_back(t.value);
        auto r = evalItems(items, n, i + 1, acc, f, k);
        acc.pop_back();
        return r;
    }
    return evalTerm(t, f, [&](const Value& v) -> Result<bool> {
        acc.push_back(v);
        auto r = evalItems(items, n, i + 1, acc, f, k);
        acc.pop_back();
        return r;
    });
}

Result<bool> Evaluator::evalComprehension(const Term& t, Frame& f, OnValue k) {
    const auto m = f.mark();
    Array arr;
    Set set;
    Object obj;
    std::optional<Error> err;
    auto r = evalBody(*t.body, 0, f, [&]() -> Result<bool> {
        if (t.kind == TermKind::kObjectCompr) {
            return evalTerm(*t.key, f, [&](const Value& key) -> Result<bool> {
                return evalTerm(*t.val, f, [&](const Value& val) -> Result<bool> {
                    auto it = obj.find(key);
                    if (it != obj.end() && !(it->second == val)) {
                        return conflictAt(t.loc, "object keys must be unique");
                    }
                    obj.insert_or_assign(key, val);
                    return true;
                });
            });
        }
        return evalTerm(*t.val, f, [&](const Value& v) -> Result<bool> {
            if (t.kind == TermKind::kArrayCompr) arr.push_back(v);
            else set.insert(v);
            return true;
        });
    });
    f.undo(m);
    if (!r) return r;
    if (t.kind == TermKind::kArrayCompr) return k(Value::array(std::move(arr)));
    if (t.kind == TermKind::kSetCompr) return k(Value::set(std::move(set)));
    return k(Value::object(std::move(obj)));
}

Result<bool> Evaluator::unify(const Term& a, const Term& b, Frame& f, Next next) {
    if (unboundVar(a, f)) {
        if (unboundVar(b, f)) {
            return fail(PolicyErrc::kCompile, fmt::format("{}: var {} is unsafe", a.loc.str(), a.name));
        }
        return evalTerm(b, f, [&](const Value& v) -> Result<bool> { return unifyValue(a, v, f, next); });
    }
    if (unboundVar(b, f)) {
        return evalTerm(a, f, [&](const Value& v) -> Result<bool> { return unifyValue(b, v, f, next); });
    }
    if (a.kind == TermKind::kArray && b.kind == TermKind::kArray) {
        if (a.items.size() != b.items.size()) return true;
        return unifyItems(a.items, b.items, 0, f, next);
    }
    if (a.kind == TermKind::kObject && b.kind == TermKind::kObject && hasUnbound(a, f) && hasUnbound(b, f)) {
        if (a.pairs.size() != b.pairs.size()) return true;
        std::vector<TermP> lhs;
        std::vector<TermP> rhs;
        for (const auto& [ka, va] : a.pairs) {
            if (ka->kind != TermKind::kValue) return evalError(PolicyErrc::kCompile, a.loc, "object keys must be constants to unify");
            const TermP* match = nullptr;
            for (const auto& [kb, vb] : b.pairs) {
                if (kb->kind == TermKind::kValue && kb->value == ka->value) match = &vb;
            }
            if (match == nullptr) return true;
            lhs.push_back(va);
            rhs.push_back(*match);
        }
        return unifyItems(lhs, rhs, 0, f, next);
    }
    if (hasUnbound(a, f)) {
        return evalTerm(b, f, [&](const Value& v) -> Result<bool> { return unifyValue(a, v, f, next); });
    }
    return evalTerm(a, f, [&](const Value& v) -> Result<bool> { return unifyValue(b, v, f, next); });
}

Result<bool> Evaluator::unifyItems(const std::vector<TermP>& a, const std::vector<TermP>& b, std::size_t i, Frame& f,
                        Next next) {
    if (i == a.size()) return next();
    return unify(*a[i], *b[i], f, [&]() -> Result<bool> { return unifyItems(a, b, i + 1, f, next); });
}

Result<bool> Evaluator::unifyValue(const Term& t, const Value& v, Frame& f, Next next) {
    switch (t.kind) {
        case TermKind::kVar: {
            if (const Value* bound = f.find(t.name)) return *bound == v ? next() : Result<bool>(true);
            const auto m = f.mark();
            f.bind(t.name, v);
            auto r = next();
            f.undo(m);
            return r;
        }
        case TermKind::kArray: {
            if (!v.isArray() || v.asArray().size() != t.items.size()) return true;
            return unifyArray(t.items, v.asArray(), 0, f, next);
        }
        case TermKind::kObject: {
            if (!v.isObject() || v.asObject().size() != t.pairs.size()) return true;
            return unifyObject(t, v, 0, f, next);
        }
        default:
            return evalTerm(t, f, [&](const Value& tv) -> Result<bool> {
                return tv == v ? next() : Result<bool>(true);
            });
    }
}

Result<bool> Evaluator::unifyArray(const std::vector<TermP>& items, const Array& values, std::size_t i, Frame& f, Next next) {
    if (i == items.size()) return next();
    return unifyValue(*items[i], values[i], f, [&]() -> Result<bool> {
        return unifyArray(items, values, i + 1, f, next);
    });
}

Result<bool> Evaluator::unifyObject(const Term& t, const Value& v, std::size_t i, Frame& f, Next next) {
    if (i == t.pairs.size()) return next();
    return evalTerm(*t.pairs[i].first, f, [&](const Value& key) -> Result<bool> {
        const Value* child = v.get(key);
        if (child == nullptr) return true;
        return unifyValue(*t.pairs[i].second, *child, f, [&]() -> Result<bool> {
            return unifyObject(t, v, i + 1, f, next);
        });
    });
}

Result<bool> Evaluator::evalRef(const Term& ref, Frame& f, OnValue k) {
    const Term& head = *ref.items[0];
    if (head.kind == TermKind::kVar) {
        if (head.name == "data" && f.find(head.name) == nullptr) {
            std::vector<std::string> path;
            return walkData(&pol_.root, path, ref, 1, f, k);
        }
        if (head.name == "input" && f.find(head.name) == nullptr) {
            if (!input_) return true;
            const Value in = *input_;
            return walkValue(in, ref, 1, f, k);
        }
    }
    return evalTerm(head, f, [&](const Value& v) -> Result<bool> { return walkValue(v, ref, 1, f, k); });
}

Result<bool> Evaluator::walkValue(const Value& v, const Term& ref, std::size_t i, Frame& f, OnValue k, bool stored) {
    if (i == ref.items.size()) return k(v);
    const Term& op = *ref.items[i];
    if (op.kind == TermKind::kValue) {
        const Value* child = v.get(op.value);
        // Stored documents have string keys: data.a[1] finds "1".
        if (child == nullptr && stored && op.value.isNumber()) child = v.get(Value::string(op.value.toJson()));
        if (child == nullptr) return true;
        return walkValue(*child, ref, i + 1, f, k, stored);
    }
    if (hasUnbound(op, f)) {
        return forEachElement(v, [&](const Value& key, const Value& child) -> Result<bool> {
            const auto m = f.mark();
            auto r = unifyValue(op, key, f, [&]() -> Result<bool> { return walkValue(child, ref, i + 1, f, k); });
            f.undo(m);
            return r;
        });
    }
    return evalTerm(op, f, [&](const Value& key) -> Result<bool> {
        const Value* child = v.get(key);
        if (child == nullptr) return true;
        return walkValue(*child, ref, i + 1, f, k);
    });
}

const Value* Evaluator::baseAt(const std::vector<std::string>& path) const {
    const Value* v = &data_;
    for (const auto& p : path) {
        v = v->get(Value::string(p));
        if (v == nullptr) return nullptr;
    }
    return v;
}

bool Evaluator::overridden(const std::vector<std::string>& path) const {
    for (const auto& o : data_overrides_) {
        if (o.size() <= path.size() && std::equal(o.begin(), o.end(), path.begin())) return true;
    }
    return false;
}

Result<bool> Evaluator::walkData(const RuleNode* node, std::vector<std::string>& path, const Term& ref, std::size_t i,
                      Frame& f, OnValue k) {
    if (node == nullptr || overridden(path)) {
        const Value* base = baseAt(path);
        if (base == nullptr) return true;
        const Value copy = *base;
        return walkValue(copy, ref, i, f, k, true);
    }
    if (node->hasRules() || (i == ref.items.size() && node->isFunction())) {
        if (node->isFunction()) return true;
        auto v = nodeValue(node);
        if (!v) return fail(v.error());
        if (!*v) return true;
        const Value value = **v;
        return walkValue(value, ref, i, f, k);
    }
    if (i == ref.items.size()) {
        auto v = nodeValue(node);
        if (!v) return fail(v.error());
        if (!*v) return true;
        return k(**v);
    }
    const Term& op = *ref.items[i];
    auto step = [&](const Value& key) -> Result<bool> {
        if (key.isString()) {
            if (const RuleNode* child = node->child(key.asString())) {
                path.push_back(key.asString());
                auto r = walkData(child, path, ref, i + 1, f, k);
                path.pop_back();
                return r;
            }
        }
        const Value* base = baseAt(path);
        if (base == nullptr) return true;
        const Value* child = base->get(key);
        // Stored documents have string keys: data[2] finds "2".
        if (child == nullptr && key.isNumber()) child = base->get(Value::string(key.toJson()));
        if (child == nullptr) return true;
        const Value copy = *child;
        return walkValue(copy, ref, i + 1, f, k, true);
    };
    if (hasUnbound(op, f)) {
        Set keys;
        for (const auto& [name, child] : node->children) keys.insert(Value::string(name));
        if (const Value* base = baseAt(path); base != nullptr && base->isObject()) {
            for (const auto& [key, val] : base->asObject()) keys.insert(key);
        }
        for (const auto& key : keys) {
            const auto m = f.mark();
            auto r = unifyValue(op, key, f, [&]() -> Result<bool> { return step(key); });
            f.undo(m);
            if (!r || !*r) return r;
        }
        return true;
    }
    return evalTerm(op, f, step);
}

}  // namespace eval_detail

Result<ResultSet> evaluate(const PreparedQuery::Impl& query, const EvalOptions& options, const std::string& result_var) {
    eval_detail::Evaluator ev(*query.policy, options);
    return ev.run(query, result_var);
}

Result<std::optional<Value>> evaluateValue(const PreparedQuery::Impl& query, const EvalOptions& options,
                                           const std::string& result_var) {
    eval_detail::Evaluator ev(*query.policy, options);
    return ev.runValue(query, result_var);
}

}  // namespace edge::policy

