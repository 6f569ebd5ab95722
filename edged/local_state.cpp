#include "edged/local_state.hpp"

#include <charconv>

#include <fmt/format.h>

namespace edge::edged {
namespace {
constexpr std::string_view kStateDb = "state";
constexpr std::string_view kBundleDb = "bundle";
constexpr std::string_view kPoliciesDb = "policies";
}  // namespace

nlohmann::json toJson(const AppliedState& s) {
    return {{"version", s.version},       {"bundle_digest", s.bundle_digest},
            {"source", s.source},         {"applied_at", s.applied_at},
            {"expires_at", s.expires_at}, {"policies", s.policies}};
}

Result<std::optional<AppliedState>> loadApplied(const store::Store& store) {
    std::optional<std::string> text;
    auto st = store.read([&](const store::ReadTxn& txn) -> Status {
        auto value = txn.get(kStateDb, "applied");
        if (!value) return fail(value.error());
        text = std::move(*value);
        return {};
    });
    if (!st) return fail(st.error());
    if (!text) return std::optional<AppliedState>{};
    const auto j = nlohmann::json::parse(*text, nullptr, false);
    try {
        if (j.is_discarded()) throw std::runtime_error("not JSON");
        AppliedState s;
        s.version = j.at("version").get<std::uint64_t>();
        s.bundle_digest = j.at("bundle_digest").get<std::string>();
        s.source = j.at("source").get<std::string>();
        s.applied_at = j.at("applied_at").get<std::int64_t>();
        s.expires_at = j.at("expires_at").get<std::int64_t>();
        s.policies = j.at("policies").get<std::vector<std::string>>();
        return std::optional<AppliedState>(std::move(s));
    } catch (const std::exception& e) {
        return fail(SharedErrc::kStore, fmt::format("applied state is corrupt: {}", e.what()));
    }
}

namespace {

Result<std::optional<bundle::Bundle>> loadBundleAt(const store::Store& store, std::string_view key) {
    auto text = store.getOne(kBundleDb, key);
    if (!text) return fail(std::move(text.error()));
    if (!*text) return std::optional<bundle::Bundle>{};
    auto parsed = bundle::fromJson(**text);
    if (!parsed) return fail(std::move(parsed.error()).wrap("stored bundle is corrupt"));
    return std::optional<bundle::Bundle>(std::move(*parsed));
}

}  // namespace

Result<std::optional<bundle::Bundle>> loadBundle(const store::Store& store) {
    return loadBundleAt(store, "payload");
}

Result<std::optional<bundle::Bundle>> loadEnforcedBundle(const store::Store& store) {
    return loadBundleAt(store, "enforced");
}

Status storeEnforcedBundle(store::Store& store, const bundle::Bundle& bundle) {
    return store.putOne(kBundleDb, "enforced", bundle::toJson(bundle));
}

Result<std::int64_t> loadLastContact(const store::Store& store) {
    std::int64_t out = 0;
    auto st = store.read([&](const store::ReadTxn& txn) -> Status {
        auto value = txn.get(kStateDb, "last_contact");
        if (!value) return fail(value.error());
        if (*value) {
            const auto& text = **value;
            auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
            if (ec != std::errc{} || p != text.data() + text.size()) out = 0;  // corrupt: never
        }
        return {};
    });
    if (!st) return fail(st.error());
    return out;
}

Status storeLastContact(store::Store& store, std::int64_t unix_seconds) {
    return store.write([&](store::WriteTxn& txn) -> Status {
        return txn.put(kStateDb, "last_contact", std::to_string(unix_seconds));
    });
}

Status commitApply(store::Store& store, const bundle::Bundle& bundle, std::string_view jws,
                   const AppliedState& state) {
    return store.write([&](store::WriteTxn& txn) -> Status {
        // Drop policies the new bundle no longer has.
        std::vector<std::string> old_names;
        auto listed = txn.forEach(kPoliciesDb, [&](std::string_view key, std::string_view) {
            old_names.emplace_back(key);
            return true;
        });
        if (!listed) return listed;
        for (const auto& name : old_names) {
            if (!bundle.policies.contains(name)) {
                if (auto st = txn.del(kPoliciesDb, name); !st) return st;
            }
        }
        for (const auto& [name, text] : bundle.policies) {
            if (auto st = txn.put(kPoliciesDb, name, text); !st) return st;
        }
        if (auto st = txn.put(kBundleDb, "jws", jws); !st) return st;
        if (auto st = txn.put(kBundleDb, "payload", bundle::toJson(bundle)); !st) return st;
        return txn.put(kStateDb, "applied", toJson(state).dump());
    });
}

}  // namespace edge::edged
