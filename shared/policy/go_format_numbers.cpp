// Numbers for go_format.cpp: strconv.FormatFloat (Go's 'e', 'f', 'g', 'b', 'x' formats,
// shortest-round-trip or fixed precision; std::to_chars supplies correctly rounded digits), and
// *big.Int formatting for integers beyond int64, which OPA hands to fmt as big.Int.
#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "shared/policy/go_format.hpp"
#include "shared/policy/go_strings.hpp"

namespace edge::policy::detail {
namespace {

constexpr char kLowerHex[] = "0123456789abcdefx";
constexpr char kUpperHex[] = "0123456789ABCDEFX";

struct Decimal {
    std::string digits;  // no leading or trailing zeros; empty for zero
    int dp = 0;          // decimal point position: value = 0.digits × 10^dp
};

// Parses the output of std::to_chars(scientific): "d[.ddd]e±XX".
Decimal decimalOf(std::string_view sci) {
    Decimal d;
    const auto e = sci.find('e');
    for (char c : sci.substr(0, e)) {
        if (c != '.') d.digits += c;
    }
    int exp = 0;
    std::from_chars(sci.data() + e + (sci[e + 1] == '+' ? 2 : 1), sci.data() + sci.size(), exp);
    while (!d.digits.empty() && d.digits.back() == '0') d.digits.pop_back();
    d.dp = d.digits.empty() ? 0 : exp + 1;
    return d;
}

Decimal decimalOf(double a, int significant) {
    char buf[512];
    const auto r = significant < 0
                       ? std::to_chars(buf, buf + sizeof buf, a, std::chars_format::scientific)
                       : std::to_chars(buf, buf + sizeof buf, a, std::chars_format::scientific,
                                       significant - 1);
    return decimalOf(std::string_view(buf, r.ptr));
}

std::string fmtE(bool neg, const Decimal& d, int prec, char fmt) {
    std::string out = neg ? "-" : "";
    const auto nd = static_cast<int>(d.digits.size());
    out += nd == 0 ? '0' : d.digits[0];
    if (prec > 0) {
        out += '.';
        const int m = std::min(nd, prec + 1);
        if (m > 1) out.append(d.digits, 1, static_cast<std::size_t>(m - 1));
        out.append(static_cast<std::size_t>(prec - std::max(m - 1, 0)), '0');
    }
    out += fmt;
    int exp = nd == 0 ? 0 : d.dp - 1;
    out += exp < 0 ? '-' : '+';
    exp = std::abs(exp);
    if (exp < 10) out += '0';
    out += std::to_string(exp);
    return out;
}

std::string fmtF(bool neg, const Decimal& d, int prec) {
    std::string out = neg ? "-" : "";
    const auto nd = static_cast<int>(d.digits.size());
    if (d.dp > 0) {
        const int m = std::min(nd, d.dp);
        out.append(d.digits, 0, static_cast<std::size_t>(m));
        out.append(static_cast<std::size_t>(d.dp - m), '0');
    } else {
        out += '0';
    }
    if (prec > 0) {
        out += '.';
        for (int i = 1; i <= prec; ++i) {
            const int j = d.dp + i - 1;
            out += (j >= 0 && j < nd) ? d.digits[static_cast<std::size_t>(j)] : '0';
        }
    }
    return out;
}

std::string fmtG(bool neg, const Decimal& d, int prec, bool shortest, char fmt) {
    const auto nd = static_cast<int>(d.digits.size());
    int eprec = prec;
    if (eprec > nd && nd >= d.dp) eprec = nd;
    if (shortest) eprec = 6;
    const int exp = d.dp - 1;
    if (exp < -4 || exp >= eprec) {
        if (prec > nd) prec = nd;
        return fmtE(neg, d, prec - 1, fmt == 'G' ? 'E' : 'e');
    }
    if (prec > d.dp) prec = nd;
    return fmtF(neg, d, std::max(prec - d.dp, 0));
}

/// A double's sign, unbiased binary exponent and 53-bit mantissa (implicit bit included for
/// normal numbers), as Go's %b and %x take it apart.
struct BinaryParts {
    bool negative;
    int exp;
    std::uint64_t mant;
};

BinaryParts binaryParts(double v) {
    const auto bits = std::bit_cast<std::uint64_t>(v);
    int exp = static_cast<int>((bits >> 52) & 0x7FF);
    std::uint64_t mant = bits & ((std::uint64_t{1} << 52) - 1);
    if (exp == 0) {
        ++exp;
    } else {
        mant |= std::uint64_t{1} << 52;
    }
    return {(bits >> 63) != 0, exp - 1023, mant};
}

std::string fmtB(double v) {
    auto [negative, exp, mant] = binaryParts(v);
    exp -= 52;
    std::string out = negative ? "-" : "";
    out += std::to_string(mant);
    out += 'p';
    if (exp >= 0) out += '+';
    out += std::to_string(exp);
    return out;
}

std::string fmtX(double v, int prec, char fmt) {
    auto [negative, exp, mant] = binaryParts(v);
    if (mant == 0) exp = 0;
    mant <<= 60 - 52;
    while (mant != 0 && (mant & (std::uint64_t{1} << 60)) == 0) {
        mant <<= 1;
        --exp;
    }
    if (prec >= 0 && prec < 15) {
        const auto shift = static_cast<unsigned>(prec * 4);
        const std::uint64_t extra = (mant << shift) & ((std::uint64_t{1} << 60) - 1);
        mant >>= 60 - shift;
        if ((extra | (mant & 1)) > (std::uint64_t{1} << 59)) ++mant;
        mant <<= 60 - shift;
        if ((mant & (std::uint64_t{1} << 61)) != 0) {
            mant >>= 1;
            ++exp;
        }
    }
    const char* hex = fmt == 'X' ? kUpperHex : kLowerHex;
    std::string out = negative ? "-" : "";
    out += '0';
    out += fmt;
    out += static_cast<char>('0' + ((mant >> 60) & 1));
    mant <<= 4;
    if (prec < 0 && mant != 0) {
        out += '.';
        while (mant != 0) {
            out += hex[(mant >> 60) & 15];
            mant <<= 4;
        }
    } else if (prec > 0) {
        out += '.';
        for (int i = 0; i < prec; ++i) {
            out += hex[(mant >> 60) & 15];
            mant <<= 4;
        }
    }
    out += fmt == 'X' ? 'P' : 'p';
    out += exp < 0 ? '-' : '+';
    exp = std::abs(exp);
    if (exp < 10) out += '0';
    out += std::to_string(exp);
    return out;
}

// Digits of an integral double of any magnitude in base 2, 8, 10 or 16 (lower case).
std::string bigDigits(double d, int base) {
    const double a = std::fabs(d);
    if (base == 10) {
        char buf[400];
        const auto r = std::to_chars(buf, buf + sizeof buf, a, std::chars_format::fixed, 0);
        return {buf, r.ptr};
    }
    const auto bits = std::bit_cast<std::uint64_t>(a);
    const int exp = static_cast<int>((bits >> 52) & 0x7FF) - 1023 - 52;
    const std::uint64_t mant = (bits & ((std::uint64_t{1} << 52) - 1)) | (std::uint64_t{1} << 52);
    std::string binary;
    for (int b = 52; b >= 0; --b) binary += ((mant >> b) & 1) != 0 ? '1' : '0';
    binary.append(static_cast<std::size_t>(std::max(exp, 0)), '0');
    if (base == 2) return binary;
    const int group = base == 8 ? 3 : 4;
    std::string out;
    for (auto end = static_cast<int>(binary.size()); end > 0; end -= group) {
        int v = 0;
        for (int k = std::max(end - group, 0); k < end; ++k)
            v = v * 2 + (binary[static_cast<std::size_t>(k)] - '0');
        out += kLowerHex[v];
    }
    std::reverse(out.begin(), out.end());
    return out;
}

}  // namespace

std::string goFormatFloat(double v, char fmt, int prec) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (fmt == 'b') return fmtB(v);
    if (fmt == 'x' || fmt == 'X') return fmtX(v, prec, fmt);
    const bool neg = std::signbit(v);
    const double a = std::fabs(v);
    char buf[512];
    if (prec >= 0 && (fmt == 'f' || fmt == 'e' || fmt == 'E')) {
        prec = std::min(prec, 400);  // beyond this every double's expansion is exhausted
        const auto r = std::to_chars(
            buf, buf + sizeof buf, a,
            fmt == 'f' ? std::chars_format::fixed : std::chars_format::scientific, prec);
        std::string out = neg ? "-" : "";
        out.append(buf, r.ptr);
        if (fmt == 'E') std::replace(out.begin(), out.end(), 'e', 'E');
        return out;
    }
    if (prec < 0) {
        const Decimal d = decimalOf(a, -1);
        const auto nd = static_cast<int>(d.digits.size());
        switch (fmt) {
            case 'e':
            case 'E':
                return fmtE(neg, d, std::max(nd - 1, 0), fmt);
            case 'f':
                return fmtF(neg, d, std::max(nd - d.dp, 0));
            default:
                return fmtG(neg, d, nd, true, fmt);
        }
    }
    if (prec == 0) prec = 1;
    prec = std::min(prec, 400);
    return fmtG(neg, decimalOf(a, prec), prec, false, fmt);
}

std::string formatBigInt(double d, char32_t verb, const FmtFlags& f) {
    std::string out;
    int base = 10;
    switch (verb) {
        case 'b':
            base = 2;
            break;
        case 'o':
        case 'O':
            base = 8;
            break;
        case 'd':
        case 's':
        case 'v':
            base = 10;
            break;
        case 'x':
        case 'X':
            base = 16;
            break;
        default:
            out += "%!";
            appendRune(out, verb);
            out +=
                "(big.Int=" + (d < 0 ? std::string("-") : std::string()) + bigDigits(d, 10) + ")";
            return out;
    }
    std::string sign;
    if (d < 0) {
        sign = "-";
    } else if (f.plus || f.plus_v) {
        sign = "+";
    } else if (f.space) {
        sign = " ";
    }
    std::string prefix;
    if (f.sharp || f.sharp_v) {
        if (verb == 'b') prefix = "0b";
        if (verb == 'o') prefix = "0";
        if (verb == 'x') prefix = "0x";
        if (verb == 'X') prefix = "0X";
    }
    if (verb == 'O') prefix = "0o";
    std::string digits = bigDigits(d, base);
    if (verb == 'X')
        std::transform(digits.begin(), digits.end(), digits.begin(),
                       [](char c) { return c >= 'a' ? static_cast<char>(c - 32) : c; });
    int left = 0;
    int zeros = 0;
    int right = 0;
    if (f.prec_present && static_cast<int>(digits.size()) < f.prec)
        zeros = f.prec - static_cast<int>(digits.size());
    const int length = static_cast<int>(sign.size() + prefix.size() + digits.size()) + zeros;
    if (f.wid_present && length < f.wid) {
        const int d = f.wid - length;
        if (f.minus) {
            right = d;
        } else if (f.zero && !f.prec_present) {
            zeros = d;
        } else {
            left = d;
        }
    }
    out.append(static_cast<std::size_t>(left), ' ');
    out += sign + prefix;
    out.append(static_cast<std::size_t>(zeros), '0');
    out += digits;
    out.append(static_cast<std::size_t>(right), ' ');
    return out;
}

FmtArg fmtArgOf(const Value& v) {
    FmtArg a;
    switch (v.kind()) {
        case Kind::kNumber: {
            const Number& n = v.asNumber();
            std::int64_t i = 0;
            if (const std::string* t = n.text()) {  // an exact literal past int64/double: as written
                a.s = *t;
                return a;
            }
            if (n.toInt(i)) {
                a.type = FmtArg::Type::kInt;
                a.i = i;
            } else if (std::isfinite(n.d) && std::trunc(n.d) == n.d) {
                a.type = FmtArg::Type::kBigInt;
                a.d = n.d;
            } else {
                a.type = FmtArg::Type::kFloat;
                a.d = n.asDouble();
            }
            return a;
        }
        case Kind::kString:
            a.s = v.asString();
            return a;
        default:
            a.s = v.toRego();
            return a;
    }
}

}  // namespace edge::policy::detail
