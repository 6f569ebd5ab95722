#include "shared/policy/go_strings.hpp"

#include <locale.h>

#include <cstdint>
#include <cwctype>

namespace edge::policy::detail {
namespace {

// glibc's C.UTF-8 locale carries the Unicode case and class tables; it is created once and
// only read afterwards (the *_l functions are thread-safe). Without it we fall back to ASCII
// plus the Latin-1, Greek and Cyrillic blocks.
locale_t unicodeLocale() {
    static const locale_t loc = [] {
        locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
        if (l == static_cast<locale_t>(nullptr)) {
            l = newlocale(LC_CTYPE_MASK, "C.utf8", static_cast<locale_t>(nullptr));
        }
        return l;
    }();
    return loc;
}

char32_t fallbackLower(char32_t r) {
    if ((r >= 'A' && r <= 'Z') || (r >= 0xC0 && r <= 0xDE && r != 0xD7) ||
        (r >= 0x391 && r <= 0x3AB && r != 0x3A2) || (r >= 0x410 && r <= 0x42F)) {
        return r + 32;
    }
    if (r >= 0x400 && r <= 0x40F) return r + 80;
    return r;
}

char32_t fallbackUpper(char32_t r) {
    if ((r >= 'a' && r <= 'z') || (r >= 0xE0 && r <= 0xFE && r != 0xF7) ||
        (r >= 0x3B1 && r <= 0x3CB && r != 0x3C2) || (r >= 0x430 && r <= 0x44F)) {
        return r - 32;
    }
    if (r >= 0x450 && r <= 0x45F) return r - 80;
    return r;
}

bool isZsSpace(char32_t r) {
    return r == 0xA0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200A) || r == 0x2028 || r == 0x2029 ||
           r == 0x202F || r == 0x205F || r == 0x3000;
}

template <class F>
std::string mapRunes(std::string_view s, F f) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        const auto d = decodeRune(s, i);
        appendRune(out, f(d.rune));
        i += d.width;
    }
    return out;
}

constexpr char kHex[] = "0123456789abcdef";

void appendHex(std::string& out, std::uint32_t v, int digits) {
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(v >> shift) & 0xF];
}

void appendQuotedRune(std::string& out, char32_t r, char quote) {
    if (r == static_cast<char32_t>(quote) || r == '\\') {
        out += '\\';
        out += static_cast<char>(r);
        return;
    }
    if (isPrintRune(r)) {
        appendRune(out, r);
        return;
    }
    switch (r) {
        case '\a':
            out += "\\a";
            return;
        case '\b':
            out += "\\b";
            return;
        case '\f':
            out += "\\f";
            return;
        case '\n':
            out += "\\n";
            return;
        case '\r':
            out += "\\r";
            return;
        case '\t':
            out += "\\t";
            return;
        case '\v':
            out += "\\v";
            return;
        default:
            break;
    }
    if (r < ' ' || r == 0x7F) {
        out += "\\x";
        appendHex(out, r, 2);
    } else if (r < 0x10000) {
        out += "\\u";
        appendHex(out, r, 4);
    } else {
        out += "\\U";
        appendHex(out, r, 8);
    }
}

}  // namespace

DecodedRune decodeRune(std::string_view s, std::size_t pos) {
    if (pos >= s.size()) return {kRuneError, 0};
    const auto b0 = static_cast<unsigned char>(s[pos]);
    if (b0 < 0x80) return {b0, 1};
    std::size_t need = 0;
    char32_t r = 0;
    char32_t min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1, r = b0 & 0x1F, min = 0x80;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2, r = b0 & 0x0F, min = 0x800;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3, r = b0 & 0x07, min = 0x10000;
    } else {
        return {kRuneError, 1};
    }
    for (std::size_t k = 1; k <= need; ++k) {
        if (pos + k >= s.size()) return {kRuneError, 1};
        const auto b = static_cast<unsigned char>(s[pos + k]);
        if ((b & 0xC0) != 0x80) return {kRuneError, 1};
        r = (r << 6) | (b & 0x3F);
    }
    if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return {kRuneError, 1};
    return {r, need + 1};
}

void appendRune(std::string& out, char32_t r) {
    if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) r = kRuneError;
    if (r < 0x80) {
        out += static_cast<char>(r);
    } else if (r < 0x800) {
        out += static_cast<char>(0xC0 | (r >> 6));
        out += static_cast<char>(0x80 | (r & 0x3F));
    } else if (r < 0x10000) {
        out += static_cast<char>(0xE0 | (r >> 12));
        out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (r & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (r >> 18));
        out += static_cast<char>(0x80 | ((r >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((r >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (r & 0x3F));
    }
}

std::size_t runeCount(std::string_view s) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); i += decodeRune(s, i).width) ++n;
    return n;
}

char32_t lowerRune(char32_t r) {
    if (r < 0x80) return (r >= 'A' && r <= 'Z') ? r + 32 : r;
    const locale_t loc = unicodeLocale();
    if (loc == static_cast<locale_t>(nullptr)) return fallbackLower(r);
    return static_cast<char32_t>(towlower_l(static_cast<wint_t>(r), loc));
}

char32_t upperRune(char32_t r) {
    if (r < 0x80) return (r >= 'a' && r <= 'z') ? r - 32 : r;
    const locale_t loc = unicodeLocale();
    if (loc == static_cast<locale_t>(nullptr)) return fallbackUpper(r);
    return static_cast<char32_t>(towupper_l(static_cast<wint_t>(r), loc));
}

std::string toLower(std::string_view s) { return mapRunes(s, lowerRune); }
std::string toUpper(std::string_view s) { return mapRunes(s, upperRune); }

bool isSpaceRune(char32_t r) {
    switch (r) {
        case '\t':
        case '\n':
        case '\v':
        case '\f':
        case '\r':
        case ' ':
        case 0x85:
            return true;
        default:
            return isZsSpace(r);
    }
}

bool isPrintRune(char32_t r) {
    if (r < 0x80) return r >= 0x20 && r < 0x7F;
    if (r < 0xA0 || r == 0xAD || isZsSpace(r)) return false;
    if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return false;
    const locale_t loc = unicodeLocale();
    if (loc == static_cast<locale_t>(nullptr)) return true;
    return iswprint_l(static_cast<wint_t>(r), loc) != 0;
}

std::string goQuote(std::string_view s) {
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size();) {
        const auto d = decodeRune(s, i);
        if (d.width == 1 && d.rune == kRuneError) {
            out += "\\x";
            appendHex(out, static_cast<unsigned char>(s[i]), 2);
        } else {
            appendQuotedRune(out, d.rune, '"');
        }
        i += d.width;
    }
    out += '"';
    return out;
}

std::string goQuoteRune(char32_t r) {
    if (r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) r = kRuneError;
    std::string out = "'";
    appendQuotedRune(out, r, '\'');
    out += '\'';
    return out;
}

}  // namespace edge::policy::detail
