#pragma once
// The Rego (v1) policy engine: compile modules once, prepare queries once, evaluate many times.
//
//   auto policy = Policy::compile({{"finops.rego", source}});
//   auto query = policy->prepare("data.finops.deny");
//   auto rs = query->eval({.input = input, .data = data});
//
// Thread-safety: a compiled Policy and a PreparedQuery are immutable; eval() may run on several
// threads at once.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shared/policy/errors.hpp"
#include "shared/policy/value.hpp"

namespace edge::policy {

struct ModuleSource {
    std::string filename;  // named in parse and compile errors
    std::string text;
};

struct EvalOptions {
    std::optional<Value> input;
    Value data = Value::emptyObject();        // the base document under `data`
    bool strict_builtin_errors = false;
    std::chrono::nanoseconds timeout{0};       // 0: none
    std::uint64_t max_steps = 0;               // 0: none
    std::int64_t now_ns = 0;                   // time.now_ns(); 0: the wall clock at eval
};

/// One solution of a query: each named (non-generated) variable of the query and its value.
using Bindings = std::map<std::string, Value>;
/// Every solution; empty means undefined.
using ResultSet = std::vector<Bindings>;

class Policy;

class PreparedQuery {
public:
    [[nodiscard]] Result<ResultSet> eval(const EvalOptions& options) const;
    /// Convenience for a query that is a single ref (e.g. "data.finops.deny"): its value, or
    /// nullopt when undefined.
    [[nodiscard]] Result<std::optional<Value>> evalValue(const EvalOptions& options) const;

    struct Impl;
    explicit PreparedQuery(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

private:
    std::shared_ptr<const Impl> impl_;
};

class Policy {
public:
    /// Parses and compiles the modules together. Errors: PolicyErrc::kParse with
    /// "file:line:col: …", PolicyErrc::kCompile.
    [[nodiscard]] static Result<std::shared_ptr<const Policy>> compile(
        const std::vector<ModuleSource>& modules);

    [[nodiscard]] Result<PreparedQuery> prepare(std::string_view query) const;
    /// Full names of every rule whose name starts with "test_" ("data.pkg.test_x").
    [[nodiscard]] std::vector<std::string> testRules() const;
    /// Package paths of the modules ("data.finops").
    [[nodiscard]] std::vector<std::string> packages() const;

    struct Impl;
    explicit Policy(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    [[nodiscard]] const std::shared_ptr<const Impl>& impl() const { return impl_; }

private:
    std::shared_ptr<const Impl> impl_;
};

}  // namespace edge::policy
