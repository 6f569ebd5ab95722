#include "shared/policy/evaluator.hpp"

#include <fmt/format.h>

#include "shared/core/clock.hpp"
#include "shared/policy/builtins.hpp"
#include "shared/policy/fn_ref.hpp"

namespace edge::policy {
namespace {

using Next = FnRef<Result<bool>()>;
using OnValue = FnRef<Result<bool>(const Value&)>;

constexpr int kMaxDepth = 2000;

/// Per-thread recycling of the small vectors every evaluation needs (frames, call arguments), so
/// a warm evaluation allocates only for the values it builds.
template <class T>
class Scratch {
public:
    Scratch() : v_(acquire()) {}
    ~Scratch() {
        v_->clear();
        if (pool().size() < 64) pool().push_back(std::move(v_));
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    std::vector<T>& operator*() { return *v_; }
    std::vector<T>* operator->() { return v_.get(); }
    const std::vector<T>* operator->() const { return v_.get(); }

private:
    static std::vector<std::unique_ptr<std::vector<T>>>& pool() {
        thread_local std::vector<std::unique_ptr<std::vector<T>>> p;
        return p;
    }
    static std::unique_ptr<std::vector<T>> acquire() {
        auto& p = pool();
        if (p.empty()) {
            auto v = std::make_unique<std::vector<T>>();
            v->reserve(16);
            return v;
        }
        auto v = std::move(p.back());
        p.pop_back();
        return v;
    }
    std::unique_ptr<std::vector<T>> v_;
};

struct Frame {
    Scratch<std::pair<const std::string*, Value>> storage;
    std::vector<std::pair<const std::string*, Value>>& vars = *storage;
    const Value* find(const std::string& name) const {
        for (auto it = vars.rbegin(); it != vars.rend(); ++it) {
            if (it->first == &name || *it->first == name) return &it->second;
        }
        return nullptr;
    }
    void bind(const std::string& name, Value v) { vars.emplace_back(&name, std::move(v)); }
    std::size_t mark() const { return vars.size(); }
    void undo(std::size_t m) { vars.resize(m); }
};

Value setPath(const Value& root, const std::vector<std::string>& path, std::size_t i, const Value& value) {
    if (i == path.size()) return value;
    Object obj = root.isObject() ? root.asObject() : Object{};
    const auto key = Value::string(path[i]);
    auto it = obj.find(key);
    const Value child = it == obj.end() ? Value::emptyObject() : it->second;
    obj[key] = setPath(child, path, i + 1, value);
    return Value::object(std::move(obj));
}

// A mutable tree to assemble partial objects before freezing them into Values.
struct Builder {
    std::optional<Value> leaf;
    std::optional<Set> set_leaf;
    std::map<Value, Builder, ValueLess> kids;
    bool base = false;  // the leaf is base data, which virtual documents may extend
    bool empty() const { return !leaf && !set_leaf && kids.empty(); }
    Value freeze() const {
        if (leaf) return *leaf;
        if (set_leaf) return Value::set(*set_leaf);
        Object o;
        for (const auto& [k, v] : kids) o.emplace(k, v.freeze());
        return Value::object(std::move(o));
    }
    /// Merges a virtual document into this slot; false on a conflict. Base data wins where both
    /// define a leaf; a value produced by a rule is never extended by another rule.
    bool merge(const Value& v) {
        if (empty()) {
            leaf = v;
            return true;
        }
        if (leaf && base) {
            if (!leaf->isObject() || !v.isObject()) return true;
            const Value old = *leaf;
            leaf.reset();
            base = false;
            for (const auto& [k, child] : old.asObject()) {
                kids[k].leaf = child;
                kids[k].base = true;
            }
        }
        if (leaf) return *leaf == v;
        if (set_leaf) {
            if (!v.isSet()) return false;
            set_leaf->insert(v.asSet().begin(), v.asSet().end());
            return true;
        }
        if (!v.isObject()) return false;
        for (const auto& [k, child] : v.asObject()) {
            if (!kids[k].merge(child)) return false;
        }
        return true;
    }
};

std::string locPrefix(const Location& loc) {
    return fmt::format("{}:{}: ", loc.file ? *loc.file : std::string("query"), loc.line);
}

std::unexpected<Error> evalError(PolicyErrc code, const Location& loc, std::string_view what) {
    return fail(code, fmt::format("{}{}: {}", locPrefix(loc), conformanceName(code), what));
}

std::unexpected<Error> conflictAt(const Location& loc, std::string_view what) {
    return evalError(PolicyErrc::kConflict, loc, what);
}

class Evaluator {
public:
    Evaluator(const Policy::Impl& policy, const EvalOptions& options)
        : pol_(policy), opt_(options), data_(options.data) {
        if (options.input) input_ = *options.input;
        bctx_.now_ns = options.now_ns;
        if (bctx_.now_ns == 0) {
            bctx_.now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               clock_.now().time_since_epoch()).count();
        }
        if (options.timeout.count() > 0) deadline_ = clock_.steady() + options.timeout;
        caches_.emplace_back();
    }

    /// The distinct values of the result variable (the value-query fast path: no bindings maps).
    Result<std::optional<Value>> runValue(const PreparedQuery::Impl& q, const std::string& result_var) {
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

    Result<ResultSet> run(const PreparedQuery::Impl& q, const std::string& result_var) {
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

private:
    Status tick() {
        ++steps_;
        if (opt_.max_steps != 0 && steps_ > opt_.max_steps) {
            return fail(PolicyErrc::kLimit, fmt::format("evaluation exceeded its budget of {} steps", opt_.max_steps));
        }
        if (deadline_ && (steps_ & 1023) == 0 && clock_.steady() > *deadline_) {
            return fail(PolicyErrc::kLimit, "evaluation exceeded its deadline");
        }
        return {};
    }

    // ---- bodies and expressions

    Result<bool> evalBody(const Body& body, std::size_t i, Frame& f, Next next) {
        // One step per expression entered for each partial solution: loops count every turn.
        if (auto st = tick(); !st) return fail(st.error());
        if (i == body.size()) return next();
        return evalExpr(body[i], f, [&]() -> Result<bool> { return evalBody(body, i + 1, f, next); }, true);
    }

    Result<bool> evalExpr(const Expr& e, Frame& f, Next next, bool apply_withs) {
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

    Result<bool> evalPositive(const Expr& e, Frame& f, Next next) {
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

    static bool isRelationCall(const Term& t) {
        if (t.builtin != nullptr) return static_cast<int>(t.items.size()) == t.builtin->arity + 1;
        if (t.node != nullptr && t.node->isFunction()) {
            const auto& first = !t.node->functions.empty() ? t.node->functions[0] : t.node->default_rule;
            return t.items.size() == first->args.size() + 1;
        }
        return false;
    }

    Result<bool> evalWith(const Expr& e, Frame& f, Next next) {
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

    bool isFunctionName(const std::string& name) const { return findBuiltin(name) != nullptr; }
    bool refIsFunction(const Term& ref) const {
        if (ref.items[0]->kind != TermKind::kVar || ref.items[0]->name != "data") return false;
        std::vector<std::string> path;
        for (std::size_t i = 1; i < ref.items.size(); ++i) {
            if (ref.items[i]->kind != TermKind::kValue || !ref.items[i]->value.isString()) return false;
            path.push_back(ref.items[i]->value.asString());
        }
        const RuleNode* node = findPathNode(path);
        return node != nullptr && node->isFunction();
    }
    static std::string refPath(const Term& ref) {
        if (ref.kind == TermKind::kVar) return ref.name;
        std::string s = ref.items[0]->kind == TermKind::kVar ? ref.items[0]->name : "?";
        for (std::size_t i = 1; i < ref.items.size(); ++i) {
            const auto& op = *ref.items[i];
            s += "." + (op.kind == TermKind::kValue && op.value.isString() ? op.value.asString() : op.value.toJson());
        }
        return s;
    }
    const RuleNode* findPathNode(const std::vector<std::string>& path) const {
        const RuleNode* node = &pol_.root;
        for (const auto& p : path) {
            node = node->child(p);
            if (node == nullptr) return nullptr;
        }
        return node;
    }

    // ---- collections

    template <class F>
    Result<bool> forEachElement(const Value& coll, F&& fn) {
        switch (coll.kind()) {
            case Kind::kArray: {
                const auto& a = coll.asArray();
                for (std::size_t i = 0; i < a.size(); ++i) {
                    auto r = fn(Value::number(static_cast<std::int64_t>(i)), a[i]);
                    if (!r || !*r) return r;
                }
                return true;
            }
            case Kind::kObject:
                for (const auto& [k, v] : coll.asObject()) {
                    auto r = fn(k, v);
                    if (!r || !*r) return r;
                }
                return true;
            case Kind::kSet:
                for (const auto& v : coll.asSet()) {
                    auto r = fn(v, v);
                    if (!r || !*r) return r;
                }
                return true;
            default: return true;
        }
    }

    // ---- terms

    bool unboundVar(const Term& t, const Frame& f) const { return t.kind == TermKind::kVar && f.find(t.name) == nullptr; }

    bool hasUnbound(const Term& t, const Frame& f) const {
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

    Result<bool> evalTerm(const Term& t, Frame& f, OnValue k) {
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

    Result<bool> evalItems(const std::vector<TermP>& items, std::size_t i, std::vector<Value>& acc, Frame& f,
                           FnRef<Result<bool>(std::vector<Value>&)> k) {
        return evalItems(items.data(), items.size(), i, acc, f, k);
    }

    Result<bool> evalItems(const TermP* items, std::size_t n, std::size_t i, std::vector<Value>& acc, Frame& f,
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

    Result<bool> evalComprehension(const Term& t, Frame& f, OnValue k) {
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

    // ---- unification

    Result<bool> unify(const Term& a, const Term& b, Frame& f, Next next) {
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

    Result<bool> unifyItems(const std::vector<TermP>& a, const std::vector<TermP>& b, std::size_t i, Frame& f,
                            Next next) {
        if (i == a.size()) return next();
        return unify(*a[i], *b[i], f, [&]() -> Result<bool> { return unifyItems(a, b, i + 1, f, next); });
    }

    Result<bool> unifyValue(const Term& t, const Value& v, Frame& f, Next next) {
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

    Result<bool> unifyArray(const std::vector<TermP>& items, const Array& values, std::size_t i, Frame& f, Next next) {
        if (i == items.size()) return next();
        return unifyValue(*items[i], values[i], f, [&]() -> Result<bool> {
            return unifyArray(items, values, i + 1, f, next);
        });
    }

    Result<bool> unifyObject(const Term& t, const Value& v, std::size_t i, Frame& f, Next next) {
        if (i == t.pairs.size()) return next();
        return evalTerm(*t.pairs[i].first, f, [&](const Value& key) -> Result<bool> {
            const Value* child = v.get(key);
            if (child == nullptr) return true;
            return unifyValue(*t.pairs[i].second, *child, f, [&]() -> Result<bool> {
                return unifyObject(t, v, i + 1, f, next);
            });
        });
    }

    // ---- refs

    Result<bool> evalRef(const Term& ref, Frame& f, OnValue k) {
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

    Result<bool> walkValue(const Value& v, const Term& ref, std::size_t i, Frame& f, OnValue k, bool stored = false) {
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

    const Value* baseAt(const std::vector<std::string>& path) const {
        const Value* v = &data_;
        for (const auto& p : path) {
            v = v->get(Value::string(p));
            if (v == nullptr) return nullptr;
        }
        return v;
    }

    bool overridden(const std::vector<std::string>& path) const {
        for (const auto& o : data_overrides_) {
            if (o.size() <= path.size() && std::equal(o.begin(), o.end(), path.begin())) return true;
        }
        return false;
    }

    Result<bool> walkData(const RuleNode* node, std::vector<std::string>& path, const Term& ref, std::size_t i,
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

    // ---- virtual documents

    Result<std::optional<Value>> nodeValue(const RuleNode* node) {
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

    Result<std::optional<Value>> computeNode(const RuleNode* node) {
        if (!node->complete.empty() || (node->default_rule && node->partial_object.empty() && node->partial_set.empty() &&
                                        node->children.empty())) {
            return completeValue(node);
        }
        if (!node->partial_set.empty()) {
            Set s;
            for (const auto& rule : node->partial_set) {
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

    Result<std::optional<Value>> completeValue(const RuleNode* node) {
        std::optional<Value> result;
        for (const auto& rule : node->complete) {
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

    /// The value of a node's default rule (complete rule or function).
    Result<std::optional<Value>> defaultValue(const RuleNode* node) {
        std::optional<Value> result;
        Frame fr;
        auto rr = evalTerm(*node->default_rule->value, fr, [&](const Value& v) -> Result<bool> {
            result = v;
            return false;
        });
        if (!rr) return fail(rr.error());
        return result;
    }

    // ---- calls

    Result<bool> evalCall(const Term& call, Frame& f, OnValue k) {
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

    /// Evaluates the first n args, then the builtin or function (honouring `with` replacements).
    Result<bool> callWithArgs(const Term& call, std::size_t n, Frame& f, OnValue k) {
        Scratch<Value> scratch;
        std::vector<Value>& acc = *scratch;
        return evalItems(call.items.data(), n, 0, acc, f, [&](std::vector<Value>& args) -> Result<bool> {
            return invoke(call.name, call.builtin, call.node, args, k, call.loc);
        });
    }

    Result<bool> invoke(const std::string& name, const Builtin* builtin, const RuleNode* node, std::vector<Value>& args,
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

    Result<bool> callFunction(const RuleNode* node, const std::vector<Value>& args, OnValue k) {
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

    Result<bool> bindArgs(const Rule& r, const std::vector<Value>& args, std::size_t i, Frame& fr, Next next) {
        if (i == args.size()) return next();
        return unifyValue(*r.args[i], args[i], fr, [&]() -> Result<bool> { return bindArgs(r, args, i + 1, fr, next); });
    }

    Result<bool> evalWalk(const Term& t, Frame& f, Next next) {
        return evalTerm(*t.items[0], f, [&](const Value& root) -> Result<bool> {
            Array path;
            return walkAll(root, path, [&](const Value& pair) -> Result<bool> {
                return unifyValue(*t.items[1], pair, f, next);
            });
        });
    }

    Result<bool> walkAll(const Value& v, Array& path, OnValue k) {
        auto r = k(Value::array({Value::array(path), v}));
        if (!r || !*r) return r;
        return forEachElement(v, [&](const Value& key, const Value& child) -> Result<bool> {
            path.push_back(key);
            auto rr = walkAll(child, path, k);
            path.pop_back();
            return rr;
        });
    }

    const Policy::Impl& pol_;
    const EvalOptions& opt_;
    std::optional<Value> input_;
    Value data_;
    BuiltinContext bctx_;
    SystemClock clock_;
    std::optional<std::chrono::steady_clock::time_point> deadline_;
    std::uint64_t steps_ = 0;
    int depth_ = 0;
    std::vector<std::vector<std::string>> data_overrides_;
    std::vector<std::pair<std::string, Value>> fn_overrides_;
    // Virtual documents computed in this evaluation; a `with` opens a fresh scope. Few entries:
    // a flat vector beats a map.
    using Cache = std::vector<std::pair<const RuleNode*, std::optional<Value>>>;
    std::vector<Cache> caches_;
};

}  // namespace

Result<ResultSet> evaluate(const PreparedQuery::Impl& query, const EvalOptions& options, const std::string& result_var) {
    Evaluator ev(*query.policy, options);
    return ev.run(query, result_var);
}

Result<std::optional<Value>> evaluateValue(const PreparedQuery::Impl& query, const EvalOptions& options,
                                           const std::string& result_var) {
    Evaluator ev(*query.policy, options);
    return ev.runValue(query, result_var);
}

}  // namespace edge::policy
