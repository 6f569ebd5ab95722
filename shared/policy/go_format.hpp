#pragma once
// Internal: Go's fmt.Sprintf as OPA's sprintf builtin applies it. OPA hands Go an int for an
// integral number, a *big.Int for an integer too large for int64, a float64 for other numbers,
// a string for a string, and the Rego text of any other value as a string. The Go quirks
// follow from that: sprintf("%s", [5]) is "%!s(int=5)", sprintf("%d", [true]) is
// "%!d(string=true)", missing operands print "%!d(MISSING)", extra ones "%!(EXTRA …)".
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shared/policy/value.hpp"

namespace edge::policy::detail {

struct FmtArg {
    enum class Type : std::uint8_t { kInt, kBigInt, kFloat, kString };
    Type type = Type::kString;
    std::int64_t i = 0;
    double d = 0;   // kFloat, and kBigInt (an integral double outside int64)
    std::string s;  // kString
};

/// fmt's flags, width and precision of one verb.
struct FmtFlags {
    bool sharp = false, zero = false, plus = false, minus = false, space = false;
    bool sharp_v = false, plus_v = false;  // '#' and '+' given with %v
    bool wid_present = false, prec_present = false;
    int wid = 0, prec = 0;
};

/// The argument OPA passes to fmt for one element of sprintf's array operand.
[[nodiscard]] FmtArg fmtArgOf(const Value& v);

/// fmt.Sprintf(format, args...). Widths and precisions are capped (as Go's are) so the output
/// stays proportional to the format and the arguments.
[[nodiscard]] std::string goSprintf(std::string_view format, std::span<const FmtArg> args);

/// big.Int's fmt.Formatter for an integral double (of any magnitude) under one verb.
[[nodiscard]] std::string formatBigInt(double d, char32_t verb, const FmtFlags& flags);

/// strconv.FormatFloat(v, fmt, prec, 64) for fmt in "eEfgGbxX"; prec -1 is the shortest
/// representation that round-trips.
[[nodiscard]] std::string goFormatFloat(double v, char fmt, int prec);

}  // namespace edge::policy::detail
