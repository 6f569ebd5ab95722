// yaml.marshal, yaml.unmarshal, yaml.is_valid. OPA goes through sigs.k8s.io/yaml (go-yaml v2,
// YAML 1.1 resolution of plain scalars: yes/no/on/off are booleans, 0x1F and 017 are ints,
// timestamps stay strings) and then JSON, so keys become strings and .inf/.nan are errors.
// Parsing is yaml-cpp's; plain scalars are typed here. The writer emits go-yaml's block style.
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"
#include "shared/policy/go_strings.hpp"
#include "shared/policy/json_text.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;

constexpr int kMaxYamlDepth = 512;
// Aliases can multiply a small document; this caps the expanded size.
constexpr std::size_t kMaxYamlNodes = 1'000'000;

bool isDigit(char c) { return c >= '0' && c <= '9'; }

// Go's strconv.ParseInt(s, 0, 64) after go-yaml drops '_': sign, then 0x/0o/0b/0 prefixes.
std::optional<Value> parseYamlInt(std::string_view s) {
    bool negative = false;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
        negative = s[0] == '-';
        s.remove_prefix(1);
    }
    int base = 10;
    if (s.size() > 1 && s[0] == '0') {
        const char p = static_cast<char>(s[1] | 0x20);
        if (p == 'x' || p == 'o' || p == 'b') {
            base = p == 'x' ? 16 : (p == 'o' ? 8 : 2);
            s.remove_prefix(2);
        } else {
            base = 8;
            s.remove_prefix(1);
        }
    }
    if (s.empty() || s[0] == '+' || s[0] == '-') return std::nullopt;
    std::uint64_t mag = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), mag, base);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
    constexpr std::uint64_t kMaxPositive = static_cast<std::uint64_t>(INT64_MAX);
    if (!negative && mag <= kMaxPositive) return Value::number(static_cast<std::int64_t>(mag));
    if (negative && mag <= kMaxPositive + 1) {
        return Value::number(static_cast<std::int64_t>(0 - mag));
    }
    if (!negative) return Value::number(static_cast<double>(mag));  // ParseUint's range
    return std::nullopt;
}

// go-yaml's float pattern: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
std::optional<Value> parseYamlFloat(std::string_view s) {
    std::size_t p = 0;
    bool negative = false;
    if (p < s.size() && (s[p] == '+' || s[p] == '-')) negative = s[p++] == '-';
    const std::size_t body = p;
    if (p < s.size() && s[p] == '.') {
        ++p;
        if (p >= s.size() || !isDigit(s[p])) return std::nullopt;
        while (p < s.size() && isDigit(s[p])) ++p;
    } else {
        if (p >= s.size() || !isDigit(s[p])) return std::nullopt;
        while (p < s.size() && isDigit(s[p])) ++p;
        if (p < s.size() && s[p] == '.') {
            ++p;
            while (p < s.size() && isDigit(s[p])) ++p;
        }
    }
    if (p < s.size() && (s[p] == 'e' || s[p] == 'E')) {
        ++p;
        if (p < s.size() && (s[p] == '+' || s[p] == '-')) ++p;
        if (p >= s.size() || !isDigit(s[p])) return std::nullopt;
        while (p < s.size() && isDigit(s[p])) ++p;
    }
    if (p != s.size()) return std::nullopt;
    double d = 0;
    const auto r = std::from_chars(s.data() + body, s.data() + s.size(), d);
    if (r.ec != std::errc()) return std::nullopt;  // out of range: go-yaml keeps the string
    return Value::number(negative ? -d : d);
}

// go-yaml's resolve table.
std::optional<Value> resolveKeyword(std::string_view s, bool& non_finite) {
    static constexpr std::string_view kTrue[] = {"y",    "Y",    "yes", "Yes", "YES", "true",
                                                 "True", "TRUE", "on",  "On",  "ON"};
    static constexpr std::string_view kFalse[] = {"n",     "N",     "no",  "No",  "NO", "false",
                                                  "False", "FALSE", "off", "Off", "OFF"};
    static constexpr std::string_view kNull[] = {"~", "null", "Null", "NULL"};
    static constexpr std::string_view kInf[] = {".inf",  ".Inf",  ".INF",  "+.inf",
                                                "+.Inf", "+.INF", "-.inf", "-.Inf",
                                                "-.INF", ".nan",  ".NaN",  ".NAN"};
    const auto in = [&](const auto& list) {
        return std::find(std::begin(list), std::end(list), s) != std::end(list);
    };
    non_finite = false;
    if (in(kTrue)) return Value::boolean(true);
    if (in(kFalse)) return Value::boolean(false);
    if (in(kNull)) return Value::null();
    if (in(kInf)) {
        non_finite = true;
        return Value::null();
    }
    return std::nullopt;
}

// The value of a plain (unquoted, untagged) scalar. `non_finite` reports .inf/.nan, which
// JSON cannot hold.
Value resolvePlain(const std::string& s, bool& non_finite) {
    non_finite = false;
    if (s.empty()) return Value::null();
    if (auto v = resolveKeyword(s, non_finite)) return *v;
    const char c = s[0];
    if (c == '.') {
        if (auto f = parseYamlFloat(s)) return *f;
        return Value::string(s);
    }
    if (!isDigit(c) && c != '+' && c != '-') return Value::string(s);
    std::string plain = s;
    std::erase(plain, '_');
    if (auto i = parseYamlInt(plain)) return *i;
    if (auto f = parseYamlFloat(plain)) return *f;
    return Value::string(s);
}

class YamlReader {
public:
    explicit YamlReader(std::string_view name) : name_(name) {}

    Result<Value> read(const YAML::Node& n, int depth) {
        if (depth > kMaxYamlDepth || ++nodes_ > kMaxYamlNodes) {
            return fail(builtinError(name_, "yaml: document too deep or too large"));
        }
        switch (n.Type()) {
            case YAML::NodeType::Scalar: return scalar(n);
            case YAML::NodeType::Sequence: {
                Array out;
                for (const auto& e : n) {
                    auto v = read(e, depth + 1);
                    if (!v) return v;
                    out.push_back(std::move(*v));
                }
                return Value::array(std::move(out));
            }
            case YAML::NodeType::Map: {
                Object out;
                auto st = readMap(n, depth, out);
                if (!st) return fail(std::move(st.error()));
                return Value::object(std::move(out));
            }
            default: return Value::null();
        }
    }

private:
    Result<Value> scalar(const YAML::Node& n) {
        const std::string& tag = n.Tag();
        if (tag == "!" || tag == "tag:yaml.org,2002:str") return Value::string(n.Scalar());
        bool non_finite = false;
        Value v = resolvePlain(n.Scalar(), non_finite);
        if (non_finite) {
            return fail(builtinError(name_, "json: unsupported value: " + n.Scalar()));
        }
        return v;
    }

    // Keys become strings as sigs.k8s.io/yaml makes them; "<<" merges mappings (go-yaml v2).
    Status readMap(const YAML::Node& n, int depth, Object& out) {
        for (const auto& kv : n) {
            const YAML::Node& key = kv.first;
            if (key.IsScalar() && key.Tag() == "?" && key.Scalar() == "<<") {
                auto st = merge(kv.second, depth, out);
                if (!st) return st;
                continue;
            }
            auto k = read(key, depth + 1);
            if (!k) return fail(std::move(k.error()));
            std::string name;
            if (k->isString()) {
                name = k->asString();
            } else if (k->isNumber() || k->isBool()) {
                name = k->toJson();
            } else {
                return fail(builtinError(name_, "unsupported map key: " + k->toRego()));
            }
            auto v = read(kv.second, depth + 1);
            if (!v) return fail(std::move(v.error()));
            out.insert_or_assign(Value::string(std::move(name)), std::move(*v));
        }
        return {};
    }

    Status merge(const YAML::Node& src, int depth, Object& out) {
        if (src.IsMap()) return readMap(src, depth + 1, out);
        if (!src.IsSequence()) {
            return fail(builtinError(name_, "yaml: map merge requires map or sequence of maps"));
        }
        // Earlier maps win: apply them last.
        for (std::size_t i = src.size(); i-- > 0;) {
            if (!src[i].IsMap()) {
                return fail(
                    builtinError(name_, "yaml: map merge requires map or sequence of maps"));
            }
            auto st = readMap(src[i], depth + 1, out);
            if (!st) return st;
        }
        return {};
    }

    std::string_view name_;
    std::size_t nodes_ = 0;
};

// yaml-cpp's parse errors in go-yaml's words where the conformance suite looks at them.
std::string parseErrorText(const YAML::ParserException& e) {
    std::string msg = e.msg;
    if (msg == YAML::ErrorMsg::END_OF_SEQ_FLOW) msg = "did not find expected ',' or ']'";
    if (msg == YAML::ErrorMsg::END_OF_MAP_FLOW) msg = "did not find expected ',' or '}'";
    return "yaml: line " + std::to_string(e.mark.line + 1) + ": " + msg;
}

Result<Value> parseYaml(std::string_view name, const std::string& text) {
    try {
        const YAML::Node root = YAML::Load(text);
        return YamlReader(name).read(root, 0);
    } catch (const YAML::ParserException& e) {
        return fail(builtinError(name, parseErrorText(e)));
    } catch (const std::exception& e) {
        return fail(builtinError(name, std::string("yaml: ") + e.what()));
    }
}

// --- writer ---------------------------------------------------------------------------

bool needsQuotes(const std::string& s) {
    if (s.empty()) return true;
    bool non_finite = false;
    if (!resolvePlain(s, non_finite).isString() || non_finite || s == "<<") return true;
    constexpr std::string_view kIndicators = "-?:,[]{}#&*!|>'\"%@` \t";
    if (kIndicators.find(s.front()) != std::string_view::npos) return true;
    if (s.back() == ' ' || s.back() == '\t' || s.back() == ':') return true;
    if (s.starts_with("...")) return true;
    if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
    for (std::size_t i = 0; i < s.size();) {
        const auto d = decodeRune(s, i);
        if (d.rune < 0x20 || d.rune == 0x7F || (d.width == 1 && d.rune == kRuneError)) return true;
        i += d.width;
    }
    return false;
}

void appendScalarText(std::string& out, const std::string& s) {
    if (!needsQuotes(s)) {
        out += s;
        return;
    }
    // A YAML double-quoted scalar; JSON's escapes are valid YAML escapes.
    appendJsonString(out, s);
}

void appendIndent(std::string& out, int n) { out.append(static_cast<std::size_t>(n), ' '); }

bool isBlock(const Value& v) {
    return (v.isArray() && !v.asArray().empty()) || (v.isSet() && !v.asSet().empty()) ||
           (v.isObject() && !v.asObject().empty());
}

void appendInline(std::string& out, const Value& v) {
    switch (v.kind()) {
        case Kind::kString: appendScalarText(out, v.asString()); break;
        case Kind::kArray:
        case Kind::kSet: out += "[]"; break;
        case Kind::kObject: out += "{}"; break;
        default: appendJson(out, v); break;  // null, booleans, numbers
    }
}

void appendBlock(std::string& out, const Value& v, int indent, bool first_inline);

template <class Range>
void appendSequence(std::string& out, const Range& items, int indent, bool first_inline) {
    bool first = true;
    for (const auto& e : items) {
        if (!(first && first_inline)) appendIndent(out, indent);
        first = false;
        out += "- ";
        if (isBlock(e)) {
            appendBlock(out, e, indent + 2, true);
        } else {
            appendInline(out, e);
            out += '\n';
        }
    }
}

void appendBlock(std::string& out, const Value& v, int indent, bool first_inline) {
    if (v.isArray()) return appendSequence(out, v.asArray(), indent, first_inline);
    if (v.isSet()) return appendSequence(out, v.asSet(), indent, first_inline);
    // Members sorted by key text, as the JSON go-yaml starts from.
    std::vector<std::pair<std::string, const Value*>> members;
    for (const auto& [k, e] : v.asObject()) members.emplace_back(jsonKey(k), &e);
    std::stable_sort(members.begin(), members.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    bool first = true;
    for (const auto& [key, e] : members) {
        if (!(first && first_inline)) appendIndent(out, indent);
        first = false;
        appendScalarText(out, key);
        out += ':';
        if (e->isObject() && isBlock(*e)) {
            out += '\n';
            appendBlock(out, *e, indent + 2, false);
        } else if (isBlock(*e)) {
            out += '\n';
            appendBlock(out, *e, indent, false);  // go-yaml does not indent sequences in maps
        } else {
            out += ' ';
            appendInline(out, *e);
            out += '\n';
        }
    }
}

BuiltinResult yamlMarshal(Args args, BuiltinContext&) {
    std::string out;
    if (isBlock(args[0])) {
        appendBlock(out, args[0], 0, false);
    } else {
        appendInline(out, args[0]);
        out += '\n';
    }
    return ok(Value::string(std::move(out)));
}

BuiltinResult yamlUnmarshal(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "yaml.unmarshal";
    if (!args[0].isString()) return fail(typeError(kName, 1, "string", args[0]));
    auto v = parseYaml(kName, args[0].asString());
    if (!v) return fail(std::move(v.error()));
    return ok(std::move(*v));
}

// Only the YAML syntax counts here (go-yaml accepts .inf or null keys that JSON cannot hold).
BuiltinResult yamlIsValid(Args args, BuiltinContext&) {
    if (!args[0].isString()) return ok(Value::boolean(false));
    try {
        (void)YAML::Load(args[0].asString());
        return ok(Value::boolean(true));
    } catch (const std::exception&) {
        return ok(Value::boolean(false));
    }
}

}  // namespace

void addYamlBuiltins(std::vector<Builtin>& out) {
    out.push_back(Builtin{"yaml.marshal", 1, yamlMarshal});
    out.push_back(Builtin{"yaml.unmarshal", 1, yamlUnmarshal});
    out.push_back(Builtin{"yaml.is_valid", 1, yamlIsValid});
}

}  // namespace edge::policy::detail
