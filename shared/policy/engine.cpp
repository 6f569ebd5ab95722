#include "shared/policy/engine.hpp"

#include <fmt/format.h>

#include "shared/policy/compiled.hpp"
#include "shared/policy/evaluator.hpp"
#include "shared/policy/parser.hpp"

namespace edge::policy {
namespace {
const std::string kResultVar = "$result";
}

Result<std::shared_ptr<const Policy>> Policy::compile(const std::vector<ModuleSource>& sources) {
    std::vector<Module> modules;
    modules.reserve(sources.size());
    for (const auto& src : sources) {
        auto m = parseModule(src.text, src.filename);
        if (!m) return fail(m.error());
        modules.push_back(std::move(*m));
    }
    auto impl = compileModules(std::move(modules));
    if (!impl) return fail(impl.error());
    return std::make_shared<const Policy>(std::shared_ptr<const Impl>(std::move(*impl)));
}

Result<PreparedQuery> Policy::prepare(std::string_view query) const {
    auto body = parseQuery(query);
    if (!body) return fail(body.error());
    if (body->empty()) return fail(PolicyErrc::kParse, "empty query");
    // A query that is a single value-producing term gets a result variable, so callers can
    // read its value (as `opa eval data.x.allow` prints false rather than nothing).
    if (body->size() == 1 && (*body)[0].kind == ExprKind::kTerm && !(*body)[0].negated && (*body)[0].withs.empty()) {
        auto& term = (*body)[0].term;
        const bool value_term = term->kind != TermKind::kCall ||
                                (term->name != "eq" && term->name != "assign" && term->name != "equal" &&
                                 term->name != "neq" && term->name != "lt" && term->name != "lte" &&
                                 term->name != "gt" && term->name != "gte");
        if (value_term) term = makeCall("eq", {makeVar(kResultVar, term->loc), term}, term->loc);
    }
    auto q = compileQuery(impl_, std::move(*body));
    if (!q) return fail(q.error());
    return PreparedQuery(std::shared_ptr<const PreparedQuery::Impl>(std::move(*q)));
}

std::vector<std::string> Policy::testRules() const { return impl_->tests; }
std::vector<std::string> Policy::packages() const { return impl_->packages; }

Result<ResultSet> PreparedQuery::eval(const EvalOptions& options) const {
    return evaluate(*impl_, options, {});
}

Result<std::optional<Value>> PreparedQuery::evalValue(const EvalOptions& options) const {
    return evaluateValue(*impl_, options, kResultVar);
}

}  // namespace edge::policy
