#pragma once
// The Rego syntax tree, as the parser produces it and the compiler annotates it.
// Operators and infix expressions are calls: `x = y` is eq(x, y), `x := y` assign, `a + b`
// plus, `x in xs` internal.member_2, `k, v in xs` internal.member_3.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shared/policy/value.hpp"

namespace edge::policy {

struct Builtin;
struct RuleNode;

struct Location {
    std::shared_ptr<const std::string> file;
    int line = 0;
    int col = 0;
    [[nodiscard]] std::string str() const;
};

struct Term;
struct Expr;
using TermP = std::shared_ptr<Term>;
using Body = std::vector<Expr>;
using BodyP = std::shared_ptr<Body>;

enum class TermKind {
    kValue,   // scalar (or ground composite after folding)
    kVar,
    kRef,     // items[0] is the head (var or term), items[1..] the operands
    kArray,
    kObject,  // pairs
    kSet,
    kArrayCompr,   // [val | body]
    kSetCompr,     // {val | body}
    kObjectCompr,  // {key: val | body}
    kCall,         // name(items...)
};

struct Term {
    TermKind kind = TermKind::kValue;
    Location loc;
    Value value;
    std::string name;  // kVar: the variable; kCall: the operator ("count", "data.pkg.f", "plus")
    std::vector<TermP> items;
    std::vector<std::pair<TermP, TermP>> pairs;
    TermP key;  // comprehension key (object) ; for array/set comprehensions the element is val
    TermP val;
    BodyP body;
    // Set by the compiler on kCall: the builtin or the user function's rule node, and which
    // evaluator-internal operator it is (so the hot path compares no strings).
    enum class Special : std::uint8_t { kNone, kEq, kMember2, kMember3, kWalk, kPrint };
    Special special = Special::kNone;
    const Builtin* builtin = nullptr;
    const RuleNode* node = nullptr;
};

struct With {
    TermP target;  // a ref: input…, data…, or a function name as a ref/var
    TermP value;
};

enum class ExprKind {
    kTerm,    // a term (often a call) that must be defined and not false
    kSome,    // some x, y   (declaration only)
    kSomeIn,  // some k, v in coll
    kEvery,   // every k, v in coll { body }
};

struct Expr {
    ExprKind kind = ExprKind::kTerm;
    Location loc;
    bool negated = false;
    TermP term;                     // kTerm
    std::vector<std::string> vars;  // kSome
    TermP key;                      // kSomeIn / kEvery: may be null
    TermP val;                      // kSomeIn / kEvery
    TermP coll;                     // kSomeIn / kEvery
    BodyP body;                     // kEvery
    std::vector<With> withs;
};

enum class RuleKind { kComplete, kPartialSet, kPartialObject, kFunction };

struct Rule {
    RuleKind kind = RuleKind::kComplete;
    Location loc;
    /// Head ref after the package: p, or p.q[x] — items are terms (strings or vars).
    std::vector<TermP> ref;
    std::vector<TermP> args;  // kFunction
    TermP key;                // kPartialSet element / kPartialObject key (also last ref item)
    TermP value;              // value (true when omitted)
    Body body;                // empty: always true
    bool is_default = false;
    std::shared_ptr<Rule> else_rule;
    bool assign = false;  // head used :=
    /// Equality index: the body requires input.<index_path> == index_value, so the evaluator
    /// skips the rule without running its body when the input says otherwise (set by the
    /// compiler for rules without else; empty path: no index).
    std::vector<std::string> index_path;
    Value index_value;
};
using RuleP = std::shared_ptr<Rule>;

struct Import {
    std::vector<std::string> path;  // e.g. {"data","lib","x"} or {"input","a"} or {"rego","v1"}
    std::string alias;
};

struct Module {
    std::shared_ptr<const std::string> file;
    std::vector<std::string> package;  // path after data: {"finops"}
    std::vector<Import> imports;
    std::vector<RuleP> rules;
};

/// Term constructors.
TermP makeValue(Value v, Location loc = {});
TermP makeVar(std::string name, Location loc = {});
TermP makeCall(std::string op, std::vector<TermP> args, Location loc = {});
TermP makeRef(std::vector<TermP> items, Location loc = {});

/// Whether a term holds no variables (and no calls or comprehensions).
bool isGround(const Term& t);
/// Rego text of a term (for messages).
std::string termString(const Term& t);

}  // namespace edge::policy
