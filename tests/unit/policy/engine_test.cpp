// The engine end to end through its public API: parse and compile errors, evaluation
// semantics the conformance suite does not pin down, and resource limits.
#include <catch2/catch.hpp>

#include "shared/policy/engine.hpp"
#include "tests/support/finops_policy.hpp"

using namespace edge;
using namespace edge::policy;

namespace {

std::shared_ptr<const Policy> compileOk(const std::string& text) {
    auto p = Policy::compile({{"policy.rego", text}});
    INFO((p ? "" : p.error().what()));
    REQUIRE(p);
    return *p;
}

std::optional<Value> evalOne(const std::string& text, const std::string& query, std::optional<Value> input = {},
                             Value data = Value::emptyObject()) {
    auto q = compileOk(text)->prepare(query);
    INFO((q ? "" : q.error().what()));
    REQUIRE(q);
    EvalOptions options;
    options.input = std::move(input);
    options.data = std::move(data);
    auto v = q->evalValue(options);
    INFO((v ? "" : v.error().what()));
    REQUIRE(v);
    return *v;
}

Value json(const char* text) { return *parseJson(text); }

}  // namespace

TEST_CASE("Policy: parse errors name file, line, column and what was expected") {
    auto p = Policy::compile({{"bad.rego", "package x\n\np if {\n  input.a ==\n}\n"}});
    REQUIRE_FALSE(p);
    CHECK(p.error().code() == PolicyErrc::kParse);
    CHECK_THAT(p.error().what(), Catch::StartsWith("bad.rego:5:1: expected a term"));
    auto no_pkg = Policy::compile({{"nopkg.rego", "p := 1\n"}});
    REQUIRE_FALSE(no_pkg);
    CHECK_THAT(no_pkg.error().what(), Catch::Contains("nopkg.rego:1:1: expected package"));
    auto str = Policy::compile({{"s.rego", "package x\np := \"abc\n"}});
    REQUIRE_FALSE(str);
    CHECK_THAT(str.error().what(), Catch::Contains("unterminated string"));
}

TEST_CASE("Policy: compile errors for unknown functions, arity, conflicting kinds and recursion") {
    auto unknown = Policy::compile({{"u.rego", "package x\np if nosuch(1)\n"}});
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().code() == PolicyErrc::kCompile);
    CHECK_THAT(unknown.error().what(), Catch::Contains("undefined function nosuch"));

    auto arity = Policy::compile({{"a.rego", "package x\np if count(1, 2, 3)\n"}});
    REQUIRE_FALSE(arity);
    CHECK_THAT(arity.error().what(), Catch::Contains("arity"));

    auto kinds = Policy::compile({{"k.rego", "package x\np := 1\np contains 2\n"}});
    REQUIRE_FALSE(kinds);
    CHECK_THAT(kinds.error().what(), Catch::Contains("conflicting rules"));

    auto rec = Policy::compile({{"r.rego", "package x\np if q\nq if p\n"}});
    REQUIRE_FALSE(rec);
    CHECK_THAT(rec.error().what(), Catch::Contains("recursive") && Catch::Contains("data.x.p"));

    auto unsafe = Policy::compile({{"s.rego", "package x\np[k] := 1 if input.a\n"}});
    REQUIRE_FALSE(unsafe);
    CHECK(unsafe.error().code() == PolicyErrc::kCompile);
    CHECK_THAT(unsafe.error().what(), Catch::Contains("var k is unsafe"));

    auto fn_rec = Policy::compile({{"f.rego", "package x\nf(n) := f(n)\n"}});
    REQUIRE_FALSE(fn_rec);
    CHECK_THAT(fn_rec.error().what(), Catch::Contains("recursive"));
}

TEST_CASE("Policy: undefined is not false") {
    const char* text = "package x\ndefault allow := false\nallow if input.ok == true\nmaybe if input.ok == true\n";
    CHECK(*evalOne(text, "data.x.allow", json(R"({"ok": false})")) == Value::boolean(false));
    CHECK_FALSE(evalOne(text, "data.x.maybe", json(R"({"ok": false})")).has_value());
    CHECK(*evalOne(text, "data.x.allow", json(R"({"ok": true})")) == Value::boolean(true));
    // No input at all: input refs are undefined, the default applies.
    CHECK(*evalOne(text, "data.x.allow") == Value::boolean(false));
}

TEST_CASE("Policy: complete rules with two values are a conflict error") {
    auto q = compileOk("package x\np := 1 if input.a\np := 2 if input.b\n")->prepare("data.x.p");
    REQUIRE(q);
    EvalOptions options;
    options.input = json(R"({"a": true, "b": true})");
    auto v = q->evalValue(options);
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == PolicyErrc::kConflict);
    options.input = json(R"({"a": true})");
    CHECK(**q->evalValue(options) == Value::number(std::int64_t{1}));
}

TEST_CASE("Policy: the FinOps example denies only over-budget projects") {
    const char* finops = test::kFinopsPolicy;
    const Value data = json(R"({"finops_data": {"unit_costs": {"nvidia_gpu": {"hourly_rate": 2.5}},
                                 "budgets": {"vision": {"gpu_hourly_limit": 10}}}})");
    auto pod = [](const char* gpus) {
        return json((std::string(R"({"request": {"kind": {"kind": "Pod"}, "object": {"metadata": {"labels": {"apexlogic.ai/project": "vision"}},
                     "spec": {"containers": [{"resources": {"requests": {"nvidia.com/gpu": ")") + gpus + R"("}}}]}}}})").c_str());
    };
    CHECK(evalOne(finops, "data.finops.deny", pod("4"), data)->size() == 0);
    auto denied = evalOne(finops, "data.finops.deny", pod("5"), data);
    REQUIRE(denied->size() == 1);
    CHECK(*denied->asSet().begin() ==
          Value::string("FinOps policy violation for project 'vision': GPU workload estimated hourly cost (12.5) exceeds budget (10)."));
}

TEST_CASE("Policy: a prepared query evaluates many inputs without re-preparing") {
    auto q = compileOk("package x\nbig contains n if { some n in input; n > 10 }\n")->prepare("data.x.big");
    REQUIRE(q);
    for (int i = 0; i < 100; ++i) {
        EvalOptions options;
        options.input = Value::array({Value::number(std::int64_t{i}), Value::number(std::int64_t{5})});
        auto v = q->evalValue(options);
        REQUIRE(v);
        CHECK((*v)->size() == (i > 10 ? 1u : 0u));
    }
}

TEST_CASE("Policy: a hostile policy hits the step budget or the deadline, not the CPU forever") {
    const char* slow = "package x\np := count([1 | some a in numbers.range(1, 300); some b in numbers.range(1, 300); some c in numbers.range(1, 300)])\n";
    auto q = compileOk(slow)->prepare("data.x.p");
    REQUIRE(q);
    EvalOptions budget;
    budget.max_steps = 100000;
    auto v = q->evalValue(budget);
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == PolicyErrc::kLimit);
    EvalOptions deadline;
    deadline.timeout = std::chrono::milliseconds(50);
    auto d = q->evalValue(deadline);
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == PolicyErrc::kLimit);
}

TEST_CASE("Policy: deeply nested input and pathological terms give errors, not crashes") {
    std::string deep(100000, '[');
    CHECK_FALSE(parseJson(deep));
    std::string nested_rego = "package x\np := " + std::string(5000, '[') + std::string(5000, ']') + "\n";
    auto p = Policy::compile({{"deep.rego", nested_rego}});
    REQUIRE_FALSE(p);
    CHECK(p.error().code() == PolicyErrc::kParse);
    // A number past double's range is kept exactly; arithmetic on it is an error, not a crash.
    auto huge = evalOne("package x\np := 1e999999\n", "data.x.p");
    CHECK(huge->toJson() == "1e999999");
    auto q = compileOk("package x\np := 1e999999 * 2\n")->prepare("data.x.p");
    REQUIRE(q);
    EvalOptions strict;
    strict.strict_builtin_errors = true;
    CHECK_FALSE(q->evalValue(strict));
    // A catastrophic-backtracking pattern in a backtracking engine is linear in RE2.
    const std::string subject(100000, 'a');
    auto re = evalOne("package x\np := regex.match(\"(a*)*b\", input.s)\n", "data.x.p",
                      Value::object({{Value::string("s"), Value::string(subject)}}));
    CHECK(*re == Value::boolean(false));
}

TEST_CASE("Policy: with replaces input, data and functions for one expression only") {
    const char* text = R"(package x
import rego.v1
f(v) := v * 2
p := input.a
q := data.limits.max
r := f(3)
t1 if { p == 7 with input as {"a": 7}; p == 1 }
t2 if { q == 9 with data.limits.max as 9 }
t3 if { r == 100 with f as 100 }
)";
    const Value data = json(R"({"limits": {"max": 3}})");
    CHECK(*evalOne(text, "data.x.t1", json(R"({"a": 1})"), data) == Value::boolean(true));
    CHECK(*evalOne(text, "data.x.t2", json("{}"), data) == Value::boolean(true));
    CHECK(*evalOne(text, "data.x.t3", json("{}"), data) == Value::boolean(true));
    CHECK(*evalOne(text, "data.x.r", json("{}"), data) == Value::number(std::int64_t{6}));
}

TEST_CASE("Policy: testRules lists test_ rules for edgectl policy test") {
    auto p = compileOk("package x_test\ntest_a if true\ntest_b := false\nhelper := 1\n");
    CHECK(p->testRules() == std::vector<std::string>{"data.x_test.test_a", "data.x_test.test_b"});
    CHECK(p->packages() == std::vector<std::string>{"data.x_test"});
}

TEST_CASE("Policy: rules with an equality on input are indexed, so large rule sets stay cheap") {
    std::string text = "package routes\nimport rego.v1\n";
    for (int i = 0; i < 2000; ++i) {
        text += "allow contains \"r" + std::to_string(i) + "\" if {\n  input.path == \"/p" + std::to_string(i) +
                "\"\n  input.user != \"mallory\"\n}\n";
    }
    auto q = compileOk(text)->prepare("data.routes.allow");
    REQUIRE(q);
    EvalOptions options;
    options.input = json(R"({"path": "/p1234", "user": "alice"})");
    // 2,000 rule bodies would take thousands of steps; the index leaves only the matching one.
    options.max_steps = 200;
    auto v = q->evalValue(options);
    INFO((v ? "" : v.error().what()));
    REQUIRE(v);
    REQUIRE(*v);
    CHECK(**v == Value::set({Value::string("r1234")}));
    options.input = json(R"({"path": "/p1234", "user": "mallory"})");
    CHECK((*q->evalValue(options))->size() == 0);
    options.input = json(R"({"user": "alice"})");
    CHECK((*q->evalValue(options))->size() == 0);
}
