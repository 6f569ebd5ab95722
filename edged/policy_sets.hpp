#pragma once
// PolicySets: a bundle's Rego compiled and prepared once, at apply time, never per request.
// The "main" set is the bundle's policies; each enforcement.policy_sets entry (a fail-safe set)
// is compiled alongside it, so switching to it offline needs no compile. A bundle whose main set
// or any named set does not compile, or names an entry point that does not parse, is refused
// like a forged one (build() fails).
// Immutable after build(); shared between the apply path and the decision path by shared_ptr, so
// a new bundle swaps all of it at once.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shared/bundle/bundle.hpp"
#include "shared/policy/engine.hpp"

namespace edge::edged {

/// One compiled set of modules with its admission entry points.
class CompiledSet {
public:
    std::string name;  // "main" or the policy set's name
    std::shared_ptr<const policy::Policy> policy;
    /// Admission entry points ("data.finops.deny") with their prepared queries: the bundle's
    /// enforcement.entrypoints for the main set; `data.<pkg>.deny` of each package otherwise.
    std::vector<std::pair<std::string, policy::PreparedQuery>> entrypoints;

    /// The prepared query for a data-API path ("finops/deny" -> data.finops.deny), cached per set
    /// (bounded; thread-safe). Errors: PolicyErrc when a segment cannot form a reference.
    [[nodiscard]] Result<policy::PreparedQuery> dataQuery(std::string_view path) const;

private:
    mutable std::mutex cache_mutex_;
    mutable std::map<std::string, policy::PreparedQuery, std::less<>> cache_;
};

struct PolicySets {
    std::uint64_t bundle_version = 0;
    bundle::Enforcement enforcement;
    /// The bundle's data as a policy value (`data` in every evaluation, plus data.edge).
    policy::Value data;
    std::shared_ptr<const CompiledSet> main;
    std::map<std::string, std::shared_ptr<const CompiledSet>> named;

    /// The set that applies: main, or the offline fail-safe set once the device has been out of
    /// contact for longer than enforcement.offline.max_age.
    [[nodiscard]] const CompiledSet& select(bool online, std::int64_t offline_seconds) const;
    [[nodiscard]] bool failSafeActive(bool online, std::int64_t offline_seconds) const;

    [[nodiscard]] static Result<std::shared_ptr<const PolicySets>> build(const bundle::Bundle& bundle);
};

/// "finops/deny" -> "data.finops.deny"; segments that are not identifiers become ["seg"].
[[nodiscard]] Result<std::string> dataPathQuery(std::string_view path);

}  // namespace edge::edged
