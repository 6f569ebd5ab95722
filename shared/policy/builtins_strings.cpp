// String builtins, with OPA's (Go's) semantics: indexes and lengths count code points,
// case mapping and white space are Unicode's, error texts are OPA's.
#include <algorithm>
#include <array>
#include <cmath>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"
#include "shared/policy/go_format.hpp"
#include "shared/policy/go_strings.hpp"
#include "shared/policy/go_template.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;

/// Strings of an array or set operand (any other type is rejected by the caller).
Result<std::vector<std::string_view>> stringElements(std::string_view name, int pos,
                                                     const Value& v) {
    std::vector<std::string_view> out;
    auto add = [&](const Value& e) -> bool {
        if (!e.isString()) return false;
        out.push_back(e.asString());
        return true;
    };
    if (v.isArray()) {
        for (const auto& e : v.asArray()) {
            if (!add(e)) return fail(elementError(name, pos, v, "string", e));
        }
    } else {
        for (const auto& e : v.asSet()) {
            if (!add(e)) return fail(elementError(name, pos, v, "string", e));
        }
    }
    return out;
}

// A builtin whose operands must all be strings.
template <int N, class F>
Builtin stringsOnly(std::string_view name, F f) {
    return Builtin{name, N, [name, f](Args args, BuiltinContext&) -> BuiltinResult {
                       std::array<std::string_view, N> s;
                       for (int k = 0; k < N; ++k) {
                           const auto& a = args[static_cast<std::size_t>(k)];
                           if (!a.isString()) return fail(typeError(name, k + 1, "string", a));
                           s[static_cast<std::size_t>(k)] = a.asString();
                       }
                       return f(s);
                   }};
}

std::vector<char32_t> runesOf(std::string_view s) {
    std::vector<char32_t> out;
    for (std::size_t i = 0; i < s.size();) {
        const auto d = decodeRune(s, i);
        out.push_back(d.rune);
        i += d.width;
    }
    return out;
}

std::string stringOf(std::span<const char32_t> runes) {
    std::string out;
    for (char32_t r : runes) appendRune(out, r);
    return out;
}

bool inCutset(char32_t r, const std::vector<char32_t>& cutset) {
    return std::find(cutset.begin(), cutset.end(), r) != cutset.end();
}

std::string_view trimLeftFunc(std::string_view s, auto pred) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto d = decodeRune(s, i);
        if (!pred(d.rune)) break;
        i += d.width;
    }
    return s.substr(i);
}

std::string_view trimRightFunc(std::string_view s, auto pred) {
    std::size_t end = s.size();
    while (end > 0) {
        std::size_t start = end - 1;
        while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 &&
               end - start < 4)
            --start;
        auto d = decodeRune(s, start);
        if (start + d.width != end) {  // not a whole rune: one bad byte
            start = end - 1;
            d = {kRuneError, 1};
        }
        if (!pred(d.rune)) break;
        end = start;
    }
    return s.substr(0, end);
}

// Go's strings.Replace(s, old, new, -1).
std::string replaceAll(std::string_view s, std::string_view old_s, std::string_view new_s) {
    std::string out;
    if (old_s.empty()) {
        for (std::size_t i = 0; i < s.size();) {
            out += new_s;
            const auto w = decodeRune(s, i).width;
            out += s.substr(i, w);
            i += w;
        }
        out += new_s;
        return out;
    }
    std::size_t last = 0;
    for (auto pos = s.find(old_s); pos != std::string_view::npos; pos = s.find(old_s, last)) {
        out += s.substr(last, pos - last);
        out += new_s;
        last = pos + old_s.size();
    }
    out += s.substr(last);
    return out;
}

// Go's strings.NewReplacer(pairs...).Replace(s): at each position the first pair (in argument
// order) whose old string matches wins; matches do not overlap.
std::string replaceMany(std::string_view s,
                        const std::vector<std::pair<std::string_view, std::string_view>>& pairs) {
    std::string out;
    std::size_t last = 0;
    bool prev_empty = false;
    for (std::size_t i = 0; i <= s.size();) {
        const std::pair<std::string_view, std::string_view>* match = nullptr;
        for (const auto& p : pairs) {
            if (p.first.empty() && prev_empty) continue;
            if (s.substr(i).starts_with(p.first)) {
                match = &p;
                break;
            }
        }
        prev_empty = match != nullptr && match->first.empty();
        if (match != nullptr) {
            out += s.substr(last, i - last);
            out += match->second;
            i += match->first.size();
            last = i;
            continue;
        }
        i += std::max<std::size_t>(decodeRune(s, i).width, 1);
    }
    if (last < s.size()) out += s.substr(last);
    return out;
}

std::size_t countOccurrences(std::string_view s, std::string_view sub) {
    if (sub.empty()) return runeCount(s) + 1;
    std::size_t n = 0;
    for (auto pos = s.find(sub); pos != std::string_view::npos; pos = s.find(sub, pos + sub.size()))
        ++n;
    return n;
}

std::vector<std::int64_t> runeIndexes(std::string_view base, std::string_view search, bool all) {
    std::vector<std::int64_t> out;
    const auto b = runesOf(base);
    const auto s = runesOf(search);
    for (std::size_t i = 0; i + s.size() <= b.size(); ++i) {
        if (std::equal(s.begin(), s.end(), b.begin() + static_cast<std::ptrdiff_t>(i))) {
            out.push_back(static_cast<std::int64_t>(i));
            if (!all) break;
        }
    }
    return out;
}

BuiltinResult concat(Args args, BuiltinContext&) {
    if (!args[0].isString()) return fail(typeError("concat", 1, "string", args[0]));
    if (!args[1].isArray() && !args[1].isSet()) {
        return fail(typeError("concat", 2, "one of {set, array}", args[1]));
    }
    auto parts = stringElements("concat", 2, args[1]);
    if (!parts) return fail(parts.error());
    std::string out;
    for (std::size_t k = 0; k < parts->size(); ++k) {
        if (k > 0) out += args[0].asString();
        out += (*parts)[k];
    }
    return ok(Value::string(std::move(out)));
}

BuiltinResult formatInt(Args args, BuiltinContext&) {
    if (!args[0].isNumber()) return fail(typeError("format_int", 1, "number", args[0]));
    if (!args[1].isNumber()) return fail(typeError("format_int", 2, "number", args[1]));
    std::int64_t base = 0;
    if (!args[1].asNumber().toInt(base) || (base != 2 && base != 8 && base != 10 && base != 16)) {
        return fail(operandError("format_int", 2, "must be one of {2, 8, 10, 16}"));
    }
    // OPA truncates toward zero (big.Float.Int).
    const Number& n = args[0].asNumber();
    FmtArg arg;
    std::int64_t i = 0;
    if (n.toInt(i)) {
        arg = FmtArg{FmtArg::Type::kInt, i, 0, {}};
    } else {
        const double t = std::trunc(n.d);
        if (!std::isfinite(t)) return fail(builtinError("format_int", "number is not finite"));
        arg = Number::ofDouble(t).toInt(i) ? FmtArg{FmtArg::Type::kInt, i, 0, {}}
                                           : FmtArg{FmtArg::Type::kBigInt, 0, t, {}};
    }
    const char* verb = base == 2 ? "%b" : base == 8 ? "%o" : base == 10 ? "%d" : "%x";
    return ok(Value::string(goSprintf(verb, std::span<const FmtArg>(&arg, 1))));
}

BuiltinResult substring(Args args, BuiltinContext&) {
    if (!args[0].isString()) return fail(typeError("substring", 1, "string", args[0]));
    std::int64_t start = 0;
    std::int64_t length = 0;
    for (int k : {1, 2}) {
        const auto& a = args[static_cast<std::size_t>(k)];
        auto v = intOperand("substring", k + 1, a);
        if (!v) return fail(v.error());
        (k == 1 ? start : length) = *v;
    }
    if (start < 0) return fail(builtinError("substring", "negative offset"));
    const auto runes = runesOf(args[0].asString());
    const auto n = static_cast<std::int64_t>(runes.size());
    if (start >= n) return ok(Value::string(""));
    const std::int64_t upto = length < 0 ? n : std::min(n, start + std::min(length, n));
    return ok(Value::string(stringOf(std::span(runes).subspan(
        static_cast<std::size_t>(start), static_cast<std::size_t>(upto - start)))));
}

BuiltinResult replaceN(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "strings.replace_n";
    if (!args[0].isObject()) return fail(typeError(kName, 1, "object", args[0]));
    if (!args[1].isString()) return fail(typeError(kName, 2, "string", args[1]));
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
    for (const auto& [k, v] : args[0].asObject()) {  // keys in sorted order, as OPA sorts them
        if (!k.isString())
            return fail(operandError(kName, 1, "non-string key found in pattern object"));
        if (!v.isString())
            return fail(operandError(kName, 1, "non-string value found in pattern object"));
        pairs.emplace_back(k.asString(), v.asString());
    }
    return ok(Value::string(replaceMany(args[1].asString(), pairs)));
}

BuiltinResult sprintfBuiltin(Args args, BuiltinContext&) {
    if (!args[0].isString()) return fail(typeError("sprintf", 1, "string", args[0]));
    if (!args[1].isArray()) return fail(typeError("sprintf", 2, "array", args[1]));
    std::vector<FmtArg> fmt_args;
    fmt_args.reserve(args[1].asArray().size());
    for (const auto& v : args[1].asArray()) fmt_args.push_back(fmtArgOf(v));
    return ok(Value::string(goSprintf(args[0].asString(), fmt_args)));
}

// strings.any_prefix_match / any_suffix_match: operands are a string or an array/set of them.
template <bool kSuffix>
BuiltinResult anyAffixMatch(Args args, BuiltinContext&) {
    constexpr std::string_view kName =
        kSuffix ? "strings.any_suffix_match" : "strings.any_prefix_match";
    std::array<std::vector<std::string_view>, 2> lists;
    for (int k = 0; k < 2; ++k) {
        const auto& a = args[static_cast<std::size_t>(k)];
        if (a.isString()) {
            lists[static_cast<std::size_t>(k)] = {a.asString()};
        } else if (a.isArray() || a.isSet()) {
            auto e = stringElements(kName, k + 1, a);
            if (!e) return fail(e.error());
            lists[static_cast<std::size_t>(k)] = std::move(*e);
        } else {
            return fail(typeError(kName, k + 1, "one of {string, set, array}", a));
        }
    }
    for (auto s : lists[0]) {
        for (auto affix : lists[1]) {
            if (kSuffix ? s.ends_with(affix) : s.starts_with(affix))
                return ok(Value::boolean(true));
        }
    }
    return ok(Value::boolean(false));
}

BuiltinResult renderTemplate(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "strings.render_template";
    if (!args[0].isString()) return fail(typeError(kName, 1, "string", args[0]));
    if (!args[1].isObject()) return fail(typeError(kName, 2, "object", args[1]));
    auto text = renderGoTemplate(args[0].asString(), args[1]);
    if (!text) return fail(builtinError(kName, text.error().message()));
    return ok(Value::string(std::move(*text)));
}

}  // namespace

void addStringBuiltins(std::vector<Builtin>& out) {
    using S1 = std::array<std::string_view, 1>;
    using S2 = std::array<std::string_view, 2>;
    using S3 = std::array<std::string_view, 3>;
    auto str = [](std::string s) { return ok(Value::string(std::move(s))); };
    auto boolean = [](bool b) { return ok(Value::boolean(b)); };

    out.push_back({"concat", 2, concat});
    out.push_back({"format_int", 2, formatInt});
    out.push_back({"substring", 3, substring});
    out.push_back({"sprintf", 2, sprintfBuiltin});
    out.push_back({"strings.render_template", 2, renderTemplate});
    out.push_back({"strings.replace_n", 2, replaceN});
    out.push_back({"strings.any_prefix_match", 2, anyAffixMatch<false>});
    out.push_back({"strings.any_suffix_match", 2, anyAffixMatch<true>});

    out.push_back(stringsOnly<2>(
        "contains", [=](S2 s) { return boolean(s[0].find(s[1]) != std::string_view::npos); }));
    out.push_back(
        stringsOnly<2>("startswith", [=](S2 s) { return boolean(s[0].starts_with(s[1])); }));
    out.push_back(stringsOnly<2>("endswith", [=](S2 s) { return boolean(s[0].ends_with(s[1])); }));
    out.push_back(stringsOnly<1>("lower", [=](S1 s) { return str(toLower(s[0])); }));
    out.push_back(stringsOnly<1>("upper", [=](S1 s) { return str(toUpper(s[0])); }));
    out.push_back(stringsOnly<2>("indexof", [](S2 s) -> BuiltinResult {
        if (s[1].empty()) return fail(builtinError("indexof", "empty search character"));
        const auto found = runeIndexes(s[0], s[1], false);
        return ok(Value::number(found.empty() ? std::int64_t{-1} : found.front()));
    }));
    out.push_back(stringsOnly<2>("indexof_n", [](S2 s) -> BuiltinResult {
        if (s[1].empty()) return fail(builtinError("indexof_n", "empty search character"));
        Array items;
        for (auto i : runeIndexes(s[0], s[1], true)) items.push_back(Value::number(i));
        return ok(Value::array(std::move(items)));
    }));
    out.push_back(stringsOnly<2>("split", [](S2 s) -> BuiltinResult {
        Array parts;
        if (s[1].empty()) {
            for (std::size_t i = 0; i < s[0].size();) {
                const auto w = decodeRune(s[0], i).width;
                parts.push_back(Value::string(std::string(s[0].substr(i, w))));
                i += w;
            }
            return ok(Value::array(std::move(parts)));
        }
        std::size_t last = 0;
        for (auto pos = s[0].find(s[1]); pos != std::string_view::npos;
             pos = s[0].find(s[1], last)) {
            parts.push_back(Value::string(std::string(s[0].substr(last, pos - last))));
            last = pos + s[1].size();
        }
        parts.push_back(Value::string(std::string(s[0].substr(last))));
        return ok(Value::array(std::move(parts)));
    }));
    out.push_back(
        stringsOnly<3>("replace", [=](S3 s) { return str(replaceAll(s[0], s[1], s[2])); }));
    out.push_back(stringsOnly<2>("trim", [=](S2 s) {
        const auto cut = runesOf(s[1]);
        auto in = [&](char32_t r) { return inCutset(r, cut); };
        return str(std::string(trimRightFunc(trimLeftFunc(s[0], in), in)));
    }));
    out.push_back(stringsOnly<2>("trim_left", [=](S2 s) {
        const auto cut = runesOf(s[1]);
        return str(std::string(trimLeftFunc(s[0], [&](char32_t r) { return inCutset(r, cut); })));
    }));
    out.push_back(stringsOnly<2>("trim_right", [=](S2 s) {
        const auto cut = runesOf(s[1]);
        return str(std::string(trimRightFunc(s[0], [&](char32_t r) { return inCutset(r, cut); })));
    }));
    out.push_back(stringsOnly<2>("trim_prefix", [=](S2 s) {
        return str(std::string(s[0].starts_with(s[1]) ? s[0].substr(s[1].size()) : s[0]));
    }));
    out.push_back(stringsOnly<2>("trim_suffix", [=](S2 s) {
        return str(
            std::string(s[0].ends_with(s[1]) ? s[0].substr(0, s[0].size() - s[1].size()) : s[0]));
    }));
    out.push_back(stringsOnly<1>("trim_space", [=](S1 s) {
        return str(std::string(trimRightFunc(trimLeftFunc(s[0], isSpaceRune), isSpaceRune)));
    }));
    out.push_back(stringsOnly<1>("strings.reverse", [=](S1 s) {
        auto runes = runesOf(s[0]);
        std::reverse(runes.begin(), runes.end());
        return str(stringOf(runes));
    }));
    out.push_back(stringsOnly<2>("strings.count", [](S2 s) {
        return ok(Value::number(static_cast<std::int64_t>(countOccurrences(s[0], s[1]))));
    }));
}

}  // namespace edge::policy::detail
