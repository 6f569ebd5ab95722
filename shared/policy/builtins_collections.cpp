// array.*, object.*, set operators and set aggregates, with OPA's semantics and error texts
// (topdown/array.go, object.go, subset.go, sets.go). json.filter/remove/patch live in
// builtins_json_paths.cpp.
#include <algorithm>
#include <iterator>
#include <vector>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;

BuiltinResult arrayConcat(Args args, BuiltinContext&) {
    if (!args[0].isArray()) return fail(typeError("array.concat", 1, "array", args[0]));
    if (!args[1].isArray()) return fail(typeError("array.concat", 2, "array", args[1]));
    Array out = args[0].asArray();
    out.insert(out.end(), args[1].asArray().begin(), args[1].asArray().end());
    return ok(Value::array(std::move(out)));
}

BuiltinResult arraySlice(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "array.slice";
    if (!args[0].isArray()) return fail(typeError(kName, 1, "array", args[0]));
    auto start = intOperand(kName, 2, args[1]);
    if (!start) return fail(std::move(start.error()));
    auto stop = intOperand(kName, 3, args[2]);
    if (!stop) return fail(std::move(stop.error()));
    const auto& items = args[0].asArray();
    const auto len = static_cast<std::int64_t>(items.size());
    // Clamped as OPA does: stop into [0, len], start into [0, stop].
    const std::int64_t hi = std::clamp<std::int64_t>(*stop, 0, len);
    const std::int64_t lo = std::clamp<std::int64_t>(*start, 0, hi);
    return ok(Value::array(Array(items.begin() + lo, items.begin() + hi)));
}

BuiltinResult arrayReverse(Args args, BuiltinContext&) {
    if (!args[0].isArray()) return fail(typeError("array.reverse", 1, "array", args[0]));
    return ok(Value::array(Array(args[0].asArray().rbegin(), args[0].asArray().rend())));
}

// One level of nesting: array elements are spliced in, others kept.
BuiltinResult arrayFlatten(Args args, BuiltinContext&) {
    if (!args[0].isArray()) return fail(typeError("array.flatten", 1, "array", args[0]));
    Array out;
    for (const auto& e : args[0].asArray()) {
        if (e.isArray()) {
            out.insert(out.end(), e.asArray().begin(), e.asArray().end());
        } else {
            out.push_back(e);
        }
    }
    return ok(Value::array(std::move(out)));
}

BuiltinResult objectGet(Args args, BuiltinContext&) {
    const Value& obj = args[0];
    if (!obj.isObject()) return fail(typeError("object.get", 1, "object", obj));
    const Value& key = args[1];
    if (!key.isArray()) {
        const Value* found = obj.get(key);
        return ok(found ? *found : args[2]);
    }
    // An array key is a path through nested objects, arrays and sets; [] is the object.
    const Value* cur = &obj;
    for (const auto& seg : key.asArray()) {
        cur = cur->get(seg);
        if (!cur) return ok(args[2]);
    }
    return ok(*cur);
}

// The keys named by object.remove/filter's operand 2: an object's keys, a set or an array.
Result<Set> keysOperand(std::string_view name, const Value& v) {
    switch (v.kind()) {
        case Kind::kArray: return Set(v.asArray().begin(), v.asArray().end());
        case Kind::kSet: return v.asSet();
        case Kind::kObject: {
            Set keys;
            for (const auto& [k, e] : v.asObject()) keys.insert(keys.end(), k);
            return keys;
        }
        default: return fail(typeError(name, 2, oneOf({"object", "set", "array"}), v));
    }
}

BuiltinFn objectSelect(std::string_view name, bool keep_listed) {
    return [name, keep_listed](Args args, BuiltinContext&) -> BuiltinResult {
        if (!args[0].isObject()) return fail(typeError(name, 1, "object", args[0]));
        auto keys = keysOperand(name, args[1]);
        if (!keys) return fail(std::move(keys.error()));
        Object out;
        for (const auto& [k, e] : args[0].asObject()) {
            if (keys->contains(k) == keep_listed) out.emplace_hint(out.end(), k, e);
        }
        return ok(Value::object(std::move(out)));
    };
}

// Right wins, except that two objects under the same key merge recursively.
Value mergeObjects(const Value& a, const Value& b) {
    Object out = a.asObject();
    for (const auto& [k, bv] : b.asObject()) {
        const auto it = out.find(k);
        if (it != out.end() && it->second.isObject() && bv.isObject()) {
            it->second = mergeObjects(it->second, bv);
        } else {
            out.insert_or_assign(k, bv);
        }
    }
    return Value::object(std::move(out));
}

BuiltinResult objectUnion(Args args, BuiltinContext&) {
    if (!args[0].isObject()) return fail(typeError("object.union", 1, "object", args[0]));
    if (!args[1].isObject()) return fail(typeError("object.union", 2, "object", args[1]));
    if (args[0] == args[1]) return ok(args[0]);
    return ok(mergeObjects(args[0], args[1]));
}

BuiltinResult objectUnionN(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "object.union_n";
    const Value& arr = args[0];
    if (!arr.isArray()) return fail(typeError(kName, 1, "array", arr));
    for (const auto& e : arr.asArray()) {
        if (!e.isObject()) return fail(elementError(kName, 1, arr, "object", e));
    }
    Value acc = Value::emptyObject();
    for (const auto& e : arr.asArray()) acc = mergeObjects(acc, e);
    return ok(std::move(acc));
}

BuiltinResult objectKeys(Args args, BuiltinContext&) {
    if (!args[0].isObject()) return fail(typeError("object.keys", 1, "object", args[0]));
    Set keys;
    for (const auto& [k, e] : args[0].asObject()) keys.insert(keys.end(), k);
    return ok(Value::set(std::move(keys)));
}

bool setSubset(const Set& super, const Set& sub) {
    return std::all_of(sub.begin(), sub.end(), [&](const Value& e) { return super.contains(e); });
}

// sub appears in super as a contiguous run.
bool arraySubset(const Array& super, const Array& sub) {
    if (sub.empty()) return true;
    if (sub.size() > super.size()) return false;
    return std::search(super.begin(), super.end(), sub.begin(), sub.end()) != super.end();
}

// Every element of sub occurs in super. As OPA, an empty super array never qualifies.
bool arraySetSubset(const Array& super, const Set& sub) {
    std::size_t unmatched = sub.size();
    for (const auto& e : super) {
        if (sub.contains(e)) --unmatched;
        if (unmatched == 0) return true;
    }
    return false;
}

bool objectSubset(const Object& super, const Object& sub) {
    for (const auto& [k, sv] : sub) {
        const auto it = super.find(k);
        if (it == super.end()) return false;
        const Value& pv = it->second;
        if (pv == sv) continue;
        if (pv.isObject() && sv.isObject()) {
            if (!objectSubset(pv.asObject(), sv.asObject())) return false;
        } else if (pv.isSet() && sv.isSet()) {
            if (!setSubset(pv.asSet(), sv.asSet())) return false;
        } else if (pv.isArray() && sv.isArray()) {
            if (!arraySubset(pv.asArray(), sv.asArray())) return false;
        } else {
            return false;
        }
    }
    return true;
}

BuiltinResult objectSubsetBuiltin(Args args, BuiltinContext&) {
    const Value& super = args[0];
    const Value& sub = args[1];
    if (super.isObject() && sub.isObject()) {
        return ok(Value::boolean(objectSubset(super.asObject(), sub.asObject())));
    }
    if (super.isSet() && sub.isSet()) {
        return ok(Value::boolean(setSubset(super.asSet(), sub.asSet())));
    }
    if (super.isArray() && sub.isArray()) {
        return ok(Value::boolean(arraySubset(super.asArray(), sub.asArray())));
    }
    if (super.isArray() && sub.isSet()) {
        return ok(Value::boolean(arraySetSubset(super.asArray(), sub.asSet())));
    }
    return fail(Error(make_error_code(PolicyErrc::kTypeError),
                      "object.subset: both arguments object.subset must be of the same type or "
                      "array and set"));
}

// `and` (&) and `or` (|) on two sets.
BuiltinFn setOperator(std::string_view name, bool is_union) {
    return [name, is_union](Args args, BuiltinContext&) -> BuiltinResult {
        if (!args[0].isSet()) return fail(typeError(name, 1, "set", args[0]));
        if (!args[1].isSet()) return fail(typeError(name, 2, "set", args[1]));
        const Set& a = args[0].asSet();
        const Set& b = args[1].asSet();
        Set out;
        if (is_union) {
            std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()),
                           ValueLess{});
        } else {
            std::set_intersection(a.begin(), a.end(), b.begin(), b.end(),
                                  std::inserter(out, out.end()), ValueLess{});
        }
        return ok(Value::set(std::move(out)));
    };
}

// union / intersection of a set of sets.
BuiltinFn setAggregate(std::string_view name, bool is_union) {
    return [name, is_union](Args args, BuiltinContext&) -> BuiltinResult {
        const Value& outer = args[0];
        if (!outer.isSet()) return fail(typeError(name, 1, "set", outer));
        for (const auto& e : outer.asSet()) {
            if (!e.isSet()) return fail(typeError(name, 1, "set", e));
        }
        if (outer.asSet().empty()) return ok(Value::emptySet());
        Set acc;
        bool first = true;
        for (const auto& e : outer.asSet()) {
            if (is_union) {
                acc.insert(e.asSet().begin(), e.asSet().end());
                continue;
            }
            if (first) {
                acc = e.asSet();
                first = false;
                continue;
            }
            Set next;
            std::set_intersection(acc.begin(), acc.end(), e.asSet().begin(), e.asSet().end(),
                                  std::inserter(next, next.end()), ValueLess{});
            acc = std::move(next);
        }
        return ok(Value::set(std::move(acc)));
    };
}

void add(std::vector<Builtin>& out, std::string_view name, int arity, BuiltinFn fn) {
    out.push_back(Builtin{name, arity, std::move(fn)});
}

}  // namespace

void addCollectionBuiltins(std::vector<Builtin>& out) {
    add(out, "array.concat", 2, arrayConcat);
    add(out, "array.slice", 3, arraySlice);
    add(out, "array.reverse", 1, arrayReverse);
    add(out, "array.flatten", 1, arrayFlatten);

    add(out, "object.get", 3, objectGet);
    add(out, "object.remove", 2, objectSelect("object.remove", false));
    add(out, "object.filter", 2, objectSelect("object.filter", true));
    add(out, "object.union", 2, objectUnion);
    add(out, "object.union_n", 1, objectUnionN);
    add(out, "object.keys", 1, objectKeys);
    add(out, "object.subset", 2, objectSubsetBuiltin);

    add(out, "and", 2, setOperator("and", false));
    add(out, "or", 2, setOperator("or", true));
    add(out, "intersection", 1, setAggregate("intersection", false));
    add(out, "union", 1, setAggregate("union", true));

    addJsonPathBuiltins(out);
}

}  // namespace edge::policy::detail
