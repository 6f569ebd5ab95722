// json.filter, json.remove and json.patch (RFC 6902), with OPA's semantics (topdown/json.go,
// internal/edittree): paths are "/a/b" strings (JSON pointers, "~1" and "~0" escapes) or
// arrays of segments; sets are addressed by their elements; a failed patch is undefined.
#include <algorithm>
#include <charconv>
#include <map>
#include <vector>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;
using Path = std::vector<Value>;

std::string replaceAll(std::string s, std::string_view from, std::string_view to) {
    for (std::size_t at = s.find(from); at != std::string::npos;
         at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
    }
    return s;
}

// OPA's parsePath: "" is the empty path; leading slashes are dropped.
Result<Path> parsePath(std::string_view name, const Value& v) {
    Path path;
    if (v.isString()) {
        const std::string& s = v.asString();
        if (s.empty()) return path;
        std::string_view rest(s);
        rest.remove_prefix(std::min(rest.find_first_not_of('/'), rest.size()));
        while (true) {
            const std::size_t slash = rest.find('/');
            const std::string part =
                replaceAll(replaceAll(std::string(rest.substr(0, slash)), "~1", "/"), "~0", "~");
            path.push_back(Value::string(part));
            if (slash == std::string_view::npos) break;
            rest.remove_prefix(slash + 1);
        }
        return path;
    }
    if (v.isArray()) return Path(v.asArray().begin(), v.asArray().end());
    return fail(operandError(name, 2,
                             "must be one of {set, array} containing string paths or array of "
                             "path segments but got " +
                                 std::string(v.typeName())));
}

Result<std::vector<Path>> parsePaths(std::string_view name, const Value& v) {
    std::vector<Path> paths;
    auto addAll = [&](const auto& items) -> Status {
        for (const auto& item : items) {
            auto p = parsePath(name, item);
            if (!p) return fail(std::move(p.error()));
            paths.push_back(std::move(*p));
        }
        return {};
    };
    Status st;
    if (v.isArray()) {
        st = addAll(v.asArray());
    } else if (v.isSet()) {
        st = addAll(v.asSet());
    } else {
        return fail(typeError(name, 2, oneOf({"set", "array"}), v));
    }
    if (!st) return fail(std::move(st.error()));
    return paths;
}

// The paths merged into a tree; a leaf selects everything below it ("a" wins over "a/b").
struct PathTree {
    bool leaf = false;
    std::map<Value, PathTree, ValueLess> children;

    static PathTree of(const std::vector<Path>& paths) {
        PathTree root;
        for (const auto& path : paths) {
            if (path.empty()) continue;
            PathTree* node = &root;
            bool covered = false;
            for (std::size_t i = 0; i + 1 < path.size(); ++i) {
                node = &node->children[path[i]];
                if (node->leaf) {
                    covered = true;
                    break;
                }
            }
            if (covered) continue;
            PathTree& last = node->children[path.back()];
            last.leaf = true;
            last.children.clear();
        }
        return root;
    }

    // Array elements are addressed by their index as a string ("a/0/b"), as in OPA, or by
    // the index itself (array-form paths).
    const PathTree* child(const Value& key) const {
        const auto it = children.find(key);
        return it == children.end() ? nullptr : &it->second;
    }
    const PathTree* element(std::size_t index) const {
        if (const auto* c = child(Value::string(std::to_string(index)))) return c;
        return child(Value::number(static_cast<std::int64_t>(index)));
    }
};

// Keeps only what the tree selects.
Value filterValue(const Value& v, const PathTree& tree) {
    if (tree.leaf) return v;
    switch (v.kind()) {
        case Kind::kArray: {
            Array out;
            const auto& items = v.asArray();
            for (std::size_t i = 0; i < items.size(); ++i) {
                if (const auto* sub = tree.element(i)) out.push_back(filterValue(items[i], *sub));
            }
            return Value::array(std::move(out));
        }
        case Kind::kSet: {
            Set out;
            for (const auto& e : v.asSet()) {
                if (const auto* sub = tree.child(e)) out.insert(filterValue(e, *sub));
            }
            return Value::set(std::move(out));
        }
        case Kind::kObject: {
            Object out;
            for (const auto& [k, e] : v.asObject()) {
                if (const auto* sub = tree.child(k))
                    out.emplace_hint(out.end(), k, filterValue(e, *sub));
            }
            return Value::object(std::move(out));
        }
        default: return v;
    }
}

// Drops what the tree selects; nullopt when v itself goes.
std::optional<Value> removeValue(const Value& v, const PathTree* tree) {
    if (!tree) return v;
    if (tree->leaf) return std::nullopt;
    switch (v.kind()) {
        case Kind::kArray: {
            Array out;
            const auto& items = v.asArray();
            for (std::size_t i = 0; i < items.size(); ++i) {
                if (auto kept = removeValue(items[i], tree->element(i)))
                    out.push_back(std::move(*kept));
            }
            return Value::array(std::move(out));
        }
        case Kind::kSet: {
            Set out;
            for (const auto& e : v.asSet()) {
                if (auto kept = removeValue(e, tree->child(e))) out.insert(std::move(*kept));
            }
            return Value::set(std::move(out));
        }
        case Kind::kObject: {
            Object out;
            for (const auto& [k, e] : v.asObject()) {
                if (auto kept = removeValue(e, tree->child(k)))
                    out.emplace_hint(out.end(), k, std::move(*kept));
            }
            return Value::object(std::move(out));
        }
        default: return v;
    }
}

BuiltinFn jsonSelect(std::string_view name, bool is_filter) {
    return [name, is_filter](Args args, BuiltinContext&) -> BuiltinResult {
        if (!args[0].isObject()) return fail(typeError(name, 1, "object", args[0]));
        auto paths = parsePaths(name, args[1]);
        if (!paths) return fail(std::move(paths.error()));
        const PathTree tree = PathTree::of(*paths);
        if (is_filter) return ok(filterValue(args[0], tree));
        auto kept = removeValue(args[0], &tree);
        if (!kept) return undefinedResult();
        return ok(std::move(*kept));
    };
}

// --- json.patch -------------------------------------------------------------------------

// OPA's toIndex: integers, or decimal strings without leading zeros; "-" is one past the end.
std::optional<std::int64_t> arrayIndex(std::size_t len, const Value& seg) {
    std::int64_t i = 0;
    if (seg.isNumber()) {
        if (!seg.asNumber().toInt(i)) return std::nullopt;
        return i;
    }
    if (!seg.isString()) return std::nullopt;
    std::string_view s = seg.asString();
    if (s == "-") return static_cast<std::int64_t>(len);
    if (s != "0" && s.starts_with('0')) return std::nullopt;
    if (s.starts_with('+')) s.remove_prefix(1);
    const auto r = std::from_chars(s.data(), s.data() + s.size(), i);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty()) return std::nullopt;
    return i;
}

const Value* child(const Value& doc, const Value& seg) {
    if (!doc.isArray()) return doc.isObject() || doc.isSet() ? doc.get(seg) : nullptr;
    const auto& items = doc.asArray();
    const auto idx = arrayIndex(items.size(), seg);
    if (!idx || *idx < 0 || static_cast<std::size_t>(*idx) >= items.size()) return nullptr;
    return &items[static_cast<std::size_t>(*idx)];
}

const Value* lookup(const Value& doc, const Path& path) {
    const Value* cur = &doc;
    for (const auto& seg : path) {
        cur = child(*cur, seg);
        if (!cur) return nullptr;
    }
    return cur;
}

// doc with the child at seg (which exists) replaced by v.
Value withChild(const Value& doc, const Value& seg, Value v) {
    if (doc.isObject()) {
        Object out = doc.asObject();
        out.insert_or_assign(seg, std::move(v));
        return Value::object(std::move(out));
    }
    if (doc.isSet()) {
        Set out = doc.asSet();
        out.erase(seg);
        out.insert(std::move(v));
        return Value::set(std::move(out));
    }
    Array out = doc.asArray();
    out[static_cast<std::size_t>(*arrayIndex(out.size(), seg))] = std::move(v);
    return Value::array(std::move(out));
}

enum class Edit { kAdd, kRemove };

// Adds `value` at path[i..] or removes what is there; nullopt when the path is invalid.
std::optional<Value> editAt(const Value& doc, const Path& path, std::size_t i, Edit edit,
                            const Value& value) {
    const Value& seg = path[i];
    if (i + 1 < path.size()) {
        const Value* next = child(doc, seg);
        if (!next) return std::nullopt;
        auto edited = editAt(*next, path, i + 1, edit, value);
        if (!edited) return std::nullopt;
        return withChild(doc, seg, std::move(*edited));
    }
    switch (doc.kind()) {
        case Kind::kObject: {
            Object out = doc.asObject();
            if (edit == Edit::kAdd) {
                out.insert_or_assign(seg, value);
            } else if (out.erase(seg) == 0) {
                return std::nullopt;
            }
            return Value::object(std::move(out));
        }
        case Kind::kSet: {
            Set out = doc.asSet();
            if (edit == Edit::kAdd) {
                if (seg != value) return std::nullopt;  // a set element is its own key
                out.insert(value);
            } else if (out.erase(seg) == 0) {
                return std::nullopt;
            }
            return Value::set(std::move(out));
        }
        case Kind::kArray: {
            Array out = doc.asArray();
            const auto idx = arrayIndex(out.size(), seg);
            const std::size_t limit = out.size() + (edit == Edit::kAdd ? 1 : 0);
            if (!idx || *idx < 0 || static_cast<std::size_t>(*idx) >= limit) return std::nullopt;
            const auto at = out.begin() + *idx;
            if (edit == Edit::kAdd) {
                out.insert(at, value);
            } else {
                out.erase(at);
            }
            return Value::array(std::move(out));
        }
        default: return std::nullopt;
    }
}

std::optional<Value> addAt(const Value& doc, const Path& path, const Value& value) {
    if (path.empty()) return value;
    return editAt(doc, path, 0, Edit::kAdd, value);
}

std::optional<Value> removeAt(const Value& doc, const Path& path) {
    if (path.empty()) return std::nullopt;
    return editAt(doc, path, 0, Edit::kRemove, Value());
}

// One operation; nullopt when it does not apply (missing members, bad paths, failed test).
std::optional<Value> applyOperation(const Value& doc, const Value& op_value) {
    if (!op_value.isObject()) return std::nullopt;
    const auto attr = [&](const char* key) { return op_value.get(Value::string(key)); };
    const Value* op = attr("op");
    const Value* path_value = attr("path");
    if (!op || !op->isString() || !path_value) return std::nullopt;
    auto path = parsePath("json.patch", *path_value);
    if (!path) return std::nullopt;
    const std::string& name = op->asString();
    if (name == "remove") return removeAt(doc, *path);
    if (name == "move" || name == "copy") {
        const Value* from_value = attr("from");
        if (!from_value) return std::nullopt;
        auto from = parsePath("json.patch", *from_value);
        if (!from) return std::nullopt;
        const Value* moved = lookup(doc, *from);
        if (!moved) return std::nullopt;
        const Value chunk = *moved;
        if (name == "copy") return addAt(doc, *path, chunk);
        auto removed = removeAt(doc, *from);
        if (!removed) return std::nullopt;
        return addAt(*removed, *path, chunk);
    }
    const Value* value = attr("value");
    if (!value) return std::nullopt;
    if (name == "add") return addAt(doc, *path, *value);
    if (name == "replace") {
        if (path->empty()) return *value;
        auto removed = removeAt(doc, *path);
        if (!removed) return std::nullopt;
        return addAt(*removed, *path, *value);
    }
    if (name == "test") {
        const Value* found = lookup(doc, *path);
        if (!found || *found != *value) return std::nullopt;
        return doc;
    }
    return std::nullopt;  // unknown op
}

BuiltinResult jsonPatch(Args args, BuiltinContext&) {
    if (!args[1].isArray()) return fail(typeError("json.patch", 2, "array", args[1]));
    Value doc = args[0];
    for (const auto& op : args[1].asArray()) {
        auto next = applyOperation(doc, op);
        if (!next) return undefinedResult();  // patches apply atomically
        doc = std::move(*next);
    }
    return ok(std::move(doc));
}

}  // namespace

void addJsonPathBuiltins(std::vector<Builtin>& out) {
    out.push_back(Builtin{"json.filter", 2, jsonSelect("json.filter", true)});
    out.push_back(Builtin{"json.remove", 2, jsonSelect("json.remove", false)});
    out.push_back(Builtin{"json.patch", 2, jsonPatch});
}

}  // namespace edge::policy::detail
