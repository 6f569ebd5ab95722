// regex.* and glob.* builtins on RE2: Go's regexp syntax (RE2 is its origin) and linear-time
// matching, so a policy cannot stall the evaluator with a pathological pattern. Match
// iteration (find_n, split, replace) follows Go's regexp package, including its handling of
// empty matches. glob.match follows gobwas/glob, which OPA uses, translated to RE2.
#include <re2/re2.h>

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shared/policy/builtins_registry.hpp"
#include "shared/policy/builtins_util.hpp"
#include "shared/policy/glob_intersection.hpp"
#include "shared/policy/go_strings.hpp"

namespace edge::policy::detail {
namespace {

using Args = std::span<const Value>;
using RegexPtr = std::shared_ptr<const RE2>;

constexpr std::size_t kMaxPatternBytes = 64 * 1024;
constexpr std::int64_t kMaxRegexMemory = 8 << 20;
constexpr std::size_t kCacheEntries = 256;
constexpr std::size_t kMaxOutputBytes = 64u << 20;

std::string_view goRegexErrorText(RE2::ErrorCode code) {
    switch (code) {
        case RE2::ErrorBadEscape:
            return "invalid escape sequence";
        case RE2::ErrorBadCharClass:
            return "invalid character class";
        case RE2::ErrorBadCharRange:
            return "invalid character class range";
        case RE2::ErrorMissingBracket:
            return "missing closing ]";
        case RE2::ErrorMissingParen:
            return "missing closing )";
        case RE2::ErrorUnexpectedParen:
            return "unexpected )";
        case RE2::ErrorTrailingBackslash:
            return "trailing backslash at end of expression";
        case RE2::ErrorRepeatArgument:
            return "missing argument to repetition operator";
        case RE2::ErrorRepeatSize:
            return "invalid repeat count";
        case RE2::ErrorRepeatOp:
            return "invalid nested repetition operator";
        case RE2::ErrorBadPerlOp:
            return "invalid or unsupported Perl syntax";
        case RE2::ErrorBadUTF8:
            return "invalid UTF-8";
        case RE2::ErrorBadNamedCapture:
            return "invalid named capture";
        case RE2::ErrorPatternTooLarge:
            return "expression too large";
        default:
            return "internal error";
    }
}

/// Compiled expressions by source text, shared by all evaluations (policies use constant
/// patterns). Bounded: when full, an arbitrary entry is dropped, as OPA does.
class RegexCache {
public:
    /// The expression cached under `key`, or else the one `make_pattern()` yields, compiled
    /// and cached. Keys name what the pattern came from (a regex, a glob, a template). Compile
    /// errors have Go's text ("error parsing regexp: …"); make_pattern's errors pass through.
    template <class F>
    Result<RegexPtr> get(const std::string& key, F make_pattern) {
        {
            std::lock_guard lock(mutex_);
            if (auto it = entries_.find(key); it != entries_.end()) return it->second;
        }
        Result<std::string> made = make_pattern();
        if (!made) return fail(made.error());
        const std::string& pattern = *made;
        if (pattern.size() > kMaxPatternBytes) {
            return fail(PolicyErrc::kBuiltinError, "error parsing regexp: expression too large");
        }
        RE2::Options options;
        options.set_log_errors(false);
        options.set_max_mem(kMaxRegexMemory);
        auto re = std::make_shared<const RE2>(pattern, options);
        if (!re->ok()) {
            return fail(PolicyErrc::kBuiltinError,
                        "error parsing regexp: " + std::string(goRegexErrorText(re->error_code())) +
                            ": `" + re->error_arg() + "`");
        }
        std::lock_guard lock(mutex_);
        if (entries_.size() >= kCacheEntries) entries_.erase(entries_.begin());
        entries_.emplace(key, re);
        return re;
    }

private:
    std::mutex mutex_;
    std::unordered_map<std::string, RegexPtr> entries_;
};

RegexCache& regexCache() {
    static RegexCache cache;
    return cache;
}

Result<RegexPtr> compileRegex(std::string_view builtin, const std::string& pattern) {
    auto re = regexCache().get("r:" + pattern, [&]() -> Result<std::string> { return pattern; });
    if (!re) return fail(builtinError(builtin, re.error().message()));
    return re;
}

/// The string operands of a builtin, in order, or the type error of the first that is not one.
template <std::size_t N>
Result<std::array<std::string_view, N>> stringOperands(std::string_view name, Args args) {
    std::array<std::string_view, N> out;
    for (std::size_t k = 0; k < N; ++k) {
        if (!args[k].isString())
            return fail(typeError(name, static_cast<int>(k) + 1, "string", args[k]));
        out[k] = args[k].asString();
    }
    return out;
}

struct Span {
    std::size_t begin = 0;
    std::size_t end = 0;
    bool matched = false;
};

/// RE2's submatch pieces as byte offsets into s.
void toSpans(const std::vector<re2::StringPiece>& m, std::string_view s, std::vector<Span>& spans) {
    for (std::size_t g = 0; g < m.size(); ++g) {
        spans[g].matched = m[g].data() != nullptr;
        spans[g].begin = spans[g].matched ? static_cast<std::size_t>(m[g].data() - s.data()) : 0;
        spans[g].end = spans[g].begin + m[g].size();
    }
}

/// Go's Regexp.allMatches: up to n matches (all when n < 0); an empty match right after the
/// previous match is skipped; the search advances one code point past an empty match.
/// `deliver` receives the group spans (group 0 first).
template <class F>
void allMatches(const RE2& re, std::string_view s, std::int64_t n, int groups, F deliver) {
    if (n < 0) n = static_cast<std::int64_t>(s.size()) + 1;
    std::vector<re2::StringPiece> m(static_cast<std::size_t>(groups) + 1);
    std::vector<Span> spans(m.size());
    const re2::StringPiece text(s.data(), s.size());
    std::size_t pos = 0;
    std::int64_t found = 0;
    std::ptrdiff_t prev_end = -1;
    while (found < n && pos <= s.size()) {
        if (!re.Match(text, pos, s.size(), RE2::UNANCHORED, m.data(), static_cast<int>(m.size())))
            break;
        toSpans(m, s, spans);
        bool accept = true;
        if (spans[0].end == pos) {
            if (static_cast<std::ptrdiff_t>(spans[0].begin) == prev_end) accept = false;
            const auto width = decodeRune(s, pos).width;
            pos += width > 0 ? width : 1;
        } else {
            pos = spans[0].end;
        }
        prev_end = static_cast<std::ptrdiff_t>(spans[0].end);
        if (accept) {
            deliver(spans);
            ++found;
        }
    }
}

// Go's Regexp.Expand: $1, ${1}, $name, ${name}; $$ is a dollar; a malformed $ is literal.
void expandTemplate(std::string& out, const RE2& re, std::string_view tmpl, std::string_view src,
                    const std::vector<Span>& spans) {
    auto is_name_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    };
    while (!tmpl.empty()) {
        const auto dollar = tmpl.find('$');
        if (dollar == std::string_view::npos) break;
        out += tmpl.substr(0, dollar);
        tmpl.remove_prefix(dollar + 1);
        if (!tmpl.empty() && tmpl[0] == '$') {
            out += '$';
            tmpl.remove_prefix(1);
            continue;
        }
        const bool brace = !tmpl.empty() && tmpl[0] == '{';
        std::size_t i = brace ? 1 : 0;
        const std::size_t name_begin = i;
        while (i < tmpl.size() && is_name_char(tmpl[i])) ++i;
        const std::string_view name = tmpl.substr(name_begin, i - name_begin);
        if (name.empty() || (brace && (i >= tmpl.size() || tmpl[i] != '}'))) {
            out += '$';
            continue;
        }
        if (brace) ++i;
        tmpl.remove_prefix(i);
        int num = 0;
        for (char c : name) {
            if (c < '0' || c > '9' || num >= 100'000'000) {
                num = -1;
                break;
            }
            num = num * 10 + (c - '0');
        }
        if (name[0] == '0' && name.size() > 1) num = -1;
        if (num < 0) {
            const auto& names = re.NamedCapturingGroups();
            if (auto it = names.find(std::string(name)); it != names.end()) num = it->second;
        }
        if (num >= 0 && static_cast<std::size_t>(num) < spans.size() &&
            spans[static_cast<std::size_t>(num)].matched) {
            const auto& sp = spans[static_cast<std::size_t>(num)];
            out += src.substr(sp.begin, sp.end - sp.begin);
        }
    }
    out += tmpl;
}

// Go's Regexp.ReplaceAllString.
Result<std::string> replaceAll(const RE2& re, std::string_view s, std::string_view repl) {
    std::string out;
    const int groups = re.NumberOfCapturingGroups();
    std::vector<re2::StringPiece> m(static_cast<std::size_t>(groups) + 1);
    std::vector<Span> spans(m.size());
    const re2::StringPiece text(s.data(), s.size());
    std::size_t last_end = 0;
    std::size_t pos = 0;
    while (pos <= s.size()) {
        if (!re.Match(text, pos, s.size(), RE2::UNANCHORED, m.data(), static_cast<int>(m.size())))
            break;
        toSpans(m, s, spans);
        out += s.substr(last_end, spans[0].begin - last_end);
        if (spans[0].end > last_end || spans[0].begin == 0) expandTemplate(out, re, repl, s, spans);
        if (out.size() > kMaxOutputBytes)
            return fail(PolicyErrc::kBuiltinError, "result too large");
        last_end = spans[0].end;
        const auto width = decodeRune(s, pos).width;
        if (pos + width > spans[0].end) {
            pos += width;
        } else if (pos + 1 > spans[0].end) {
            ++pos;
        } else {
            pos = spans[0].end;
        }
    }
    out += s.substr(last_end);
    return out;
}

// ---- regex.template_match --------------------------------------------------------------------

Result<std::string> templateRegex(std::string_view tpl, char open, char close) {
    std::vector<std::size_t> idxs;
    int level = 0;
    std::size_t idx = 0;
    for (std::size_t i = 0; i < tpl.size(); ++i) {
        if (tpl[i] == open) {
            if (++level == 1) idx = i;
        } else if (tpl[i] == close) {
            if (--level == 0) {
                idxs.push_back(idx);
                idxs.push_back(i + 1);
            } else if (level < 0) {
                break;
            }
        }
    }
    if (level != 0) return fail(PolicyErrc::kBuiltinError, "unbalanced braces in " + goQuote(tpl));
    std::string pattern = "^";
    std::size_t end = 0;
    for (std::size_t i = 0; i < idxs.size(); i += 2) {
        pattern += RE2::QuoteMeta(re2::StringPiece(tpl.data() + end, idxs[i] - end));
        end = idxs[i + 1];
        pattern += "(";
        pattern += tpl.substr(idxs[i] + 1, end - 1 - (idxs[i] + 1));
        pattern += ")";
    }
    pattern += RE2::QuoteMeta(re2::StringPiece(tpl.data() + end, tpl.size() - end));
    pattern += "$";
    return pattern;
}

// ---- glob (gobwas/glob) -------------------------------------------------------------------

void appendClassRune(std::string& out, char32_t r) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(r));
    out += buf;
}

/// Translates a gobwas glob to an anchored RE2 pattern. `*` and `?` stop at separators, `**`
/// does not; [abc] [!abc] [a-z] [!a-z] are single characters (separators included); {a,b}
/// are alternatives; `\` escapes the next character.
class GlobTranslator {
public:
    GlobTranslator(std::string_view glob, const std::vector<char32_t>& separators) : glob_(glob) {
        if (separators.empty()) {
            single_ = ".";
        } else {
            single_ = "[^";
            for (char32_t r : separators) appendClassRune(single_, r);
            single_ += "]";
        }
    }

    Result<std::string> translate() {
        std::string out = "(?s)^";
        int terms_level = 0;
        while (pos_ < glob_.size()) {
            const auto d = decodeRune(glob_, pos_);
            const char32_t r = d.rune;
            if (r == '{') {
                pos_ += d.width;
                ++terms_level;
                out += "(?:";
            } else if (r == ',' && terms_level > 0) {
                pos_ += d.width;
                out += "|";
            } else if (r == '}' && terms_level > 0) {
                pos_ += d.width;
                --terms_level;
                out += ")";
            } else if (r == '[') {
                pos_ += d.width;
                auto cls = range();
                if (!cls) return fail(cls.error());
                out += *cls;
            } else if (r == '?') {
                pos_ += d.width;
                out += single_;
            } else if (r == '*') {
                pos_ += d.width;
                if (pos_ < glob_.size() && glob_[pos_] == '*') {
                    ++pos_;
                    out += ".*";
                } else {
                    out += single_ + "*";
                }
            } else {
                const std::u32string_view breakers = terms_level > 0 ? U"?*[{}," : U"?*[{";
                out += RE2::QuoteMeta(text(breakers));
            }
        }
        for (; terms_level > 0; --terms_level) out += ")";  // gobwas accepts an unclosed {
        out += "$";
        return out;
    }

private:
    // Literal text up to a breaker; `\` escapes the next rune; a trailing `\` is dropped.
    std::string text(std::u32string_view breakers) {
        std::string data;
        bool escaped = false;
        while (pos_ < glob_.size()) {
            const auto d = decodeRune(glob_, pos_);
            if (!escaped) {
                if (d.rune == '\\') {
                    escaped = true;
                    pos_ += d.width;
                    continue;
                }
                if (breakers.find(d.rune) != std::u32string_view::npos) break;
            }
            escaped = false;
            data.append(glob_.substr(pos_, d.width));
            pos_ += d.width;
        }
        return data;
    }

    // After '[': [!]? then lo-hi or a list of characters, then ']'.
    Result<std::string> range() {
        auto error = [](std::string_view msg) {
            return fail(PolicyErrc::kBuiltinError, std::string(msg));
        };
        bool negated = false;
        if (pos_ < glob_.size() && glob_[pos_] == '!') {
            negated = true;
            ++pos_;
        }
        if (pos_ >= glob_.size()) return error("unexpected end of input");
        std::string cls = negated ? "[^" : "[";
        const auto lo = decodeRune(glob_, pos_);
        if (pos_ + lo.width < glob_.size() && glob_[pos_ + lo.width] == '-') {
            pos_ += lo.width + 1;
            if (pos_ >= glob_.size()) return error("unexpected end of input");
            const auto hi = decodeRune(glob_, pos_);
            pos_ += hi.width;
            if (hi.rune < lo.rune) return error("hi character should be greater than lo character");
            appendClassRune(cls, lo.rune);
            cls += '-';
            appendClassRune(cls, hi.rune);
        } else {
            const std::string chars = text(U"]");
            if (chars.empty()) return error("could not parse range");
            for (std::size_t i = 0; i < chars.size();) {
                const auto d = decodeRune(chars, i);
                appendClassRune(cls, d.rune);
                i += d.width;
            }
        }
        if (pos_ >= glob_.size()) return error("unexpected end of input");
        if (glob_[pos_] != ']') return error("expected close range character");
        ++pos_;
        return cls + "]";
    }

    std::string_view glob_;
    std::size_t pos_ = 0;
    std::string single_;
};

BuiltinResult globMatch(Args args, BuiltinContext&) {
    constexpr std::string_view kName = "glob.match";
    if (!args[0].isString()) return fail(typeError(kName, 1, "string", args[0]));
    std::vector<char32_t> separators;
    if (args[1].isArray()) {
        for (const auto& e : args[1].asArray()) {
            const bool one_rune = e.isString() && !e.asString().empty() &&
                                  decodeRune(e.asString(), 0).width == e.asString().size();
            if (!one_rune) {
                return fail(elementError(kName, 2, args[1], e.isString() ? "rune" : "string", e));
            }
            separators.push_back(decodeRune(e.asString(), 0).rune);
        }
        if (separators.empty()) separators.push_back('.');
    } else if (!args[1].isNull()) {
        return fail(typeError(kName, 2, "one of {array, null}", args[1]));
    }
    if (!args[2].isString()) return fail(typeError(kName, 3, "string", args[2]));
    const std::string& glob = args[0].asString();
    std::string key = "g:";
    for (char32_t r : separators) appendRune(key, r);
    key += '\0';
    key += glob;
    auto re = regexCache().get(key, [&] { return GlobTranslator(glob, separators).translate(); });
    if (!re) return fail(builtinError(kName, re.error().message()));
    const auto& text = args[2].asString();
    return ok(Value::boolean(RE2::FullMatch(re2::StringPiece(text.data(), text.size()), **re)));
}

}  // namespace

void addRegexBuiltins(std::vector<Builtin>& out) {
    out.push_back({"regex.is_valid", 1, [](Args args, BuiltinContext&) -> BuiltinResult {
                       if (!args[0].isString()) return ok(Value::boolean(false));
                       return ok(Value::boolean(
                           compileRegex("regex.is_valid", args[0].asString()).has_value()));
                   }});
    out.push_back({"regex.match", 2, [](Args args, BuiltinContext&) -> BuiltinResult {
                       auto s = stringOperands<2>("regex.match", args);
                       if (!s) return fail(s.error());
                       auto re = compileRegex("regex.match", args[0].asString());
                       if (!re) return fail(re.error());
                       const auto& text = (*s)[1];
                       return ok(Value::boolean(
                           RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), **re)));
                   }});
    out.push_back({"regex.split", 2, [](Args args, BuiltinContext&) -> BuiltinResult {
                       auto s = stringOperands<2>("regex.split", args);
                       if (!s) return fail(s.error());
                       auto re = compileRegex("regex.split", args[0].asString());
                       if (!re) return fail(re.error());
                       const std::string_view text = (*s)[1];
                       if (!(*s)[0].empty() && text.empty())
                           return ok(Value::array({Value::string("")}));
                       Array parts;
                       std::size_t beg = 0;
                       std::size_t end = 0;
                       allMatches(**re, text, -1, 0, [&](const std::vector<Span>& m) {
                           end = m[0].begin;
                           if (m[0].end != 0)
                               parts.push_back(
                                   Value::string(std::string(text.substr(beg, end - beg))));
                           beg = m[0].end;
                       });
                       if (end != text.size())
                           parts.push_back(Value::string(std::string(text.substr(beg))));
                       return ok(Value::array(std::move(parts)));
                   }});
    out.push_back({"regex.find_n", 3, [](Args args, BuiltinContext&) -> BuiltinResult {
                       auto s = stringOperands<2>("regex.find_n", args);
                       if (!s) return fail(s.error());
                       auto n = intOperand("regex.find_n", 3, args[2]);
                       if (!n) return fail(n.error());
                       auto re = compileRegex("regex.find_n", args[0].asString());
                       if (!re) return fail(re.error());
                       const std::string_view text = (*s)[1];
                       Array found;
                       allMatches(**re, text, *n, 0, [&](const std::vector<Span>& m) {
                           found.push_back(Value::string(
                               std::string(text.substr(m[0].begin, m[0].end - m[0].begin))));
                       });
                       return ok(Value::array(std::move(found)));
                   }});
    out.push_back(
        {"regex.find_all_string_submatch_n", 3, [](Args args, BuiltinContext&) -> BuiltinResult {
             constexpr std::string_view kName = "regex.find_all_string_submatch_n";
             auto s = stringOperands<2>(kName, args);
             if (!s) return fail(s.error());
             auto n = intOperand(kName, 3, args[2]);
             if (!n) return fail(n.error());
             auto re = compileRegex(kName, args[0].asString());
             if (!re) return fail(re.error());
             const std::string_view text = (*s)[1];
             Array found;
             allMatches(**re, text, *n, (*re)->NumberOfCapturingGroups(),
                        [&](const std::vector<Span>& m) {
                            Array groups;
                            for (const auto& g : m) {
                                groups.push_back(Value::string(
                                    g.matched ? std::string(text.substr(g.begin, g.end - g.begin))
                                              : std::string()));
                            }
                            found.push_back(Value::array(std::move(groups)));
                        });
             return ok(Value::array(std::move(found)));
         }});
    out.push_back({"regex.replace", 3, [](Args args, BuiltinContext&) -> BuiltinResult {
                       auto s = stringOperands<3>("regex.replace", args);
                       if (!s) return fail(s.error());
                       auto re = compileRegex("regex.replace", args[1].asString());
                       if (!re) return fail(re.error());
                       auto replaced = replaceAll(**re, (*s)[0], (*s)[2]);
                       if (!replaced)
                           return fail(builtinError("regex.replace", replaced.error().message()));
                       return ok(Value::string(std::move(*replaced)));
                   }});
    out.push_back(
        {"regex.template_match", 4, [](Args args, BuiltinContext&) -> BuiltinResult {
             constexpr std::string_view kName = "regex.template_match";
             auto s = stringOperands<4>(kName, args);
             if (!s) return fail(s.error());
             const auto [tpl, text, open, close] = *s;
             if (open.size() != 1) {
                 return fail(builtinError(
                     kName, "start delimiter has to be exactly one character long but is " +
                                std::to_string(open.size()) + " long"));
             }
             if (close.size() != 1) {  // OPA reports the start delimiter's length here
                 return fail(builtinError(
                     kName, "end delimiter has to be exactly one character long but is " +
                                std::to_string(open.size()) + " long"));
             }
             const std::string key =
                 "t:" + std::string(open) + std::string(close) + std::string(tpl);
             auto re = regexCache().get(key, [&] { return templateRegex(tpl, open[0], close[0]); });
             if (!re) return fail(builtinError(kName, re.error().message()));
             return ok(Value::boolean(
                 RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), **re)));
         }});
    out.push_back({"regex.globs_match", 2, [](Args args, BuiltinContext&) -> BuiltinResult {
                       auto s = stringOperands<2>("regex.globs_match", args);
                       if (!s) return fail(s.error());
                       auto r = globsIntersect((*s)[0], (*s)[1]);
                       if (!r) return fail(builtinError("regex.globs_match", r.error().message()));
                       return ok(Value::boolean(*r));
                   }});
    out.push_back({"glob.match", 3, globMatch});
    out.push_back({"glob.quote_meta", 1, [](Args args, BuiltinContext&) -> BuiltinResult {
                       if (!args[0].isString())
                           return fail(typeError("glob.quote_meta", 1, "string", args[0]));
                       std::string quoted;
                       for (char c : args[0].asString()) {
                           if (std::string_view("*?\\[]{}").find(c) != std::string_view::npos)
                               quoted += '\\';
                           quoted += c;
                       }
                       return ok(Value::string(std::move(quoted)));
                   }});
}

}  // namespace edge::policy::detail
