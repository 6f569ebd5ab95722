#include "shared/policy/parser.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

#include "shared/policy/errors.hpp"
#include "shared/policy/lexer.hpp"

namespace edge::policy {
namespace {

constexpr int kMaxDepth = 200;

Result<Value> numberValue(const std::string& text) {
    auto n = Number::ofLiteral(text);
    if (!n) return fail(PolicyErrc::kParse, fmt::format("malformed number {}", text));
    return Value::number(std::move(*n));
}

class Parser {
public:
    Parser(std::vector<Token> tokens, std::shared_ptr<const std::string> file)
        : toks_(std::move(tokens)), file_(std::move(file)) {}

    Result<Module> module() {
        Module m;
        m.file = file_;
        if (!isIdent("package")) return expected("package");
        next();
        auto path = packagePath();
        if (!path) return fail(path.error());
        m.package = std::move(*path);
        while (isKeyword("import")) {
            next();
            auto imp = importDecl();
            if (!imp) return fail(imp.error());
            m.imports.push_back(std::move(*imp));
        }
        while (!at(Tok::kEof)) {
            auto rule = rule_();
            if (!rule) return fail(rule.error());
            m.rules.push_back(std::move(*rule));
        }
        return m;
    }

    Result<Body> query() {
        auto body = literals(Tok::kEof);
        if (!body) return body;
        if (!at(Tok::kEof)) return expected("end of query");
        return body;
    }

private:
    // ---- token helpers
    const Token& cur() const { return toks_[pos_]; }
    const Token& peek(std::size_t n = 1) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
    bool at(Tok k) const { return cur().kind == k; }
    bool isIdent(std::string_view s) const { return at(Tok::kIdent) && cur().text == s; }
    /// A keyword used as a name: followed by '.', '[' (no space), or an assignment.
    bool keywordAsName() const {
        const auto& n = peek();
        return (n.kind == Tok::kDot && !n.ws_before) || (n.kind == Tok::kLBrack && !n.ws_before) ||
               n.kind == Tok::kAssign || n.kind == Tok::kUnify || n.kind == Tok::kEq;
    }
    bool isKeyword(std::string_view s) const { return isIdent(s) && !keywordAsName(); }
    void next() {
        if (pos_ + 1 < toks_.size()) ++pos_;
    }
    Location loc() const { return Location{file_, cur().line, cur().col}; }
    std::unexpected<Error> errorAt(const Token& t, std::string_view msg) const {
        return fail(PolicyErrc::kParse, fmt::format("{}:{}:{}: {}", *file_, t.line, t.col, msg));
    }
    std::unexpected<Error> expected(std::string_view what) const {
        const auto& t = cur();
        const std::string found = t.kind == Tok::kEof ? "end of input" : fmt::format("'{}'", t.text);
        return errorAt(t, fmt::format("expected {}, found {}", what, found));
    }
    Status expect(Tok k, std::string_view what) {
        if (!at(k)) return expected(what);
        next();
        return {};
    }

    // ---- module level
    Result<std::vector<std::string>> packagePath() {
        std::vector<std::string> path;
        if (!at(Tok::kIdent)) return expected("package name");
        path.push_back(cur().text);
        next();
        while (!cur().nl_before && (at(Tok::kDot) || at(Tok::kLBrack))) {
            if (at(Tok::kDot)) {
                next();
                if (!at(Tok::kIdent)) return expected("name after '.'");
                path.push_back(cur().text);
                next();
            } else {
                next();
                if (!at(Tok::kString)) return expected("string in package path");
                path.push_back(cur().text);
                next();
                if (auto st = expect(Tok::kRBrack, "']'"); !st) return fail(st.error());
            }
        }
        return path;
    }

    Result<Import> importDecl() {
        Import imp;
        if (!at(Tok::kIdent)) return expected("import path");
        imp.path.push_back(cur().text);
        next();
        while (!cur().nl_before && (at(Tok::kDot) || at(Tok::kLBrack))) {
            if (at(Tok::kDot)) {
                next();
                if (!at(Tok::kIdent)) return expected("name after '.'");
                imp.path.push_back(cur().text);
                next();
            } else {
                next();
                if (!at(Tok::kString)) return expected("string in import path");
                imp.path.push_back(cur().text);
                next();
                if (auto st = expect(Tok::kRBrack, "']'"); !st) return fail(st.error());
            }
        }
        if (imp.path[0] != "data" && imp.path[0] != "input" && imp.path[0] != "future" &&
            imp.path[0] != "rego") {
            return errorAt(cur(), "import path must begin with data, input, future or rego");
        }
        if (isIdent("as") && !cur().nl_before) {
            next();
            if (!at(Tok::kIdent)) return expected("alias after 'as'");
            imp.alias = cur().text;
            next();
        }
        return imp;
    }

    Result<RuleP> rule_() {
        auto rule = std::make_shared<Rule>();
        rule->loc = loc();
        if (isIdent("default") && peek().kind == Tok::kIdent && !peek().nl_before) {
            rule->is_default = true;
            next();
        }
        if (!at(Tok::kIdent)) return expected("rule name");
        rule->ref.push_back(makeValue(Value::string(cur().text), loc()));
        next();
        // Head ref: .name or [term]
        while (!cur().nl_before && (at(Tok::kDot) || (at(Tok::kLBrack) && !cur().ws_before))) {
            if (at(Tok::kDot)) {
                next();
                if (!at(Tok::kIdent)) return expected("name after '.'");
                rule->ref.push_back(makeValue(Value::string(cur().text), loc()));
                next();
            } else {
                next();
                auto t = term(0);
                if (!t) return fail(t.error());
                rule->ref.push_back(*t);
                if (auto st = expect(Tok::kRBrack, "']'"); !st) return fail(st.error());
            }
        }
        if (at(Tok::kLParen) && !cur().ws_before) {
            rule->kind = RuleKind::kFunction;
            next();
            while (!at(Tok::kRParen)) {
                auto arg = term(0);
                if (!arg) return fail(arg.error());
                rule->args.push_back(*arg);
                if (at(Tok::kComma)) {
                    next();
                } else if (!at(Tok::kRParen)) {
                    return expected("',' or ')'");
                }
            }
            next();
        }
        if (isIdent("contains") && rule->kind != RuleKind::kFunction) {
            next();
            auto t = term(0);
            if (!t) return fail(t.error());
            rule->kind = RuleKind::kPartialSet;
            rule->key = *t;
        }
        if ((at(Tok::kAssign) || at(Tok::kUnify)) && rule->kind != RuleKind::kPartialSet) {
            rule->assign = at(Tok::kAssign);
            next();
            auto t = exprTerm();
            if (!t) return fail(t.error());
            rule->value = *t;
        }
        if (rule->kind == RuleKind::kComplete) {
            bool has_var = false;
            for (std::size_t i = 1; i < rule->ref.size(); ++i) {
                if (rule->ref[i]->kind != TermKind::kValue) has_var = true;
            }
            if (has_var) {
                rule->kind = RuleKind::kPartialObject;
                rule->key = rule->ref.back();
            }
        }
        if (!rule->value && rule->kind != RuleKind::kPartialSet) {
            rule->value = makeValue(Value::boolean(true), rule->loc);
        }
        if (rule->is_default) {
            if (rule->kind == RuleKind::kPartialSet) return errorAt(cur(), "default rules cannot be partial sets");
            return rule;
        }
        auto body = ruleBody();
        if (!body) return fail(body.error());
        rule->body = std::move(*body);
        // else chains
        Rule* last = rule.get();
        while (isIdent("else") && !(peek().kind == Tok::kDot || (peek().kind == Tok::kLBrack && !peek().ws_before))) {
            auto alt = std::make_shared<Rule>();
            alt->loc = loc();
            alt->kind = rule->kind;
            alt->ref = rule->ref;
            alt->args = rule->args;
            next();
            if (at(Tok::kAssign) || at(Tok::kUnify)) {
                next();
                auto t = exprTerm();
                if (!t) return fail(t.error());
                alt->value = *t;
            } else {
                alt->value = makeValue(Value::boolean(true), alt->loc);
            }
            auto alt_body = ruleBody();
            if (!alt_body) return fail(alt_body.error());
            alt->body = std::move(*alt_body);
            last->else_rule = alt;
            last = alt.get();
        }
        return rule;
    }

    // Body after a head: "if { … }", "if expr", "{ … }", or nothing.
    Result<Body> ruleBody() {
        if (isKeyword("if")) {
            next();
            if (at(Tok::kLBrace)) {
                // Usually a block; else a literal that starts with an object or set term.
                const auto save = pos_;
                auto b = block();
                if (b) return b;
                pos_ = save;
                auto e = literal();
                if (!e) return fail(b.error());
                Body body;
                body.push_back(std::move(*e));
                return body;
            }
            auto e = literal();
            if (!e) return fail(e.error());
            Body b;
            b.push_back(std::move(*e));
            return b;
        }
        if (at(Tok::kLBrace) && !cur().nl_before) return block();
        return Body{};
    }

    Result<Body> block() {
        if (auto st = expect(Tok::kLBrace, "'{'"); !st) return fail(st.error());
        auto body = literals(Tok::kRBrace);
        if (!body) return body;
        if (auto st = expect(Tok::kRBrace, "'}'"); !st) return fail(st.error());
        if (body->empty()) return expected("a non-empty body");
        return body;
    }

    Result<Body> literals(Tok end) {
        Body body;
        while (!at(end) && !at(Tok::kEof)) {
            auto e = literal();
            if (!e) return fail(e.error());
            body.push_back(std::move(*e));
            if (at(Tok::kSemicolon)) {
                next();
                continue;
            }
            if (at(end)) break;
            if (!cur().nl_before) return expected("';' or a new line between expressions");
        }
        return body;
    }

    Result<Expr> literal() {
        if (++depth_ > kMaxDepth) return errorAt(cur(), "nesting too deep");
        auto r = literalInner();
        --depth_;
        return r;
    }

    Result<Expr> literalInner() {
        Expr e;
        e.loc = loc();
        if (isKeyword("some")) {
            next();
            auto first = term(1);  // stop before `in`
            if (!first) return fail(first.error());
            std::vector<TermP> vars{*first};
            while (at(Tok::kComma)) {
                next();
                auto t = term(1);
                if (!t) return fail(t.error());
                vars.push_back(*t);
            }
            if (isIdent("in")) {
                next();
                if (vars.size() > 2) return errorAt(cur(), "some: at most key, value before 'in'");
                auto coll = term(1);
                if (!coll) return fail(coll.error());
                e.kind = ExprKind::kSomeIn;
                e.coll = *coll;
                e.val = vars.back();
                if (vars.size() == 2) e.key = vars[0];
            } else {
                e.kind = ExprKind::kSome;
                for (const auto& v : vars) {
                    if (v->kind != TermKind::kVar) return errorAt(cur(), "some: expected variables");
                    e.vars.push_back(v->name);
                }
            }
            return withs(std::move(e));
        }
        if (isKeyword("every")) {
            next();
            auto first = term(1);
            if (!first) return fail(first.error());
            TermP second;
            if (at(Tok::kComma)) {
                next();
                auto t = term(1);
                if (!t) return fail(t.error());
                second = *t;
            }
            if (!isIdent("in")) return expected("'in' after every variables");
            next();
            auto coll = term(1);
            if (!coll) return fail(coll.error());
            e.kind = ExprKind::kEvery;
            e.coll = *coll;
            if (second) {
                e.key = *first;
                e.val = second;
            } else {
                e.val = *first;
            }
            auto body = block();
            if (!body) return fail(body.error());
            e.body = std::make_shared<Body>(std::move(*body));
            return withs(std::move(e));
        }
        if (isKeyword("not") && !peek().nl_before) {
            next();
            e.negated = true;
        }
        auto t = exprTerm();
        if (!t) return fail(t.error());
        e.term = *t;
        return withs(std::move(e));
    }

    Result<Expr> withs(Expr e) {
        while (isKeyword("with")) {
            next();
            auto target = term(5);
            if (!target) return fail(target.error());
            if (!isIdent("as")) return expected("'as' in with modifier");
            next();
            auto value = term(1);
            if (!value) return fail(value.error());
            e.withs.push_back({*target, *value});
        }
        return e;
    }

    // A whole expression term: `k, v in xs`, `a = b`, `a := b`, or an infix term.
    Result<TermP> exprTerm(bool allow_unify = true) {
        const auto l = loc();
        auto lhs = term(0);
        if (!lhs) return lhs;
        if (at(Tok::kComma) && peek().kind != Tok::kEof) {
            // k, v in coll
            const auto save = pos_;
            next();
            auto v = term(1);
            if (v && isIdent("in")) {
                next();
                auto coll = term(1);
                if (!coll) return coll;
                TermP member = makeCall("internal.member_3", {*lhs, *v, *coll}, l);
                while (isIdent("in") && !cur().nl_before) {
                    next();
                    auto rhs = term(1);
                    if (!rhs) return rhs;
                    member = makeCall("internal.member_2", {member, *rhs}, l);
                }
                return member;
            }
            pos_ = save;
        }
        if (allow_unify && (at(Tok::kUnify) || at(Tok::kAssign)) && !cur().nl_before) {
            const bool assign = at(Tok::kAssign);
            next();
            auto rhs = term(0);
            if (!rhs) return rhs;
            return makeCall(assign ? "assign" : "eq", {*lhs, *rhs}, l);
        }
        return lhs;
    }

    // Precedence levels: 0 in, 1 relation, 2 |, 3 &, 4 + -, 5 * / %, 6 primary.
    Result<TermP> term(int level) {
        if (++depth_ > kMaxDepth) return errorAt(cur(), "nesting too deep");
        auto r = termLevel(level);
        --depth_;
        return r;
    }

    Result<TermP> termLevel(int level) {
        if (level >= 6) return primary();
        auto lhs = term(level + 1);
        if (!lhs) return lhs;
        while (!cur().nl_before) {
            std::string op;
            const Tok k = cur().kind;
            if (level == 0 && isIdent("in")) op = "internal.member_2";
            else if (level == 1 && (k == Tok::kEq || k == Tok::kNeq || k == Tok::kLt || k == Tok::kLte ||
                                    k == Tok::kGt || k == Tok::kGte)) {
                op = k == Tok::kEq ? "equal" : k == Tok::kNeq ? "neq" : k == Tok::kLt ? "lt"
                   : k == Tok::kLte ? "lte" : k == Tok::kGt ? "gt" : "gte";
            } else if (level == 2 && k == Tok::kBar && !stop_at_bar_) op = "or";
            else if (level == 3 && k == Tok::kAmp) op = "and";
            else if (level == 4 && (k == Tok::kPlus || k == Tok::kMinus)) op = k == Tok::kPlus ? "plus" : "minus";
            else if (level == 5 && (k == Tok::kStar || k == Tok::kSlash || k == Tok::kPercent)) {
                op = k == Tok::kStar ? "mul" : k == Tok::kSlash ? "div" : "rem";
            }
            if (op.empty()) break;
            const auto l = loc();
            next();
            auto rhs = term(level + 1);
            if (!rhs) return rhs;
            lhs = makeCall(op, {*lhs, *rhs}, l);
        }
        return lhs;
    }

    Result<TermP> primary() {
        const bool saved_bar = stop_at_bar_;
        if (at(Tok::kLParen) || at(Tok::kLBrack) || at(Tok::kLBrace)) stop_at_bar_ = false;
        auto r = primaryInner();
        stop_at_bar_ = saved_bar;
        return r;
    }

    Result<TermP> primaryInner() {
        const auto l = loc();
        TermP t;
        switch (cur().kind) {
            case Tok::kNumber: {
                auto v = numberValue(cur().text);
                if (!v) return errorAt(cur(), v.error().message());
                t = makeValue(*v, l);
                next();
                break;
            }
            case Tok::kMinus: {
                next();
                if (at(Tok::kNumber) && !cur().ws_before) {
                    auto v = numberValue("-" + cur().text);
                    if (!v) return errorAt(cur(), v.error().message());
                    t = makeValue(*v, l);
                    next();
                } else {
                    auto operand = primary();
                    if (!operand) return operand;
                    t = makeCall("minus", {makeValue(Value::number(std::int64_t{0}), l), *operand}, l);
                }
                break;
            }
            case Tok::kString:
                t = makeValue(Value::string(cur().text), l);
                next();
                break;
            case Tok::kIdent: {
                const auto& text = cur().text;
                const bool as_name = peek().kind == Tok::kDot && !peek().ws_before;
                if ((text == "true" || text == "false") && !as_name) {
                    t = makeValue(Value::boolean(text == "true"), l);
                    next();
                } else if (text == "null" && !as_name) {
                    t = makeValue(Value::null(), l);
                    next();
                } else if (text == "set" && peek().kind == Tok::kLParen && peek(2).kind == Tok::kRParen) {
                    next();
                    next();
                    next();
                    t = makeValue(Value::emptySet(), l);
                } else {
                    t = makeVar(text, l);
                    next();
                    // name.name(...) calls
                    if (at(Tok::kDot) || at(Tok::kLParen)) {
                        std::string name = text;
                        std::size_t save = pos_;
                        while (at(Tok::kDot) && peek().kind == Tok::kIdent && !cur().ws_before) {
                            next();
                            name += "." + cur().text;
                            next();
                        }
                        if (at(Tok::kLParen) && !cur().ws_before) {
                            next();
                            std::vector<TermP> args;
                            while (!at(Tok::kRParen)) {
                                auto a = term(0);
                                if (!a) return a;
                                args.push_back(*a);
                                if (at(Tok::kComma)) next();
                                else if (!at(Tok::kRParen)) return expected("',' or ')'");
                            }
                            next();
                            t = makeCall(name, std::move(args), l);
                        } else {
                            pos_ = save;
                        }
                    }
                }
                break;
            }
            case Tok::kLParen: {
                next();
                auto inner = exprTerm(false);
                if (!inner) return inner;
                if (auto st = expect(Tok::kRParen, "')'"); !st) return fail(st.error());
                t = *inner;
                break;
            }
            case Tok::kLBrack: {
                auto a = arrayTerm();
                if (!a) return a;
                t = *a;
                break;
            }
            case Tok::kLBrace: {
                auto o = braceTerm();
                if (!o) return o;
                t = *o;
                break;
            }
            default: return expected("a term");
        }
        return refTail(t);
    }

    Result<TermP> refTail(TermP t) {
        std::vector<TermP> items;
        while (!cur().nl_before && !cur().ws_before && (at(Tok::kDot) || at(Tok::kLBrack))) {
            if (items.empty()) items.push_back(t);
            if (at(Tok::kDot)) {
                next();
                if (!at(Tok::kIdent)) return expected("name after '.'");
                items.push_back(makeValue(Value::string(cur().text), loc()));
                next();
            } else {
                next();
                auto op = term(0);
                if (!op) return op;
                items.push_back(*op);
                if (auto st = expect(Tok::kRBrack, "']'"); !st) return fail(st.error());
            }
        }
        if (items.empty()) return t;
        // Flatten a ref whose head is itself a ref.
        if (items[0]->kind == TermKind::kRef) {
            auto head = items[0]->items;
            head.insert(head.end(), items.begin() + 1, items.end());
            items = std::move(head);
        }
        return makeRef(std::move(items), t->loc);
    }

    Result<TermP> arrayTerm() {
        const auto l = loc();
        next();  // [
        auto t = std::make_shared<Term>();
        t->loc = l;
        t->kind = TermKind::kArray;
        if (at(Tok::kRBrack)) {
            next();
            return t;
        }
        stop_at_bar_ = true;
        auto first = term(0);
        stop_at_bar_ = false;
        if (!first) return first;
        if (at(Tok::kBar)) {
            next();
            auto body = literals(Tok::kRBrack);
            if (!body) return fail(body.error());
            if (auto st = expect(Tok::kRBrack, "']'"); !st) return fail(st.error());
            t->kind = TermKind::kArrayCompr;
            t->val = *first;
            t->body = std::make_shared<Body>(std::move(*body));
            return t;
        }
        t->items.push_back(*first);
        while (at(Tok::kComma)) {
            next();
            if (at(Tok::kRBrack)) break;
            auto item = term(0);
            if (!item) return item;
            t->items.push_back(*item);
        }
        if (auto st = expect(Tok::kRBrack, "']'"); !st) return fail(st.error());
        return t;
    }

    Result<TermP> braceTerm() {
        const auto l = loc();
        next();  // {
        auto t = std::make_shared<Term>();
        t->loc = l;
        if (at(Tok::kRBrace)) {
            next();
            t->kind = TermKind::kObject;
            return t;
        }
        stop_at_bar_ = true;
        auto first = term(0);
        if (!first) {
            stop_at_bar_ = false;
            return first;
        }
        if (at(Tok::kColon)) {
            next();
            auto v = term(0);
            stop_at_bar_ = false;
            if (!v) return v;
            if (at(Tok::kBar)) {
                next();
                auto body = literals(Tok::kRBrace);
                if (!body) return fail(body.error());
                if (auto st = expect(Tok::kRBrace, "'}'"); !st) return fail(st.error());
                t->kind = TermKind::kObjectCompr;
                t->key = *first;
                t->val = *v;
                t->body = std::make_shared<Body>(std::move(*body));
                return t;
            }
            t->kind = TermKind::kObject;
            t->pairs.emplace_back(*first, *v);
            while (at(Tok::kComma)) {
                next();
                if (at(Tok::kRBrace)) break;
                auto k = term(0);
                if (!k) return k;
                if (auto st = expect(Tok::kColon, "':'"); !st) return fail(st.error());
                auto val = term(0);
                if (!val) return val;
                t->pairs.emplace_back(*k, *val);
            }
            if (auto st = expect(Tok::kRBrace, "'}'"); !st) return fail(st.error());
            return t;
        }
        stop_at_bar_ = false;
        if (at(Tok::kBar)) {
            next();
            auto body = literals(Tok::kRBrace);
            if (!body) return fail(body.error());
            if (auto st = expect(Tok::kRBrace, "'}'"); !st) return fail(st.error());
            t->kind = TermKind::kSetCompr;
            t->val = *first;
            t->body = std::make_shared<Body>(std::move(*body));
            return t;
        }
        t->kind = TermKind::kSet;
        t->items.push_back(*first);
        while (at(Tok::kComma)) {
            next();
            if (at(Tok::kRBrace)) break;
            auto item = term(0);
            if (!item) return item;
            t->items.push_back(*item);
        }
        if (auto st = expect(Tok::kRBrace, "'}'"); !st) return fail(st.error());
        return t;
    }

    std::vector<Token> toks_;
    std::shared_ptr<const std::string> file_;
    std::size_t pos_ = 0;
    int depth_ = 0;
    bool stop_at_bar_ = false;  // parsing a comprehension head: '|' ends the term
};

}  // namespace

Result<Module> parseModule(std::string_view source, const std::string& file) {
    auto tokens = lex(source, file);
    if (!tokens) return fail(tokens.error());
    Parser p(std::move(*tokens), std::make_shared<const std::string>(file));
    return p.module();
}

Result<Body> parseQuery(std::string_view source) {
    auto tokens = lex(source, "query");
    if (!tokens) return fail(tokens.error());
    Parser p(std::move(*tokens), std::make_shared<const std::string>("query"));
    return p.query();
}

}  // namespace edge::policy
