#pragma once
// edged's state in its store (LMDB). Layout:
//   db "state"    key "applied" -> AppliedState as JSON
//                 key "last_contact" -> unix seconds of the last broker contact (decimal)
//   db "bundle"   key "jws"     -> the signed bundle as received (re-verifiable)
//                 key "payload" -> the verified payload JSON
//   db "policies" key <file>    -> Rego source of each active policy
// An apply writes all of it in one transaction: a crash leaves the old state or the new one.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "shared/bundle/bundle.hpp"
#include "shared/core/error.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

struct AppliedState {
    std::uint64_t version = 0;
    std::string bundle_digest;  // "sha256:" of the verified payload
    std::string source;
    std::int64_t applied_at = 0;
    std::int64_t expires_at = 0;
    std::vector<std::string> policies;
};

[[nodiscard]] nlohmann::json toJson(const AppliedState& state);

/// The applied state, or nullopt when nothing was ever applied.
[[nodiscard]] Result<std::optional<AppliedState>> loadApplied(const store::Store& store);
/// The payload of the applied bundle.
[[nodiscard]] Result<std::optional<bundle::Bundle>> loadBundle(const store::Store& store);
/// The bundle whose policies were last put in force (edged holds a new bundle's policies back
/// until its models are in place): what a restart enforces while the applied bundle's models
/// are still pending. nullopt when none was recorded.
[[nodiscard]] Result<std::optional<bundle::Bundle>> loadEnforcedBundle(const store::Store& store);
[[nodiscard]] Status storeEnforcedBundle(store::Store& store, const bundle::Bundle& bundle);
/// Unix seconds of the last broker contact, 0 when never.
[[nodiscard]] Result<std::int64_t> loadLastContact(const store::Store& store);
[[nodiscard]] Status storeLastContact(store::Store& store, std::int64_t unix_seconds);
/// Stores bundle, policies and the new state in one durable transaction.
[[nodiscard]] Status commitApply(store::Store& store, const bundle::Bundle& bundle,
                                 std::string_view jws, const AppliedState& state);

}  // namespace edge::edged
