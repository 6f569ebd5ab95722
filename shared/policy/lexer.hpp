#pragma once
// Rego tokens. Newlines are not tokens: each token records whether a newline came before it,
// which is where an expression may end.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shared/core/error.hpp"

namespace edge::policy {

enum class Tok {
    kEof,
    kIdent,
    kString,  // text is the decoded string
    kNumber,  // text is the literal
    kAssign,  // :=
    kUnify,   // =
    kEq,      // ==
    kNeq,
    kLt,
    kLte,
    kGt,
    kGte,
    kPlus,
    kMinus,
    kStar,
    kSlash,
    kPercent,
    kAmp,
    kBar,
    kDot,
    kComma,
    kSemicolon,
    kColon,
    kLBrack,
    kRBrack,
    kLBrace,
    kRBrace,
    kLParen,
    kRParen,
};

struct Token {
    Tok kind = Tok::kEof;
    std::string text;
    int line = 1;
    int col = 1;
    bool nl_before = false;
    bool ws_before = false;
};

/// Splits source into tokens; errors name file:line:col.
[[nodiscard]] Result<std::vector<Token>> lex(std::string_view source, const std::string& file);

}  // namespace edge::policy
