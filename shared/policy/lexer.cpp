#include "shared/policy/lexer.hpp"

#include <fmt/format.h>

#include "shared/policy/errors.hpp"

namespace edge::policy {
namespace {

bool isIdentStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool isIdentChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

void appendUtf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

}  // namespace

Result<std::vector<Token>> lex(std::string_view src, const std::string& file) {
    std::vector<Token> out;
    std::size_t i = 0;
    int line = 1;
    std::size_t line_start = 0;
    bool nl = false;
    bool ws = false;
    auto error = [&](std::size_t at, std::string_view what) {
        return fail(PolicyErrc::kParse, fmt::format("{}:{}:{}: {}", file, line,
                                                    static_cast<int>(at - line_start) + 1, what));
    };
    while (i < src.size()) {
        const char c = src[i];
        if (c == '\n') {
            ++i;
            ++line;
            line_start = i;
            nl = true;
            ws = true;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
            ws = true;
            continue;
        }
        if (c == '#') {
            while (i < src.size() && src[i] != '\n') ++i;
            continue;
        }
        Token tok;
        tok.line = line;
        tok.col = static_cast<int>(i - line_start) + 1;
        tok.nl_before = nl;
        tok.ws_before = ws;
        nl = false;
        ws = false;
        const std::size_t start = i;
        if (isIdentStart(c)) {
            while (i < src.size() && isIdentChar(src[i])) ++i;
            tok.kind = Tok::kIdent;
            tok.text = std::string(src.substr(start, i - start));
        } else if (std::isdigit(static_cast<unsigned char>(c))) {
            while (i < src.size() && std::isdigit(static_cast<unsigned char>(src[i]))) ++i;
            if (i + 1 < src.size() && src[i] == '.' && std::isdigit(static_cast<unsigned char>(src[i + 1]))) {
                ++i;
                while (i < src.size() && std::isdigit(static_cast<unsigned char>(src[i]))) ++i;
            }
            if (i < src.size() && (src[i] == 'e' || src[i] == 'E')) {
                std::size_t j = i + 1;
                if (j < src.size() && (src[j] == '+' || src[j] == '-')) ++j;
                if (j < src.size() && std::isdigit(static_cast<unsigned char>(src[j]))) {
                    i = j;
                    while (i < src.size() && std::isdigit(static_cast<unsigned char>(src[i]))) ++i;
                }
            }
            if (i < src.size() && isIdentStart(src[i])) return error(i, "malformed number");
            tok.kind = Tok::kNumber;
            tok.text = std::string(src.substr(start, i - start));
        } else if (c == '"') {
            ++i;
            std::string s;
            bool closed = false;
            while (i < src.size()) {
                const char d = src[i];
                if (d == '"') {
                    ++i;
                    closed = true;
                    break;
                }
                if (d == '\n') break;
                if (d == '\\') {
                    if (i + 1 >= src.size()) break;
                    const char e = src[i + 1];
                    i += 2;
                    switch (e) {
                        case '"': s += '"'; break;
                        case '\\': s += '\\'; break;
                        case '/': s += '/'; break;
                        case 'b': s += '\b'; break;
                        case 'f': s += '\f'; break;
                        case 'n': s += '\n'; break;
                        case 'r': s += '\r'; break;
                        case 't': s += '\t'; break;
                        case 'u': {
                            auto hex4 = [&](std::size_t at, std::uint32_t& v) {
                                if (at + 4 > src.size()) return false;
                                v = 0;
                                for (std::size_t k = at; k < at + 4; ++k) {
                                    const char h = src[k];
                                    v <<= 4;
                                    if (h >= '0' && h <= '9') v |= static_cast<std::uint32_t>(h - '0');
                                    else if (h >= 'a' && h <= 'f') v |= static_cast<std::uint32_t>(h - 'a' + 10);
                                    else if (h >= 'A' && h <= 'F') v |= static_cast<std::uint32_t>(h - 'A' + 10);
                                    else return false;
                                }
                                return true;
                            };
                            std::uint32_t cp = 0;
                            if (!hex4(i, cp)) return error(i, "bad \\u escape in string");
                            i += 4;
                            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= src.size() && src[i] == '\\' &&
                                src[i + 1] == 'u') {
                                std::uint32_t lo = 0;
                                if (hex4(i + 2, lo) && lo >= 0xDC00 && lo < 0xE000) {
                                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                                    i += 6;
                                }
                            }
                            appendUtf8(s, cp);
                            break;
                        }
                        default: return error(i - 2, fmt::format("unknown escape \\{} in string", e));
                    }
                    continue;
                }
                s += d;
                ++i;
            }
            if (!closed) return error(start, "unterminated string");
            tok.kind = Tok::kString;
            tok.text = std::move(s);
        } else if (c == '`') {
            ++i;
            const auto end = src.find('`', i);
            if (end == std::string_view::npos) return error(start, "unterminated raw string");
            tok.kind = Tok::kString;
            tok.text = std::string(src.substr(i, end - i));
            for (std::size_t k = i; k < end; ++k) {
                if (src[k] == '\n') {
                    ++line;
                    line_start = k + 1;
                }
            }
            i = end + 1;
        } else {
            auto two = [&](char a, char b) { return c == a && i + 1 < src.size() && src[i + 1] == b; };
            if (two(':', '=')) { tok.kind = Tok::kAssign; i += 2; }
            else if (two('=', '=')) { tok.kind = Tok::kEq; i += 2; }
            else if (two('!', '=')) { tok.kind = Tok::kNeq; i += 2; }
            else if (two('<', '=')) { tok.kind = Tok::kLte; i += 2; }
            else if (two('>', '=')) { tok.kind = Tok::kGte; i += 2; }
            else {
                switch (c) {
                    case '=': tok.kind = Tok::kUnify; break;
                    case '<': tok.kind = Tok::kLt; break;
                    case '>': tok.kind = Tok::kGt; break;
                    case '+': tok.kind = Tok::kPlus; break;
                    case '-': tok.kind = Tok::kMinus; break;
                    case '*': tok.kind = Tok::kStar; break;
                    case '/': tok.kind = Tok::kSlash; break;
                    case '%': tok.kind = Tok::kPercent; break;
                    case '&': tok.kind = Tok::kAmp; break;
                    case '|': tok.kind = Tok::kBar; break;
                    case '.': tok.kind = Tok::kDot; break;
                    case ',': tok.kind = Tok::kComma; break;
                    case ';': tok.kind = Tok::kSemicolon; break;
                    case ':': tok.kind = Tok::kColon; break;
                    case '[': tok.kind = Tok::kLBrack; break;
                    case ']': tok.kind = Tok::kRBrack; break;
                    case '{': tok.kind = Tok::kLBrace; break;
                    case '}': tok.kind = Tok::kRBrace; break;
                    case '(': tok.kind = Tok::kLParen; break;
                    case ')': tok.kind = Tok::kRParen; break;
                    default: return error(i, fmt::format("unexpected character '{}'", c));
                }
                ++i;
            }
            tok.text = std::string(src.substr(start, i - start));
        }
        out.push_back(std::move(tok));
    }
    Token eof;
    eof.kind = Tok::kEof;
    eof.line = line;
    eof.col = static_cast<int>(i - line_start) + 1;
    eof.nl_before = true;
    out.push_back(std::move(eof));
    return out;
}

}  // namespace edge::policy
