#include "security/trust_root.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "shared/core/fs.hpp"

namespace edge::security {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxTrustRootBytes = 1024 * 1024;

std::unexpected<Error> bad(std::string message) {
    return fail(SecurityErrc::kTrustRoot, "trust root: " + std::move(message));
}

Result<Role> parseRole(const json& roles, const std::string& name,
                       const std::map<std::string, PublicKey>& keys) {
    const auto it = roles.find(name);
    if (it == roles.end() || !it->is_object()) return bad("missing role object \"" + name + "\"");
    const auto threshold = it->find("threshold");
    if (threshold == it->end() || !threshold->is_number_unsigned() ||
        threshold->get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max()) {
        return bad("role \"" + name + "\": \"threshold\" must be an unsigned integer");
    }
    Role role;
    role.threshold = static_cast<std::uint32_t>(threshold->get<std::uint64_t>());
    if (role.threshold == 0) return bad("role \"" + name + "\": threshold must be at least 1");
    const auto ids = it->find("keys");
    if (ids == it->end() || !ids->is_array()) {
        return bad("role \"" + name + "\": \"keys\" must be an array of key ids");
    }
    std::set<std::string> seen;
    for (const json& id : *ids) {
        if (!id.is_string()) return bad("role \"" + name + "\": key ids must be strings");
        const auto kid = id.get<std::string>();
        if (!keys.contains(kid)) return bad("role \"" + name + "\" names unknown key " + kid);
        if (!seen.insert(kid).second) return bad("role \"" + name + "\" lists key " + kid + " twice");
        role.key_ids.push_back(kid);
    }
    if (role.threshold > role.key_ids.size()) {
        return bad("role \"" + name + "\": threshold " + std::to_string(role.threshold) +
                   " exceeds its " + std::to_string(role.key_ids.size()) + " key(s)");
    }
    return role;
}

Result<std::map<std::string, PublicKey>> parseKeys(const json& doc) {
    const auto keys = doc.find("keys");
    if (keys == doc.end() || !keys->is_object()) return bad("missing object \"keys\"");
    std::map<std::string, PublicKey> out;
    for (const auto& [kid, entry] : keys->items()) {
        if (!entry.is_object()) return bad("key " + kid + ": not an object");
        const auto alg = entry.find("alg");
        const auto pem = entry.find("public_pem");
        if (alg == entry.end() || !alg->is_string()) return bad("key " + kid + ": missing string \"alg\"");
        if (pem == entry.end() || !pem->is_string()) {
            return bad("key " + kid + ": missing string \"public_pem\"");
        }
        auto key = PublicKey::fromPem(pem->get<std::string>());
        if (!key) return bad("key " + kid + ": bad public_pem: " + key.error().message());
        if (key->keyId() != kid) {
            return bad("key " + kid + ": id does not match its public key (" + key->keyId() + ")");
        }
        if (jwsAlgName(key->algorithm()) != alg->get<std::string>()) {
            return bad("key " + kid + ": alg \"" + alg->get<std::string>() +
                       "\" does not match its public key (" + std::string(jwsAlgName(key->algorithm())) + ")");
        }
        out.emplace(kid, std::move(*key));
    }
    return out;
}

Result<TrustRoot> parseDocument(std::string_view text) {
    const json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
    const auto schema = doc.find("schema");
    if (schema == doc.end() || !schema->is_number_integer()) return bad("missing integer \"schema\"");
    if (*schema != kTrustRootSchema) return bad("unsupported schema " + schema->dump());
    const auto version = doc.find("version");
    if (version == doc.end() || !version->is_number_unsigned()) {
        return bad("\"version\" must be an unsigned integer");
    }
    auto keys = parseKeys(doc);
    if (!keys) return fail(std::move(keys.error()));
    const auto roles = doc.find("roles");
    if (roles == doc.end() || !roles->is_object()) return bad("missing object \"roles\"");
    auto root = parseRole(*roles, "root", *keys);
    if (!root) return fail(std::move(root.error()));
    auto targets = parseRole(*roles, "targets", *keys);
    if (!targets) return fail(std::move(targets.error()));

    TrustRoot out;
    out.version = version->get<std::uint64_t>();
    out.keys = std::move(*keys);
    out.root = std::move(*root);
    out.targets = std::move(*targets);
    return out;
}

json roleJson(const Role& role) {
    return {{"threshold", role.threshold}, {"keys", role.key_ids}};
}

}  // namespace

Result<TrustRoot> TrustRoot::fromJson(std::string_view text) {
    try {
        return parseDocument(text);
    } catch (const nlohmann::json::exception& e) {
        return bad(e.what());
    }
}

Result<TrustRoot> TrustRoot::load(const std::filesystem::path& path) {
    auto text = fs::readFile(path, kMaxTrustRootBytes);
    if (!text) return fail(SecurityErrc::kTrustRoot, "load trust root: " + text.error().what());
    auto root = fromJson(*text);
    if (!root) return fail(std::move(root.error()).wrap("load " + path.string()));
    return root;
}

std::string TrustRoot::toJson() const {
    json keys_json = json::object();
    for (const auto& [kid, key] : keys) {
        keys_json[kid] = {{"alg", std::string(jwsAlgName(key.algorithm()))}, {"public_pem", key.toPem()}};
    }
    const json doc = {{"schema", kTrustRootSchema},
                      {"version", version},
                      {"keys", std::move(keys_json)},
                      {"roles", {{"root", roleJson(root)}, {"targets", roleJson(targets)}}}};
    return doc.dump(2, ' ', false, json::error_handler_t::replace);
}

TrustRoot TrustRoot::create(const std::vector<PublicKey>& targets_keys, std::uint32_t threshold) {
    TrustRoot out;
    out.version = 1;
    Role role;
    role.threshold = threshold;
    for (const PublicKey& key : targets_keys) {
        if (out.keys.emplace(key.keyId(), key).second) role.key_ids.push_back(key.keyId());
    }
    out.root = role;
    out.targets = std::move(role);
    return out;
}

}  // namespace edge::security
