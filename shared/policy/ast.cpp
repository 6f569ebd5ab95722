#include "shared/policy/ast.hpp"

#include <fmt/format.h>

namespace edge::policy {

std::string Location::str() const {
    return fmt::format("{}:{}:{}", file ? *file : std::string("query"), line, col);
}

TermP makeValue(Value v, Location loc) {
    auto t = std::make_shared<Term>();
    t->kind = TermKind::kValue;
    t->value = std::move(v);
    t->loc = std::move(loc);
    return t;
}

TermP makeVar(std::string name, Location loc) {
    auto t = std::make_shared<Term>();
    t->kind = TermKind::kVar;
    t->name = std::move(name);
    t->loc = std::move(loc);
    return t;
}

TermP makeCall(std::string op, std::vector<TermP> args, Location loc) {
    auto t = std::make_shared<Term>();
    t->kind = TermKind::kCall;
    t->name = std::move(op);
    t->items = std::move(args);
    t->loc = std::move(loc);
    return t;
}

TermP makeRef(std::vector<TermP> items, Location loc) {
    auto t = std::make_shared<Term>();
    t->kind = TermKind::kRef;
    t->items = std::move(items);
    t->loc = std::move(loc);
    return t;
}

bool isGround(const Term& t) {
    switch (t.kind) {
        case TermKind::kValue: return true;
        case TermKind::kArray:
        case TermKind::kSet:
            for (const auto& i : t.items) {
                if (!isGround(*i)) return false;
            }
            return true;
        case TermKind::kObject:
            for (const auto& [k, v] : t.pairs) {
                if (!isGround(*k) || !isGround(*v)) return false;
            }
            return true;
        default: return false;
    }
}

std::string termString(const Term& t) {
    switch (t.kind) {
        case TermKind::kValue: return t.value.toRego();
        case TermKind::kVar: return t.name;
        case TermKind::kRef: {
            std::string s = termString(*t.items[0]);
            for (std::size_t i = 1; i < t.items.size(); ++i) {
                const auto& op = *t.items[i];
                if (op.kind == TermKind::kValue && op.value.isString()) {
                    s += "." + op.value.asString();
                } else {
                    s += "[" + termString(op) + "]";
                }
            }
            return s;
        }
        case TermKind::kCall: {
            std::string s = t.name + "(";
            for (std::size_t i = 0; i < t.items.size(); ++i) {
                if (i) s += ", ";
                s += termString(*t.items[i]);
            }
            return s + ")";
        }
        case TermKind::kArray: return "[…]";
        case TermKind::kObject: return "{…}";
        case TermKind::kSet: return "{…}";
        default: return "<comprehension>";
    }
}

}  // namespace edge::policy
