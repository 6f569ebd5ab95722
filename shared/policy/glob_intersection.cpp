#include "shared/policy/glob_intersection.hpp"

#include <string>
#include <utility>
#include <vector>

#include "shared/policy/errors.hpp"
#include "shared/policy/go_strings.hpp"

namespace edge::policy::detail {
namespace {

constexpr std::size_t kMaxTokens = 4096;

struct Token {
    enum class Kind { kChar, kDot, kSet } kind = Kind::kChar;
    enum class Flag { kNone, kPlus, kStar } flag = Flag::kNone;
    char32_t rune = 0;
    std::vector<std::pair<char32_t, char32_t>> ranges;  // kSet
};

class Tokenizer {
public:
    explicit Tokenizer(std::string_view input) : input_(input) {
        for (std::size_t i = 0; i < input.size();) {
            const auto d = decodeRune(input, i);
            runes_.push_back(d.rune);
            i += d.width;
        }
    }

    Result<std::vector<Token>> run() {
        std::vector<Token> tokens;
        while (pos_ < runes_.size()) {
            if (tokens.size() >= kMaxTokens) return invalid("pattern too long");
            auto t = token();
            if (!t) return fail(t.error());
            tokens.push_back(std::move(*t));
        }
        return tokens;
    }

private:
    struct Rune {
        char32_t r = 0;
        bool escaped = false;
    };

    std::unexpected<Error> invalid(const std::string& reason) const {
        std::string input(input_);
        return fail(PolicyErrc::kBuiltinError, "input:" + input + ", pos:" + std::to_string(pos_) +
                                                   ", " + reason +
                                                   ": the input provided is invalid");
    }

    Result<Rune> next() {
        if (runes_[pos_] != '\\') return Rune{runes_[pos_++], false};
        if (pos_ + 1 >= runes_.size()) return invalid("input ends with a \\ (escape) character");
        pos_ += 2;
        return Rune{runes_[pos_ - 1], true};
    }

    static std::string utf8(char32_t r) {
        std::string s;
        appendRune(s, r);
        return s;
    }

    Result<Token> token() {
        auto r = next();
        if (!r) return fail(r.error());
        Token t;
        if (!r->escaped && r->r == '.') {
            t.kind = Token::Kind::kDot;
        } else if (!r->escaped && r->r == ']') {
            return invalid("set-close ']' with no preceding '['");
        } else if (!r->escaped && r->r == '[') {
            auto st = set(t);
            if (!st) return fail(st.error());
        } else if (!r->escaped && (r->r == '+' || r->r == '*')) {
            return invalid("flag '" + utf8(r->r) + "' must be preceded by a non-flag");
        } else {
            t.rune = r->r;
        }
        if (pos_ < runes_.size() && (runes_[pos_] == '+' || runes_[pos_] == '*')) {
            t.flag = runes_[pos_] == '+' ? Token::Flag::kPlus : Token::Flag::kStar;
            ++pos_;
        }
        return t;
    }

    Status set(Token& t) {
        t.kind = Token::Kind::kSet;
        bool prev_exists = false;
        char32_t prev = 0;
        while (pos_ < runes_.size()) {
            auto r = next();
            if (!r) return fail(r.error());
            if (r->escaped || (r->r != '-' && r->r != ']')) {
                t.ranges.emplace_back(r->r, r->r);
                prev = r->r;
                prev_exists = true;
            } else if (r->r == ']') {
                return {};
            } else {  // '-'
                if (!prev_exists)
                    return invalid("range character '-' must be preceded by a Unicode character");
                if (pos_ >= runes_.size())
                    return invalid("range character '-' must be followed by a Unicode character");
                auto hi = next();
                if (!hi) return fail(hi.error());
                if (!hi->escaped && (hi->r == ']' || hi->r == '-')) {
                    return invalid("range character '-' cannot be followed by a special symbol");
                }
                if (hi->r < prev) {
                    return invalid("range is out of order: '" + utf8(hi->r) + "' comes before '" +
                                   utf8(prev) + "' in Unicode");
                }
                t.ranges.back().second = hi->r;
                prev_exists = false;
            }
        }
        return invalid("found [ without matching ]");
    }

    std::string_view input_;
    std::vector<char32_t> runes_;
    std::size_t pos_ = 0;
};

bool inSet(char32_t r, const Token& set) {
    for (const auto& [lo, hi] : set.ranges) {
        if (r >= lo && r <= hi) return true;
    }
    return false;
}

// The library's Match: a dot matches anything (even an empty set).
bool tokensMatch(const Token& a, const Token& b) {
    using K = Token::Kind;
    if (a.kind == K::kDot || b.kind == K::kDot) return true;
    if (a.kind == K::kChar && b.kind == K::kChar) return a.rune == b.rune;
    if (a.kind == K::kChar) return inSet(a.rune, b);
    if (b.kind == K::kChar) return inSet(b.rune, a);
    for (const auto& [lo1, hi1] : a.ranges) {
        for (const auto& [lo2, hi2] : b.ranges) {
            if (lo1 <= hi2 && lo2 <= hi1) return true;
        }
    }
    return false;
}

}  // namespace

Result<bool> globsIntersect(std::string_view a, std::string_view b) {
    auto ta = Tokenizer(a).run();
    if (!ta) return fail(ta.error());
    auto tb = Tokenizer(b).run();
    if (!tb) return fail(tb.error());
    const std::size_t n = ta->size();
    const std::size_t m = tb->size();
    std::vector<bool> seen((n + 1) * (m + 1), false);
    std::vector<std::pair<std::size_t, std::size_t>> work;
    auto visit = [&](std::size_t i, std::size_t j) {
        if (!seen[i * (m + 1) + j]) {
            seen[i * (m + 1) + j] = true;
            work.emplace_back(i, j);
        }
    };
    visit(0, 0);
    while (!work.empty()) {
        const auto [i, j] = work.back();
        work.pop_back();
        if (i == n && j == m) return true;
        const bool a_star = i < n && (*ta)[i].flag == Token::Flag::kStar;
        const bool b_star = j < m && (*tb)[j].flag == Token::Flag::kStar;
        if (a_star) visit(i + 1, j);  // zero repetitions
        if (b_star) visit(i, j + 1);
        if (i < n && j < m && tokensMatch((*ta)[i], (*tb)[j])) {
            const bool a_repeats = (*ta)[i].flag != Token::Flag::kNone;
            const bool b_repeats = (*tb)[j].flag != Token::Flag::kNone;
            visit(i + 1, j + 1);
            if (a_repeats) visit(i, j + 1);
            if (b_repeats) visit(i + 1, j);
            if (a_repeats && b_repeats) visit(i, j);
        }
    }
    return false;
}

}  // namespace edge::policy::detail
