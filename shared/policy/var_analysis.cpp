#include "shared/policy/var_analysis.hpp"

#include <algorithm>

namespace edge::policy::detail {


void bodyVars(const Body& body, std::set<std::string>& out) {
    for (const auto& e : body) {
        if (e.term) allVars(*e.term, out);
        for (const auto& v : e.vars) out.insert(v);
        if (e.key) allVars(*e.key, out);
        if (e.val) allVars(*e.val, out);
        if (e.coll) allVars(*e.coll, out);
        if (e.body) bodyVars(*e.body, out);
        for (const auto& w : e.withs) allVars(*w.value, out);
    }
}
void allVars(const Term& t, std::set<std::string>& out) {
    switch (t.kind) {
        case TermKind::kVar: out.insert(t.name); break;
        case TermKind::kObject:
            for (const auto& [k, v] : t.pairs) {
                allVars(*k, out);
                allVars(*v, out);
            }
            break;
        case TermKind::kArrayCompr:
        case TermKind::kSetCompr:
        case TermKind::kObjectCompr:
            if (t.key) allVars(*t.key, out);
            allVars(*t.val, out);
            bodyVars(*t.body, out);
            break;
        default:
            for (const auto& i : t.items) allVars(*i, out);
    }
}

// Vars that must be bound before the term can be evaluated (bare vars in output positions
// and ref operands can be bound by evaluation instead).
void needVars(const Term& t, const std::set<std::string>& outer, std::set<std::string>& out,
              bool output_position) {
    switch (t.kind) {
        case TermKind::kVar:
            if (!output_position) out.insert(t.name);
            break;
        case TermKind::kRef:
            if (t.items[0]->kind != TermKind::kVar ||
                (t.items[0]->name != "data" && t.items[0]->name != "input")) {
                needVars(*t.items[0], outer, out, false);
            }
            for (std::size_t i = 1; i < t.items.size(); ++i) needVars(*t.items[i], outer, out, true);
            break;
        case TermKind::kCall:
            for (const auto& a : t.items) needVars(*a, outer, out, false);
            break;
        case TermKind::kArray:
        case TermKind::kSet:
            for (const auto& a : t.items) needVars(*a, outer, out, output_position);
            break;
        case TermKind::kObject:
            for (const auto& [k, v] : t.pairs) {
                needVars(*k, outer, out, false);
                needVars(*v, outer, out, output_position);
            }
            break;
        case TermKind::kArrayCompr:
        case TermKind::kSetCompr:
        case TermKind::kObjectCompr: {
            std::set<std::string> inner;
            allVars(t, inner);
            for (const auto& v : inner) {
                if (outer.contains(v)) out.insert(v);
            }
            break;
        }
        case TermKind::kValue: break;
    }
}

// Bare vars of a term (vars in positions that unification binds).
void bareVars(const Term& t, std::set<std::string>& out) {
    switch (t.kind) {
        case TermKind::kVar: out.insert(t.name); break;
        case TermKind::kArray:
        case TermKind::kSet:
            for (const auto& a : t.items) bareVars(*a, out);
            break;
        case TermKind::kObject:
            for (const auto& [k, v] : t.pairs) bareVars(*v, out);
            break;
        default: break;
    }
}

bool subset(const std::set<std::string>& a, const std::set<std::string>& b) {
    return std::all_of(a.begin(), a.end(), [&](const auto& v) { return b.contains(v); });
}

}  // namespace edge::policy::detail
