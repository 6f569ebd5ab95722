// json.*, base64*, hex.* and urlquery.* builtins with the behaviour of OPA's
// topdown/encoding.go and the Go standard library it relies on (encoding/json,
// encoding/base64, encoding/hex, net/url). yaml.* lives in builtins_yaml.cpp.
#include <algorithm>
#include <map>
#include <vector>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"
#include "shared/policy/go_strings.hpp"
#include "shared/policy/json_text.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;

constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kHexLower[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";

// Unary string -> value builtins share the operand check.
template <class F>
BuiltinFn stringBuiltin(std::string_view name, F f) {
    return [name, f](Args args, BuiltinContext&) -> BuiltinResult {
        if (!args[0].isString()) return fail(typeError(name, 1, "string", args[0]));
        return f(name, args[0].asString());
    };
}

BuiltinResult jsonMarshal(Args args, BuiltinContext&) {
    return ok(Value::string(args[0].toJson()));
}

BuiltinResult jsonMarshalWithOptions(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "json.marshal_with_options";
    if (!args[1].isObject()) return fail(typeError(kName, 2, "object", args[1]));
    std::string indent = "\t";
    std::string prefix;
    bool implicit_pretty = false;
    std::optional<bool> explicit_pretty;
    int idx = 0;
    for (const auto& [k, v] : args[1].asObject()) {
        const std::string at = std::to_string(idx++);
        if (!k.isString()) {
            return fail(operandError(kName, 2,
                                     "failed to stringify key " + k.toRego() + " at index " + at +
                                         ": operand " + at + " must be string but got " +
                                         std::string(k.typeName())));
        }
        const std::string& key = k.asString();
        if (key == "prefix" || key == "indent") {
            if (!v.isString()) {
                return fail(operandError(kName, 2,
                                         "key " + key + " failed cast to string: operand " + at +
                                             " must be string but got " +
                                             std::string(v.typeName())));
            }
            (key == "prefix" ? prefix : indent) = v.asString();
            implicit_pretty = true;
        } else if (key == "pretty") {
            if (!v.isBool()) return fail(operandError(kName, 2, "key pretty failed cast to bool"));
            explicit_pretty = v.asBool();
        } else {
            return fail(operandError(kName, 2, "object contained unknown key " + goQuote(key)));
        }
    }
    if (!explicit_pretty.value_or(implicit_pretty)) return ok(Value::string(args[0].toJson()));
    // MarshalIndent does not prefix the first line; OPA adds it.
    std::string out = prefix;
    const JsonIndent style{prefix, indent};
    appendJson(out, args[0], &style);
    return ok(Value::string(std::move(out)));
}

BuiltinResult jsonUnmarshal(std::string_view name, const std::string& s) {
    auto v = parseJson(s);
    if (!v) return fail(builtinError(name, v.error().message()));
    return ok(std::move(*v));
}

BuiltinResult jsonIsValid(Args args, BuiltinContext&) {
    return ok(Value::boolean(args[0].isString() && parseJson(args[0].asString()).has_value()));
}

std::string base64Encode(std::string_view in, const char* alphabet, bool pad) {
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
        const std::uint32_t v = static_cast<std::uint8_t>(in[i]) << 16 |
                                static_cast<std::uint8_t>(in[i + 1]) << 8 |
                                static_cast<std::uint8_t>(in[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out += alphabet[(v >> shift) & 0x3F];
    }
    const std::size_t rest = in.size() - i;
    if (rest > 0) {
        std::uint32_t v = static_cast<std::uint8_t>(in[i]) << 16;
        if (rest == 2) v |= static_cast<std::uint8_t>(in[i + 1]) << 8;
        out += alphabet[(v >> 18) & 0x3F];
        out += alphabet[(v >> 12) & 0x3F];
        if (rest == 2) out += alphabet[(v >> 6) & 0x3F];
        if (pad) out.append(rest == 2 ? 1 : 2, '=');
    }
    return out;
}

// Go's padded, non-strict base64 decoding (newlines are skipped). On failure `bad_at` is the
// offset Go's CorruptInputError reports.
bool base64Decode(std::string_view src, const char* alphabet, std::string& out,
                  std::size_t& bad_at) {
    std::uint8_t map[256];
    std::fill(std::begin(map), std::end(map), 0xFF);
    for (int k = 0; k < 64; ++k)
        map[static_cast<std::uint8_t>(alphabet[k])] = static_cast<std::uint8_t>(k);
    const auto skipNewlines = [&](std::size_t& si) {
        while (si < src.size() && (src[si] == '\n' || src[si] == '\r')) ++si;
    };
    std::size_t si = 0;
    while (si < src.size()) {
        std::uint8_t dbuf[4] = {0, 0, 0, 0};
        int dlen = 4;
        bool trailing_garbage = false;
        for (int j = 0; j < 4; ++j) {
            if (si == src.size()) {
                if (j == 0) return true;
                bad_at = si - static_cast<std::size_t>(j);
                return false;  // padding is required
            }
            const auto in = static_cast<std::uint8_t>(src[si++]);
            if (map[in] != 0xFF) {
                dbuf[j] = map[in];
                continue;
            }
            if (in == '\n' || in == '\r') {
                --j;
                continue;
            }
            if (in != '=' || j < 2) {
                bad_at = si - 1;
                return false;
            }
            if (j == 2) {  // "==" expected; the first '=' is consumed
                skipNewlines(si);
                if (si == src.size()) {
                    bad_at = src.size();
                    return false;
                }
                if (src[si] != '=') {
                    bad_at = si - 1;
                    return false;
                }
                ++si;
            }
            skipNewlines(si);
            if (si < src.size()) {
                trailing_garbage = true;
                bad_at = si;
            }
            dlen = j;
            break;
        }
        const std::uint32_t v = static_cast<std::uint32_t>(dbuf[0]) << 18 |
                                static_cast<std::uint32_t>(dbuf[1]) << 12 |
                                static_cast<std::uint32_t>(dbuf[2]) << 6 | dbuf[3];
        out += static_cast<char>(v >> 16);
        if (dlen >= 3) out += static_cast<char>((v >> 8) & 0xFF);
        if (dlen == 4) out += static_cast<char>(v & 0xFF);
        if (trailing_garbage) return false;
    }
    return true;
}

BuiltinResult decodeBase64(std::string_view name, std::string_view s, const char* alphabet) {
    std::string out;
    std::size_t bad_at = 0;
    if (!base64Decode(s, alphabet, out, bad_at)) {
        return fail(
            builtinError(name, "illegal base64 data at input byte " + std::to_string(bad_at)));
    }
    return ok(Value::string(std::move(out)));
}

BuiltinResult base64IsValid(Args args, BuiltinContext&) {
    if (!args[0].isString()) return ok(Value::boolean(false));
    std::string out;
    std::size_t bad_at = 0;
    return ok(Value::boolean(base64Decode(args[0].asString(), kStdAlphabet, out, bad_at)));
}

BuiltinResult base64UrlDecode(std::string_view name, const std::string& in) {
    // Unpadded input is padded first (RFC 7515 appendix C), as OPA does.
    std::string s = in;
    if (!s.ends_with('=')) {
        switch (s.size() % 4) {
            case 2: s += "=="; break;
            case 3: s += "="; break;
            case 1: return fail(builtinError(name, "illegal base64url string: " + s));
            default: break;
        }
    }
    return decodeBase64(name, s, kUrlAlphabet);
}

int hexDigit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Go's InvalidByteError text: "encoding/hex: invalid byte: U+0067 'g'".
std::string invalidHexByte(char c) {
    const auto r = static_cast<char32_t>(static_cast<unsigned char>(c));
    std::string out = "encoding/hex: invalid byte: U+00";
    out += kHexUpper[r >> 4];
    out += kHexUpper[r & 0xF];
    if (isPrintRune(r)) {
        out += " '";
        appendRune(out, r);
        out += '\'';
    }
    return out;
}

BuiltinResult hexEncode(std::string_view, const std::string& s) {
    std::string out;
    out.reserve(s.size() * 2);
    for (const char c : s) {
        out += kHexLower[static_cast<unsigned char>(c) >> 4];
        out += kHexLower[static_cast<unsigned char>(c) & 0xF];
    }
    return ok(Value::string(std::move(out)));
}

BuiltinResult hexDecode(std::string_view name, const std::string& s) {
    std::string out;
    out.reserve(s.size() / 2);
    std::size_t j = 1;
    for (; j < s.size(); j += 2) {
        const int a = hexDigit(s[j - 1]);
        const int b = hexDigit(s[j]);
        if (a < 0) return fail(builtinError(name, invalidHexByte(s[j - 1])));
        if (b < 0) return fail(builtinError(name, invalidHexByte(s[j])));
        out += static_cast<char>(a << 4 | b);
    }
    if (s.size() % 2 == 1) {
        if (hexDigit(s[j - 1]) < 0) return fail(builtinError(name, invalidHexByte(s[j - 1])));
        return fail(builtinError(name, "encoding/hex: odd length hex string"));
    }
    return ok(Value::string(std::move(out)));
}

// net/url QueryEscape: unreserved bytes stay, ' ' becomes '+', the rest %XX.
std::string queryEscape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (const char c : s) {
        const auto b = static_cast<unsigned char>(c);
        if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
            b == '-' || b == '_' || b == '.' || b == '~') {
            out += c;
        } else if (b == ' ') {
            out += '+';
        } else {
            out += '%';
            out += kHexUpper[b >> 4];
            out += kHexUpper[b & 0xF];
        }
    }
    return out;
}

// net/url QueryUnescape; the error names the bad escape as Go does.
Result<std::string> queryUnescape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] != '%') {
            out += s[i];
        } else {
            if (i + 2 >= s.size() || hexDigit(s[i + 1]) < 0 || hexDigit(s[i + 2]) < 0) {
                const std::string_view bad = s.substr(i, std::min<std::size_t>(3, s.size() - i));
                return fail(SharedErrc::kParse, "invalid URL escape " + goQuote(bad));
            }
            out += static_cast<char>(hexDigit(s[i + 1]) << 4 | hexDigit(s[i + 2]));
            i += 2;
        }
    }
    return out;
}

BuiltinResult urlQueryEncode(std::string_view, const std::string& s) {
    return ok(Value::string(queryEscape(s)));
}

BuiltinResult urlQueryDecode(std::string_view name, const std::string& s) {
    auto out = queryUnescape(s);
    if (!out) return fail(builtinError(name, out.error().message()));
    return ok(Value::string(std::move(*out)));
}

BuiltinResult urlQueryEncodeObject(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "urlquery.encode_object";
    if (!args[0].isObject()) return fail(typeError(kName, 1, "object", args[0]));
    const auto bad = [&] {
        return fail(operandError(kName, 1, "values must be string, array[string], or set[string]"));
    };
    // url.Values.Encode: keys sorted, each key's values in order.
    std::map<std::string, std::vector<std::string>> query;
    for (const auto& [k, v] : args[0].asObject()) {
        auto& values = query[jsonKey(k)];
        if (v.isString()) {
            values = {v.asString()};
            continue;
        }
        const auto addAll = [&](const auto& items) {
            for (const auto& e : items) {
                if (!e.isString()) return false;
                values.push_back(e.asString());
            }
            return true;
        };
        if (!(v.isArray() ? addAll(v.asArray()) : v.isSet() && addAll(v.asSet()))) return bad();
    }
    std::string out;
    for (const auto& [k, values] : query) {
        for (const auto& v : values) {
            if (!out.empty()) out += '&';
            out += queryEscape(k);
            out += '=';
            out += queryEscape(v);
        }
    }
    return ok(Value::string(std::move(out)));
}

BuiltinResult urlQueryDecodeObject(std::string_view name, const std::string& s) {
    // url.ParseQuery: '&'-separated pairs; a ';' or bad escape is an error.
    std::map<std::string, Array> params;
    std::optional<Error> first_error;
    std::string_view rest(s);
    while (!rest.empty()) {
        const std::size_t amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (pair.find(';') != std::string_view::npos) {
            if (!first_error)
                first_error = builtinError(name, "invalid semicolon separator in query");
            continue;
        }
        if (pair.empty()) continue;
        const std::size_t eq = pair.find('=');
        auto key = queryUnescape(pair.substr(0, eq));
        auto value =
            queryUnescape(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
        if (!key || !value) {
            if (!first_error)
                first_error = builtinError(name, (!key ? key : value).error().message());
            continue;
        }
        params[std::move(*key)].push_back(Value::string(std::move(*value)));
    }
    if (first_error) return fail(std::move(*first_error));
    Object out;
    for (auto& [k, values] : params) out.emplace(Value::string(k), Value::array(std::move(values)));
    return ok(Value::object(std::move(out)));
}

void add(std::vector<Builtin>& out, std::string_view name, int arity, BuiltinFn fn) {
    out.push_back(Builtin{name, arity, std::move(fn)});
}

}  // namespace

void addEncodingBuiltins(std::vector<Builtin>& out) {
    add(out, "json.marshal", 1, jsonMarshal);
    add(out, "json.marshal_with_options", 2, jsonMarshalWithOptions);
    add(out, "json.unmarshal", 1, stringBuiltin("json.unmarshal", jsonUnmarshal));
    add(out, "json.is_valid", 1, jsonIsValid);

    add(out, "base64.encode", 1,
        stringBuiltin("base64.encode", [](std::string_view, const std::string& s) {
            return ok(Value::string(base64Encode(s, kStdAlphabet, true)));
        }));
    add(out, "base64.decode", 1,
        stringBuiltin("base64.decode", [](std::string_view name, const std::string& s) {
            return decodeBase64(name, s, kStdAlphabet);
        }));
    add(out, "base64.is_valid", 1, base64IsValid);
    add(out, "base64url.encode", 1,
        stringBuiltin("base64url.encode", [](std::string_view, const std::string& s) {
            return ok(Value::string(base64Encode(s, kUrlAlphabet, true)));
        }));
    add(out, "base64url.encode_no_pad", 1,
        stringBuiltin("base64url.encode_no_pad", [](std::string_view, const std::string& s) {
            return ok(Value::string(base64Encode(s, kUrlAlphabet, false)));
        }));
    add(out, "base64url.decode", 1, stringBuiltin("base64url.decode", base64UrlDecode));

    add(out, "hex.encode", 1, stringBuiltin("hex.encode", hexEncode));
    add(out, "hex.decode", 1, stringBuiltin("hex.decode", hexDecode));

    add(out, "urlquery.encode", 1, stringBuiltin("urlquery.encode", urlQueryEncode));
    add(out, "urlquery.decode", 1, stringBuiltin("urlquery.decode", urlQueryDecode));
    add(out, "urlquery.encode_object", 1, urlQueryEncodeObject);
    add(out, "urlquery.decode_object", 1,
        stringBuiltin("urlquery.decode_object", urlQueryDecodeObject));

    addYamlBuiltins(out);
}

}  // namespace edge::policy::detail
