#pragma once
// Internal to the evaluator (evaluator.cpp: bodies, terms, unification, refs;
// evaluator_rules.cpp: virtual documents, rules, calls). Not for other modules.
#include <fmt/format.h>

#include "shared/core/clock.hpp"
#include "shared/policy/builtins.hpp"
#include "shared/policy/compiled.hpp"
#include "shared/policy/fn_ref.hpp"

namespace edge::policy::eval_detail {

using Next = FnRef<Result<bool>()>;
using OnValue = FnRef<Result<bool>(const Value&)>;

inline constexpr int kMaxDepth = 2000;

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

inline Value setPath(const Value& root, const std::vector<std::string>& path, std::size_t i, const Value& value) {
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

inline std::string locPrefix(const Location& loc) {
    return fmt::format("{}:{}: ", loc.file ? *loc.file : std::string("query"), loc.line);
}

inline std::unexpected<Error> evalError(PolicyErrc code, const Location& loc, std::string_view what) {
    return fail(code, fmt::format("{}{}: {}", locPrefix(loc), conformanceName(code), what));
}

inline std::unexpected<Error> conflictAt(const Location& loc, std::string_view what) {
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
    Result<std::optional<Value>> runValue(const PreparedQuery::Impl& q, const std::string& result_var);

    Result<ResultSet> run(const PreparedQuery::Impl& q, const std::string& result_var);

private:
    Status tick();

    // ---- bodies and expressions

    Result<bool> evalBody(const Body& body, std::size_t i, Frame& f, Next next);

    Result<bool> evalExpr(const Expr& e, Frame& f, Next next, bool apply_withs);

    Result<bool> evalPositive(const Expr& e, Frame& f, Next next);

    static bool isRelationCall(const Term& t);

    Result<bool> evalWith(const Expr& e, Frame& f, Next next);

    bool isFunctionName(const std::string& name) const { return findBuiltin(name) != nullptr; }
    bool refIsFunction(const Term& ref) const;
    static std::string refPath(const Term& ref);
    const RuleNode* findPathNode(const std::vector<std::string>& path) const;

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

    bool hasUnbound(const Term& t, const Frame& f) const;

    Result<bool> evalTerm(const Term& t, Frame& f, OnValue k);

    Result<bool> evalItems(const std::vector<TermP>& items, std::size_t i, std::vector<Value>& acc, Frame& f,
                           FnRef<Result<bool>(std::vector<Value>&)> k);

    Result<bool> evalItems(const TermP* items, std::size_t n, std::size_t i, std::vector<Value>& acc, Frame& f,
                           FnRef<Result<bool>(std::vector<Value>&)> k);

    Result<bool> evalComprehension(const Term& t, Frame& f, OnValue k);

    // ---- unification

    Result<bool> unify(const Term& a, const Term& b, Frame& f, Next next);

    Result<bool> unifyItems(const std::vector<TermP>& a, const std::vector<TermP>& b, std::size_t i, Frame& f,
                            Next next);

    Result<bool> unifyValue(const Term& t, const Value& v, Frame& f, Next next);

    Result<bool> unifyArray(const std::vector<TermP>& items, const Array& values, std::size_t i, Frame& f, Next next);

    Result<bool> unifyObject(const Term& t, const Value& v, std::size_t i, Frame& f, Next next);

    // ---- refs

    Result<bool> evalRef(const Term& ref, Frame& f, OnValue k);

    Result<bool> walkValue(const Value& v, const Term& ref, std::size_t i, Frame& f, OnValue k, bool stored = false);

    const Value* baseAt(const std::vector<std::string>& path) const;

    bool overridden(const std::vector<std::string>& path) const;

    Result<bool> walkData(const RuleNode* node, std::vector<std::string>& path, const Term& ref, std::size_t i,
                          Frame& f, OnValue k);

    // ---- virtual documents

    Result<std::optional<Value>> nodeValue(const RuleNode* node);
    /// False when the rule's equality index rules it out for the current input.
    bool mayMatch(const Rule& rule) const;

    Result<std::optional<Value>> computeNode(const RuleNode* node);

    Result<std::optional<Value>> completeValue(const RuleNode* node);

    /// The value of a node's default rule (complete rule or function).
    Result<std::optional<Value>> defaultValue(const RuleNode* node);

    // ---- calls

    Result<bool> evalCall(const Term& call, Frame& f, OnValue k);

    /// Evaluates the first n args, then the builtin or function (honouring `with` replacements).
    Result<bool> callWithArgs(const Term& call, std::size_t n, Frame& f, OnValue k);

    Result<bool> invoke(const std::string& name, const Builtin* builtin, const RuleNode* node, std::vector<Value>& args,
                        OnValue k, const Location& loc);

    Result<bool> callFunction(const RuleNode* node, const std::vector<Value>& args, OnValue k);

    Result<bool> bindArgs(const Rule& r, const std::vector<Value>& args, std::size_t i, Frame& fr, Next next);

    Result<bool> evalWalk(const Term& t, Frame& f, Next next);

    Result<bool> walkAll(const Value& v, Array& path, OnValue k);

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

}  // namespace edge::policy::eval_detail
