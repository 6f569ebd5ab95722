// Value <-> JSON text: a strict RFC 8259 reader and a writer that matches Go's encoding/json.
#include <algorithm>
#include <charconv>
#include <utility>

#include "shared/policy/go_strings.hpp"
#include "shared/policy/json_text.hpp"
#include "shared/policy/value.hpp"

namespace edge::policy {
namespace detail {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr int kMaxJsonDepth = 512;

void newline(std::string& out, const JsonIndent& style, int depth) {
    out += '\n';
    out += style.prefix;
    for (int d = 0; d < depth; ++d) out += style.indent;
}

void appendJsonAt(std::string& out, const Value& v, const JsonIndent* style, int depth);

template <class Range>
void appendJsonList(std::string& out, const Range& items, const JsonIndent* style, int depth) {
    if (items.empty()) {
        out += "[]";
        return;
    }
    out += '[';
    bool first = true;
    for (const auto& e : items) {
        if (!first) out += ',';
        first = false;
        if (style) newline(out, *style, depth + 1);
        appendJsonAt(out, e, style, depth + 1);
    }
    if (style) newline(out, *style, depth);
    out += ']';
}

void appendJsonObject(std::string& out, const Object& items, const JsonIndent* style, int depth) {
    if (items.empty()) {
        out += "{}";
        return;
    }
    // Go marshals a map[string]any: members sorted by name, one member per name.
    std::vector<std::pair<std::string, const Value*>> members;
    members.reserve(items.size());
    for (const auto& [k, e] : items) members.emplace_back(jsonKey(k), &e);
    std::stable_sort(members.begin(), members.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    out += '{';
    bool first = true;
    for (std::size_t i = 0; i < members.size(); ++i) {
        if (i + 1 < members.size() && members[i].first == members[i + 1].first) continue;
        if (!first) out += ',';
        first = false;
        if (style) newline(out, *style, depth + 1);
        appendJsonString(out, members[i].first);
        out += style ? ": " : ":";
        appendJsonAt(out, *members[i].second, style, depth + 1);
    }
    if (style) newline(out, *style, depth);
    out += '}';
}

void appendJsonAt(std::string& out, const Value& v, const JsonIndent* style, int depth) {
    switch (v.kind()) {
        case Kind::kNull: out += "null"; return;
        case Kind::kBool: out += v.asBool() ? "true" : "false"; return;
        case Kind::kNumber: out += formatNumber(v.asNumber()); return;
        case Kind::kString: appendJsonString(out, v.asString()); return;
        case Kind::kArray: appendJsonList(out, v.asArray(), style, depth); return;
        case Kind::kSet: appendJsonList(out, v.asSet(), style, depth); return;
        case Kind::kObject: appendJsonObject(out, v.asObject(), style, depth); return;
    }
}

// Go's quoteChar for error messages: 'x', '\'' , '"', '\n', '\x01'.
std::string quoteChar(unsigned char c) {
    if (c == '\'') return "'\\''";
    if (c == '"') return "'\"'";
    const std::string q = goQuote(std::string_view(reinterpret_cast<const char*>(&c), 1));
    return "'" + q.substr(1, q.size() - 2) + "'";
}

class JsonParser {
public:
    explicit JsonParser(std::string_view text) : text_(text) {}

    Result<Value> parse() {
        skipSpace();
        auto v = parseValue(0);
        if (!v) return v;
        skipSpace();
        if (pos_ < text_.size()) return unexpected("after top-level value");
        return v;
    }

private:
    std::unexpected<Error> error(std::string what) const {
        return fail(SharedErrc::kParse, what + " at offset " + std::to_string(pos_));
    }
    std::unexpected<Error> unexpected(std::string_view context) const {
        if (pos_ >= text_.size()) return fail(SharedErrc::kParse, "unexpected end of JSON input");
        return error("invalid character " + quoteChar(static_cast<unsigned char>(text_[pos_])) +
                     " " + std::string(context));
    }

    void skipSpace() {
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return;
            ++pos_;
        }
    }

    bool consumeLiteral(std::string_view word) {
        if (text_.substr(pos_, word.size()) != word) return false;
        pos_ += word.size();
        return true;
    }

    Result<Value> parseValue(int depth) {
        if (pos_ >= text_.size()) return unexpected("");
        switch (text_[pos_]) {
            case '{': return parseObject(depth + 1);
            case '[': return parseArray(depth + 1);
            case '"': {
                auto s = parseString();
                if (!s) return std::unexpected(std::move(s.error()));
                return Value::string(std::move(*s));
            }
            case 't':
                if (consumeLiteral("true")) return Value::boolean(true);
                break;
            case 'f':
                if (consumeLiteral("false")) return Value::boolean(false);
                break;
            case 'n':
                if (consumeLiteral("null")) return Value::null();
                break;
            default:
                if (text_[pos_] == '-' || (text_[pos_] >= '0' && text_[pos_] <= '9')) {
                    return parseNumber();
                }
                break;
        }
        return unexpected("looking for beginning of value");
    }

    // Members go straight into the map while keys arrive in order (an insert at the end is O(1))
    // or the object is small; a large object in another order is gathered and sorted once, so
    // big documents load in near-linear time instead of n tree searches.
    struct ObjectBuilder {
        static constexpr std::size_t kSmall = 32;
        Object items;
        std::vector<std::pair<std::string, Value>> gathered;

        void add(std::string key, Value value) {
            if (gathered.empty()) {
                if (items.empty() || std::prev(items.end())->first.asString() < key) {
                    items.emplace_hint(items.end(), Value::string(std::move(key)), std::move(value));
                    return;
                }
                if (items.size() < kSmall) {
                    items.insert_or_assign(Value::string(std::move(key)), std::move(value));
                    return;
                }
                gathered.reserve(items.size() * 2);
                while (!items.empty()) {
                    auto node = items.extract(items.begin());
                    gathered.emplace_back(node.key().asString(), std::move(node.mapped()));
                }
            }
            gathered.emplace_back(std::move(key), std::move(value));
        }

        Object finish() {
            if (gathered.empty()) return std::move(items);
            std::stable_sort(gathered.begin(), gathered.end(),
                             [](const auto& a, const auto& b) { return a.first < b.first; });
            Object out;
            for (std::size_t i = 0; i < gathered.size(); ++i) {
                // A repeated key: the last one wins.
                if (i + 1 < gathered.size() && gathered[i + 1].first == gathered[i].first) continue;
                out.emplace_hint(out.end(), Value::string(std::move(gathered[i].first)), std::move(gathered[i].second));
            }
            return out;
        }
    };

    Result<Value> parseObject(int depth) {
        if (depth > kMaxJsonDepth)
            return error("exceeded max depth " + std::to_string(kMaxJsonDepth));
        ++pos_;  // '{'
        skipSpace();
        if (pos_ < text_.size() && text_[pos_] == '}') {
            ++pos_;
            return Value::emptyObject();
        }
        ObjectBuilder members;
        while (true) {
            skipSpace();
            if (pos_ >= text_.size() || text_[pos_] != '"') {
                return unexpected("looking for beginning of object key string");
            }
            auto key = parseString();
            if (!key) return std::unexpected(std::move(key.error()));
            skipSpace();
            if (pos_ >= text_.size() || text_[pos_] != ':') return unexpected("after object key");
            ++pos_;
            skipSpace();
            auto v = parseValue(depth);
            if (!v) return v;
            members.add(std::move(*key), std::move(*v));
            skipSpace();
            if (pos_ < text_.size() && text_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < text_.size() && text_[pos_] == '}') {
                ++pos_;
                return Value::object(members.finish());
            }
            return unexpected("after object key:value pair");
        }
    }

    Result<Value> parseArray(int depth) {
        if (depth > kMaxJsonDepth)
            return error("exceeded max depth " + std::to_string(kMaxJsonDepth));
        ++pos_;  // '['
        Array items;
        skipSpace();
        if (pos_ < text_.size() && text_[pos_] == ']') {
            ++pos_;
            return Value::array(std::move(items));
        }
        while (true) {
            skipSpace();
            auto v = parseValue(depth);
            if (!v) return v;
            items.push_back(std::move(*v));
            skipSpace();
            if (pos_ < text_.size() && text_[pos_] == ',') {
                ++pos_;
                continue;
            }
            if (pos_ < text_.size() && text_[pos_] == ']') {
                ++pos_;
                return Value::array(std::move(items));
            }
            return unexpected("after array element");
        }
    }

    bool digitAt(std::size_t p) const {
        return p < text_.size() && text_[p] >= '0' && text_[p] <= '9';
    }

    Result<Value> parseNumber() {
        const std::size_t start = pos_;
        bool integral = true;
        if (text_[pos_] == '-') ++pos_;
        if (!digitAt(pos_)) return unexpected("in numeric literal");
        if (text_[pos_] == '0') {
            ++pos_;
        } else {
            while (digitAt(pos_)) ++pos_;
        }
        if (pos_ < text_.size() && text_[pos_] == '.') {
            integral = false;
            ++pos_;
            if (!digitAt(pos_)) return unexpected("after decimal point in numeric literal");
            while (digitAt(pos_)) ++pos_;
        }
        if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
            integral = false;
            ++pos_;
            if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) ++pos_;
            if (!digitAt(pos_)) return unexpected("in exponent of numeric literal");
            while (digitAt(pos_)) ++pos_;
        }
        const char* first = text_.data() + start;
        const char* last = text_.data() + pos_;
        (void)integral;
        auto n = Number::ofLiteral(std::string_view(first, static_cast<std::size_t>(last - first)));
        if (!n) {
            return fail(SharedErrc::kParse, "number " + std::string(first, last) +
                                                " out of range at offset " + std::to_string(start));
        }
        return Value::number(std::move(*n));
    }

    int hexValue(std::size_t p) const {
        if (p >= text_.size()) return -1;
        const char c = text_[p];
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    // Four hex digits after "\u" at pos_; -1 (with pos_ on the bad character) when malformed.
    long readHex4() {
        long v = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = hexValue(pos_);
            if (h < 0) return -1;
            v = v * 16 + h;
            ++pos_;
        }
        return v;
    }

    Result<std::string> parseString() {
        ++pos_;  // opening quote
        std::string out;
        while (true) {
            const std::size_t run = pos_;
            while (pos_ < text_.size()) {
                const auto c = static_cast<unsigned char>(text_[pos_]);
                if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
                ++pos_;
            }
            out.append(text_.substr(run, pos_ - run));
            if (pos_ >= text_.size()) return unexpected("");
            const auto c = static_cast<unsigned char>(text_[pos_]);
            if (c == '"') {
                ++pos_;
                return out;
            }
            if (c < 0x20) return unexpected("in string literal");
            if (c >= 0x80) {
                // Go keeps valid UTF-8 and replaces each invalid byte with U+FFFD.
                const auto d = decodeRune(text_, pos_);
                if (d.width == 1 && d.rune == kRuneError) {
                    appendRune(out, kRuneError);
                } else {
                    out.append(text_.substr(pos_, d.width));
                }
                pos_ += d.width;
                continue;
            }
            ++pos_;  // backslash
            if (pos_ >= text_.size()) return unexpected("");
            const char e = text_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    long cp = readHex4();
                    if (cp < 0) return unexpected("in \\u hexadecimal character escape");
                    if (cp >= 0xD800 && cp < 0xDC00) {
                        // A high surrogate pairs with an immediately following low one.
                        const std::size_t save = pos_;
                        long low = -1;
                        if (text_.substr(pos_, 2) == "\\u") {
                            pos_ += 2;
                            low = readHex4();
                        }
                        if (low >= 0xDC00 && low < 0xE000) {
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        } else {
                            pos_ = save;
                            cp = kRuneError;
                        }
                    } else if (cp >= 0xDC00 && cp < 0xE000) {
                        cp = kRuneError;
                    }
                    appendRune(out, static_cast<char32_t>(cp));
                    break;
                }
                default: --pos_; return unexpected("in string escape code");
            }
        }
    }

    std::string_view text_;
    std::size_t pos_ = 0;
};

}  // namespace

void appendJson(std::string& out, const Value& v, const JsonIndent* indent) {
    appendJsonAt(out, v, indent, 0);
}

void appendJsonString(std::string& out, std::string_view s) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            ++i;
            if (b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&') {
                out += static_cast<char>(b);
                continue;
            }
            switch (b) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                default:
                    out += "\\u00";
                    out += kHexDigits[b >> 4];
                    out += kHexDigits[b & 0xF];
            }
            continue;
        }
        const auto d = decodeRune(s, i);
        if (d.width == 1 && d.rune == kRuneError) {
            out += "\\ufffd";
        } else if (d.rune == 0x2028 || d.rune == 0x2029) {
            out += d.rune == 0x2028 ? "\\u2028" : "\\u2029";
        } else {
            out.append(s.substr(i, d.width));
        }
        i += d.width;
    }
    out += '"';
}

std::string jsonKey(const Value& key) {
    if (key.isString()) return key.asString();
    std::string out;
    appendJson(out, key);
    return out;
}

}  // namespace detail

std::string Value::toJson() const {
    std::string out;
    detail::appendJson(out, *this);
    return out;
}

Result<Value> parseJson(std::string_view text) { return detail::JsonParser(text).parse(); }

}  // namespace edge::policy
