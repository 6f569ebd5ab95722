#pragma once
// Internal: the few pieces of Go's strings/unicode/strconv behaviour that OPA's string builtins
// inherit (UTF-8 decoding with U+FFFD for bad bytes, case mapping, white space, Go quoting).
#include <cstddef>
#include <string>
#include <string_view>

namespace edge::policy::detail {

inline constexpr char32_t kRuneError = 0xFFFD;

struct DecodedRune {
    char32_t rune = kRuneError;
    std::size_t width = 0;  // bytes consumed; 1 for an invalid byte, 0 only at the end
};

/// Decodes the code point at s[pos] as Go's utf8.DecodeRuneInString does.
[[nodiscard]] DecodedRune decodeRune(std::string_view s, std::size_t pos);
void appendRune(std::string& out, char32_t r);
[[nodiscard]] std::size_t runeCount(std::string_view s);

/// Simple (one code point) case mapping, as Go's unicode.ToLower/ToUpper.
[[nodiscard]] char32_t lowerRune(char32_t r);
[[nodiscard]] char32_t upperRune(char32_t r);
[[nodiscard]] std::string toLower(std::string_view s);
[[nodiscard]] std::string toUpper(std::string_view s);

/// Go's unicode.IsSpace.
[[nodiscard]] bool isSpaceRune(char32_t r);
/// Go's strconv.IsPrint (approximated: controls, surrogates, unassigned planes are not).
[[nodiscard]] bool isPrintRune(char32_t r);

/// Go's strconv.Quote: a double-quoted Go string literal.
[[nodiscard]] std::string goQuote(std::string_view s);
/// Go's strconv.QuoteRune: a single-quoted Go rune literal.
[[nodiscard]] std::string goQuoteRune(char32_t r);

}  // namespace edge::policy::detail
