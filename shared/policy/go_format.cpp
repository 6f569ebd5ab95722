#include "shared/policy/go_format.hpp"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "shared/policy/go_strings.hpp"

namespace edge::policy::detail {
namespace {

constexpr int kTooLarge = 1'000'000;  // Go's fmt rejects larger widths and precisions
constexpr char kLowerHex[] = "0123456789abcdefx";
constexpr char kUpperHex[] = "0123456789ABCDEFX";

// ---- fmt ---------------------------------------------------------------------------------

std::string_view typeName(const FmtArg& a) {
    switch (a.type) {
        case FmtArg::Type::kInt:
            return "int";
        case FmtArg::Type::kBigInt:
            return "*big.Int";
        case FmtArg::Type::kFloat:
            return "float64";
        case FmtArg::Type::kString:
            return "string";
    }
    return "?";
}

class Printer {
public:
    std::string run(std::string_view format, std::span<const FmtArg> args);

private:
    void writePadding(int n) {
        if (n > 0) buf_.append(static_cast<std::size_t>(n), f_.zero && !f_.minus ? '0' : ' ');
    }
    void pad(std::string_view b) {
        if (!f_.wid_present || f_.wid == 0) {
            buf_ += b;
            return;
        }
        const int width = f_.wid - static_cast<int>(runeCount(b));
        if (!f_.minus) {
            writePadding(width);
            buf_ += b;
        } else {
            buf_ += b;
            writePadding(width);
        }
    }
    void padNoZero(std::string_view b) {
        const bool old = f_.zero;
        f_.zero = false;
        pad(b);
        f_.zero = old;
    }

    void printArg(const FmtArg& a, char32_t verb);
    void badVerb(const FmtArg& a, char32_t verb);
    void fmtInteger(std::int64_t v, char32_t verb);
    void fmtIntegerBase(std::uint64_t u, bool negative, int base, char32_t verb,
                        const char* digits);
    void fmtUnicode(std::uint64_t u);
    void fmtString(const std::string& s, char32_t verb);
    void fmtHexString(std::string_view s, const char* digits);
    void fmtQ(std::string_view s);
    std::string_view truncate(std::string_view s) const;
    void fmtFloat(double v, char32_t verb);
    void fmtFloatAs(double v, char verb, int prec);
    void fmtBigInt(const FmtArg& a, char32_t verb);
    void argNumber(int& arg_num, std::string_view format, std::size_t& i, int num_args,
                   bool& found);
    void intFromArg(std::span<const FmtArg> args, int& arg_num, int& num, bool& is_int) const;

    std::string buf_;
    FmtFlags f_;
    bool good_arg_num_ = true;
    bool reordered_ = false;
};

void Printer::printArg(const FmtArg& a, char32_t verb) {
    if (verb == 'T') {
        pad(truncate(typeName(a)));
        return;
    }
    switch (a.type) {
        case FmtArg::Type::kInt:
            fmtInteger(a.i, verb);
            return;
        case FmtArg::Type::kBigInt:
            fmtBigInt(a, verb);
            return;
        case FmtArg::Type::kFloat:
            fmtFloat(a.d, verb);
            return;
        case FmtArg::Type::kString:
            fmtString(a.s, verb);
            return;
    }
}

void Printer::badVerb(const FmtArg& a, char32_t verb) {
    buf_ += "%!";
    appendRune(buf_, verb);
    buf_ += '(';
    buf_ += typeName(a);
    buf_ += '=';
    printArg(a, 'v');
    buf_ += ')';
}

void Printer::fmtInteger(std::int64_t v, char32_t verb) {
    const bool negative = v < 0;
    const std::uint64_t u =
        negative ? (~static_cast<std::uint64_t>(v) + 1) : static_cast<std::uint64_t>(v);
    switch (verb) {
        case 'v':
        case 'd':
            fmtIntegerBase(u, negative, 10, verb, kLowerHex);
            return;
        case 'b':
            fmtIntegerBase(u, negative, 2, verb, kLowerHex);
            return;
        case 'o':
        case 'O':
            fmtIntegerBase(u, negative, 8, verb, kLowerHex);
            return;
        case 'x':
            fmtIntegerBase(u, negative, 16, verb, kLowerHex);
            return;
        case 'X':
            fmtIntegerBase(u, negative, 16, verb, kUpperHex);
            return;
        case 'c': {
            std::string s;
            appendRune(s, static_cast<std::uint64_t>(v) > 0x10FFFF ? kRuneError
                                                                   : static_cast<char32_t>(v));
            pad(s);
            return;
        }
        case 'q':
            pad(goQuoteRune(static_cast<std::uint64_t>(v) > 0x10FFFF ? kRuneError
                                                                     : static_cast<char32_t>(v)));
            return;
        case 'U':
            fmtUnicode(static_cast<std::uint64_t>(v));
            return;
        default:
            badVerb(FmtArg{FmtArg::Type::kInt, v, 0, {}}, verb);
            return;
    }
}

void Printer::fmtIntegerBase(std::uint64_t u, bool negative, int base, char32_t verb,
                             const char* digits) {
    int prec = 0;
    if (f_.prec_present) {
        prec = f_.prec;
        if (prec == 0 && u == 0) {
            const bool old = f_.zero;
            f_.zero = false;
            writePadding(f_.wid);
            f_.zero = old;
            return;
        }
    } else if (f_.zero && !f_.minus && f_.wid_present) {
        prec = f_.wid;
        if (negative || f_.plus || f_.space) --prec;
    }
    std::string s;
    do {
        s += digits[u % static_cast<unsigned>(base)];
        u /= static_cast<unsigned>(base);
    } while (u != 0);
    while (static_cast<int>(s.size()) < prec) s += '0';
    if (f_.sharp) {
        if (base == 2) s += "b0";
        if (base == 8 && s.back() != '0') s += '0';
        if (base == 16) {
            s += digits[16];
            s += '0';
        }
    }
    if (verb == 'O') s += "o0";
    if (negative) {
        s += '-';
    } else if (f_.plus) {
        s += '+';
    } else if (f_.space) {
        s += ' ';
    }
    std::reverse(s.begin(), s.end());
    padNoZero(s);
}

void Printer::fmtUnicode(std::uint64_t u) {
    int prec = f_.prec_present && f_.prec > 4 ? f_.prec : 4;
    std::string hex;
    const std::uint64_t original = u;
    do {
        hex += kUpperHex[u & 0xF];
        u >>= 4;
        --prec;
    } while (u != 0);
    for (; prec > 0; --prec) hex += '0';
    std::reverse(hex.begin(), hex.end());
    std::string s = "U+" + hex;
    if (f_.sharp && original <= 0x10FFFF && isPrintRune(static_cast<char32_t>(original))) {
        s += " '";
        appendRune(s, static_cast<char32_t>(original));
        s += '\'';
    }
    padNoZero(s);
}

std::string_view Printer::truncate(std::string_view s) const {
    if (!f_.prec_present) return s;
    std::size_t i = 0;
    for (int n = 0; i < s.size() && n < f_.prec; ++n) i += decodeRune(s, i).width;
    return s.substr(0, i);
}

void Printer::fmtString(const std::string& s, char32_t verb) {
    switch (verb) {
        case 'v':
            if (f_.sharp_v) {
                fmtQ(s);
            } else {
                pad(truncate(s));
            }
            return;
        case 's':
            pad(truncate(s));
            return;
        case 'x':
            fmtHexString(s, kLowerHex);
            return;
        case 'X':
            fmtHexString(s, kUpperHex);
            return;
        case 'q':
            fmtQ(s);
            return;
        default:
            badVerb(FmtArg{FmtArg::Type::kString, 0, 0, s}, verb);
            return;
    }
}

void Printer::fmtHexString(std::string_view s, const char* digits) {
    int length = static_cast<int>(s.size());
    if (f_.prec_present && f_.prec < length) length = f_.prec;
    int width = 2 * length;
    if (width > 0) {
        if (f_.space) {
            if (f_.sharp) width *= 2;
            width += length - 1;
        } else if (f_.sharp) {
            width += 2;
        }
    } else {
        if (f_.wid_present) writePadding(f_.wid);
        return;
    }
    if (f_.wid_present && f_.wid > width && !f_.minus) writePadding(f_.wid - width);
    if (f_.sharp) {
        buf_ += '0';
        buf_ += digits[16];
    }
    for (int i = 0; i < length; ++i) {
        if (f_.space && i > 0) {
            buf_ += ' ';
            if (f_.sharp) {
                buf_ += '0';
                buf_ += digits[16];
            }
        }
        const auto c = static_cast<unsigned char>(s[static_cast<std::size_t>(i)]);
        buf_ += digits[c >> 4];
        buf_ += digits[c & 0xF];
    }
    if (f_.wid_present && f_.wid > width && f_.minus) writePadding(f_.wid - width);
}

void Printer::fmtQ(std::string_view s) {
    s = truncate(s);
    if (f_.sharp) {
        bool can_backquote = true;
        for (std::size_t i = 0; i < s.size() && can_backquote;) {
            const auto d = decodeRune(s, i);
            if ((d.width == 1 && d.rune == kRuneError) || d.rune == '`' || d.rune == 0xFEFF ||
                (d.rune < ' ' && d.rune != '\t') || d.rune == 0x7F) {
                can_backquote = false;
            }
            i += d.width;
        }
        if (can_backquote) {
            pad("`" + std::string(s) + "`");
            return;
        }
    }
    pad(goQuote(s));
}

void Printer::fmtFloat(double v, char32_t verb) {
    switch (verb) {
        case 'v':
            fmtFloatAs(v, 'g', -1);
            return;
        case 'b':
        case 'g':
        case 'G':
        case 'x':
        case 'X':
            fmtFloatAs(v, static_cast<char>(verb), -1);
            return;
        case 'f':
        case 'F':
            fmtFloatAs(v, 'f', 6);
            return;
        case 'e':
        case 'E':
            fmtFloatAs(v, static_cast<char>(verb), 6);
            return;
        default:
            badVerb(FmtArg{FmtArg::Type::kFloat, 0, v, {}}, verb);
            return;
    }
}

void Printer::fmtFloatAs(double v, char verb, int prec) {
    if (f_.prec_present) prec = f_.prec;
    std::string num = goFormatFloat(v, verb, prec);
    if (num[0] != '-' && num[0] != '+') num.insert(num.begin(), '+');
    if (f_.space && num[0] == '+' && !f_.plus) num[0] = ' ';
    if (num[1] == 'I' || num[1] == 'N') {
        if (num[1] == 'N' && !f_.space && !f_.plus) num.erase(0, 1);
        padNoZero(num);
        return;
    }
    if (f_.sharp && verb != 'b') {
        int digits = 0;
        if (verb == 'g' || verb == 'G' || verb == 'x' || verb == 'X') digits = prec < 0 ? 6 : prec;
        std::string tail;
        bool has_point = false;
        bool saw_nonzero = false;
        for (std::size_t i = 1; i < num.size(); ++i) {
            const char c = num[i];
            if (c == '.') {
                has_point = true;
            } else if (c == 'p' || c == 'P' ||
                       ((c == 'e' || c == 'E') && verb != 'x' && verb != 'X')) {
                tail = num.substr(i);
                num.resize(i);
                break;
            } else if (c >= '0' && c <= '9') {
                if (c != '0') saw_nonzero = true;
                if (saw_nonzero) --digits;
            }
        }
        if (!has_point) {
            if (num.size() == 2 && num[1] == '0') --digits;
            num += '.';
        }
        for (; digits > 0; --digits) num += '0';
        num += tail;
    }
    if (f_.plus || num[0] != '+') {
        if (f_.zero && !f_.minus && f_.wid_present && f_.wid > static_cast<int>(num.size())) {
            buf_ += num[0];
            writePadding(f_.wid - static_cast<int>(num.size()));
            buf_.append(num, 1);
            return;
        }
        pad(num);
        return;
    }
    pad(std::string_view(num).substr(1));
}

void Printer::fmtBigInt(const FmtArg& a, char32_t verb) { buf_ += formatBigInt(a.d, verb, f_); }

// parsenum: a decimal number at format[i, end); isnum false when absent or too large.
bool parseNum(std::string_view format, std::size_t& i, std::size_t end, int& num) {
    num = 0;
    bool isnum = false;
    for (; i < end && format[i] >= '0' && format[i] <= '9'; ++i) {
        if (num > kTooLarge) {
            i = end;
            num = 0;
            return false;
        }
        num = num * 10 + (format[i] - '0');
        isnum = true;
    }
    return isnum;
}

void Printer::argNumber(int& arg_num, std::string_view format, std::size_t& i, int num_args,
                        bool& found) {
    found = false;
    if (i >= format.size() || format[i] != '[') return;
    reordered_ = true;
    // parseArgNumber: "[n]" with n one-based.
    bool ok = false;
    int index = 0;
    std::size_t wid = 1;
    if (format.size() - i >= 3) {
        for (std::size_t k = i + 1; k < format.size(); ++k) {
            if (format[k] == ']') {
                std::size_t p = i + 1;
                int n = 0;
                const bool isnum = parseNum(format, p, k, n);
                wid = k - i + 1;
                if (isnum && p == k) {
                    ok = true;
                    index = n - 1;
                }
                break;
            }
        }
    }
    i += wid;
    if (ok && index >= 0 && index < num_args) {
        arg_num = index;
        found = true;
        return;
    }
    good_arg_num_ = false;
    found = ok;
}

void Printer::intFromArg(std::span<const FmtArg> args, int& arg_num, int& num, bool& is_int) const {
    num = 0;
    is_int = false;
    if (arg_num < static_cast<int>(args.size())) {
        const auto& a = args[static_cast<std::size_t>(arg_num)];
        if (a.type == FmtArg::Type::kInt && a.i >= -kTooLarge && a.i <= kTooLarge) {
            num = static_cast<int>(a.i);
            is_int = true;
        }
        ++arg_num;
    }
}

std::string Printer::run(std::string_view format, std::span<const FmtArg> args) {
    const std::size_t end = format.size();
    const int num_args = static_cast<int>(args.size());
    int arg_num = 0;
    bool after_index = false;
    for (std::size_t i = 0; i < end;) {
        good_arg_num_ = true;
        const std::size_t lasti = i;
        while (i < end && format[i] != '%') ++i;
        if (i > lasti) buf_.append(format.substr(lasti, i - lasti));
        if (i >= end) break;
        ++i;  // skip '%'
        f_ = FmtFlags{};
        for (; i < end; ++i) {
            const char c = format[i];
            if (c == '#') {
                f_.sharp = true;
            } else if (c == '0') {
                f_.zero = !f_.minus;
            } else if (c == '+') {
                f_.plus = true;
            } else if (c == '-') {
                f_.minus = true;
                f_.zero = false;
            } else if (c == ' ') {
                f_.space = true;
            } else {
                break;
            }
        }
        argNumber(arg_num, format, i, num_args, after_index);
        if (i < end && format[i] == '*') {
            ++i;
            intFromArg(args, arg_num, f_.wid, f_.wid_present);
            if (!f_.wid_present) buf_ += "%!(BADWIDTH)";
            if (f_.wid < 0) {
                f_.wid = -f_.wid;
                f_.minus = true;
                f_.zero = false;
            }
            after_index = false;
        } else {
            f_.wid_present = parseNum(format, i, end, f_.wid);
            if (after_index && f_.wid_present) good_arg_num_ = false;
        }
        if (i + 1 < end && format[i] == '.') {
            ++i;
            if (after_index) good_arg_num_ = false;
            argNumber(arg_num, format, i, num_args, after_index);
            if (i < end && format[i] == '*') {
                ++i;
                intFromArg(args, arg_num, f_.prec, f_.prec_present);
                if (f_.prec < 0) {
                    f_.prec = 0;
                    f_.prec_present = false;
                }
                if (!f_.prec_present) buf_ += "%!(BADPREC)";
                after_index = false;
            } else {
                f_.prec_present = parseNum(format, i, end, f_.prec);
                if (!f_.prec_present) {
                    f_.prec = 0;
                    f_.prec_present = true;
                }
            }
        }
        if (!after_index) argNumber(arg_num, format, i, num_args, after_index);
        if (i >= end) {
            buf_ += "%!(NOVERB)";
            break;
        }
        const auto d = decodeRune(format, i);
        const char32_t verb = d.rune;
        i += d.width;
        if (verb == '%') {
            buf_ += '%';
        } else if (!good_arg_num_) {
            buf_ += "%!";
            appendRune(buf_, verb);
            buf_ += "(BADINDEX)";
        } else if (arg_num >= num_args) {
            buf_ += "%!";
            appendRune(buf_, verb);
            buf_ += "(MISSING)";
        } else {
            if (verb == 'v') {
                f_.sharp_v = f_.sharp;
                f_.sharp = false;
                f_.plus_v = f_.plus;
                f_.plus = false;
            }
            printArg(args[static_cast<std::size_t>(arg_num)], verb);
            ++arg_num;
        }
    }
    if (!reordered_ && arg_num < num_args) {
        f_ = FmtFlags{};
        buf_ += "%!(EXTRA ";
        for (auto k = static_cast<std::size_t>(arg_num); k < args.size(); ++k) {
            if (k > static_cast<std::size_t>(arg_num)) buf_ += ", ";
            buf_ += typeName(args[k]);
            buf_ += '=';
            printArg(args[k], 'v');
        }
        buf_ += ')';
    }
    return std::move(buf_);
}

}  // namespace

std::string goSprintf(std::string_view format, std::span<const FmtArg> args) {
    return Printer().run(format, args);
}

}  // namespace edge::policy::detail
