#include "shared/bundle/bundle.hpp"

#include <limits>
#include <set>

#include "security/crypto.hpp"

namespace edge::bundle {

namespace {

using nlohmann::json;

// Invalid UTF-8 in a string is replaced (U+FFFD) rather than thrown: toJson has no error path.
std::string dumpCompact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::unexpected<Error> bad(std::string message) {
    return fail(SharedErrc::kParse, "bundle: " + std::move(message));
}

Result<const json*> field(const json& doc, const char* name) {
    const auto it = doc.find(name);
    if (it == doc.end()) return bad(std::string("missing field \"") + name + "\"");
    return &*it;
}

Result<std::int64_t> timeField(const json& doc, const char* name) {
    auto value = field(doc, name);
    if (!value) return fail(std::move(value.error()));
    const json& v = **value;
    if (v.is_number_unsigned()) {
        if (v.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return bad(std::string("field \"") + name + "\" is out of range");
        }
        return static_cast<std::int64_t>(v.get<std::uint64_t>());
    }
    if (!v.is_number_integer()) return bad(std::string("field \"") + name + "\" must be an integer");
    return v.get<std::int64_t>();
}

Result<std::vector<std::string>> stringArray(const json& v, const std::string& where) {
    if (!v.is_array()) return bad("field \"" + where + "\" must be an array of strings");
    std::vector<std::string> out;
    for (const auto& item : v) {
        if (!item.is_string()) return bad("field \"" + where + "\" must be an array of strings");
        out.push_back(item.get<std::string>());
    }
    return out;
}

Result<std::map<std::string, std::string>> policyMap(const json& v, const std::string& where) {
    if (!v.is_object()) return bad("field \"" + where + "\" must be an object of strings");
    std::map<std::string, std::string> out;
    for (const auto& [name, body] : v.items()) {
        if (!body.is_string()) return bad("field \"" + where + "\": \"" + name + "\" must be a string");
        out.emplace(name, body.get<std::string>());
    }
    return out;
}

Result<Enforcement> parseEnforcement(const json& v) {
    if (!v.is_object()) return bad("field \"enforcement\" must be an object");
    static const std::set<std::string> kKnown = {"entrypoints", "log_input", "usage_windows",
                                                 "offline", "policy_sets", "provenance_entrypoint"};
    for (const auto& item : v.items()) {
        if (!kKnown.contains(item.key())) return bad("unknown field \"enforcement." + item.key() + "\"");
    }
    Enforcement out;
    if (auto it = v.find("entrypoints"); it != v.end()) {
        auto list = stringArray(*it, "enforcement.entrypoints");
        if (!list) return fail(std::move(list.error()));
        for (const auto& entry : *list) {
            if (!entry.starts_with("data.")) {
                return bad("field \"enforcement.entrypoints\": \"" + entry + "\" must start with \"data.\"");
            }
        }
        out.entrypoints = std::move(*list);
    }
    if (auto it = v.find("provenance_entrypoint"); it != v.end()) {
        if (!it->is_string() || !it->get<std::string>().starts_with("data.")) {
            return bad("field \"enforcement.provenance_entrypoint\" must be a string starting with \"data.\"");
        }
        out.provenance_entrypoint = it->get<std::string>();
    }
    if (auto it = v.find("log_input"); it != v.end()) {
        if (!it->is_boolean()) return bad("field \"enforcement.log_input\" must be a boolean");
        out.log_input = it->get<bool>();
    }
    if (auto it = v.find("usage_windows"); it != v.end()) {
        auto list = stringArray(*it, "enforcement.usage_windows");
        if (!list) return fail(std::move(list.error()));
        for (const auto& w : *list) {
            if (!isUsageWindow(w)) {
                return bad("field \"enforcement.usage_windows\": unknown window \"" + w +
                           "\" (hour, day, week, month, total)");
            }
        }
        out.usage_windows = std::move(*list);
    }
    if (auto it = v.find("policy_sets"); it != v.end()) {
        if (!it->is_object()) return bad("field \"enforcement.policy_sets\" must be an object");
        for (const auto& [name, files] : it->items()) {
            auto set = policyMap(files, "enforcement.policy_sets." + name);
            if (!set) return fail(std::move(set.error()));
            if (set->empty()) return bad("policy set \"" + name + "\" is empty");
            out.policy_sets.emplace(name, std::move(*set));
        }
    }
    if (auto it = v.find("offline"); it != v.end()) {
        if (!it->is_object()) return bad("field \"enforcement.offline\" must be an object");
        for (const auto& item : it->items()) {
            if (item.key() != "max_age" && item.key() != "after") {
                return bad("unknown field \"enforcement.offline." + item.key() + "\"");
            }
        }
        if (auto age = it->find("max_age"); age != it->end()) {
            if (!age->is_number_unsigned()) {
                return bad("field \"enforcement.offline.max_age\" must be an unsigned integer (seconds)");
            }
            if (age->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                return bad("field \"enforcement.offline.max_age\" is out of range");
            }
            out.offline.max_age = static_cast<std::int64_t>(age->get<std::uint64_t>());
        }
        if (auto after = it->find("after"); after != it->end()) {
            if (!after->is_string()) return bad("field \"enforcement.offline.after\" must be a string");
            out.offline.after = after->get<std::string>();
        }
    }
    if (out.offline.after != "keep" && !out.policy_sets.contains(out.offline.after)) {
        return bad("field \"enforcement.offline.after\": \"" + out.offline.after +
                   "\" is neither \"keep\" nor a policy set of the bundle");
    }
    return out;
}

json enforcementJson(const Enforcement& e) {
    json j = {{"entrypoints", e.entrypoints},
              {"log_input", e.log_input},
              {"usage_windows", e.usage_windows},
              {"offline", {{"max_age", e.offline.max_age}, {"after", e.offline.after}}},
              {"policy_sets", e.policy_sets}};
    // Only when set, so bundles without models keep the digests they had.
    if (e.provenance_entrypoint != Enforcement::kDefaultProvenanceEntrypoint) {
        j["provenance_entrypoint"] = e.provenance_entrypoint;
    }
    return j;
}

bool isName(std::string_view s) { return isValidDeviceId(s); }

Result<Artifact> parseArtifact(const json& v, std::size_t index) {
    const auto where = "artifacts[" + std::to_string(index) + "]";
    if (!v.is_object()) return bad("field \"" + where + "\" must be an object");
    static const std::set<std::string> kKnown = {"kind", "name",       "version",     "sha256",
                                                 "size", "url",        "provenance",  "compression",
                                                 "transfer"};
    for (const auto& item : v.items()) {
        if (!kKnown.contains(item.key())) return bad("unknown field \"" + where + "." + item.key() + "\"");
    }
    auto str = [&](const char* name) -> Result<std::string> {
        const auto it = v.find(name);
        if (it == v.end()) return bad("missing field \"" + where + "." + name + "\"");
        if (!it->is_string()) return bad("field \"" + where + "." + name + "\" must be a string");
        return it->get<std::string>();
    };
    Artifact a;
    auto kind = str("kind");
    if (!kind) return fail(std::move(kind.error()));
    if (*kind == "firmware") {
        a.kind = ArtifactKind::kFirmware;
    } else if (*kind == "model") {
        a.kind = ArtifactKind::kModel;
    } else {
        return bad("field \"" + where + ".kind\": \"" + *kind + "\" is neither \"firmware\" nor \"model\"");
    }
    auto name = str("name");
    if (!name) return fail(std::move(name.error()));
    if (!isName(*name)) return bad("field \"" + where + ".name\" is not a valid name ([A-Za-z0-9._-]{1,64})");
    a.name = std::move(*name);
    auto version = str("version");
    if (!version) return fail(std::move(version.error()));
    if (version->empty() || version->size() > 64) {
        return bad("field \"" + where + ".version\" must have 1 to 64 characters");
    }
    a.version = std::move(*version);
    auto sha = str("sha256");
    if (!sha) return fail(std::move(sha.error()));
    if (!security::isSha256Hex(*sha)) return bad("field \"" + where + ".sha256\" must be 64 lowercase hex characters");
    a.sha256 = std::move(*sha);
    const auto size = v.find("size");
    if (size == v.end()) return bad("missing field \"" + where + ".size\"");
    if (!size->is_number_unsigned()) return bad("field \"" + where + ".size\" must be an unsigned integer");
    a.size = size->get<std::uint64_t>();
    auto url = str("url");
    if (!url) return fail(std::move(url.error()));
    // Only the store's own digest paths: the device joins them to its configured store address.
    constexpr std::string_view kPrefix = "/v1/artifacts/";
    if (!url->starts_with(kPrefix) || !security::isSha256Hex(std::string_view(*url).substr(kPrefix.size()))) {
        return bad("field \"" + where + ".url\" must be \"/v1/artifacts/<sha256>\"");
    }
    a.url = std::move(*url);
    if (auto it = v.find("compression"); it != v.end()) {
        if (!it->is_string() || *it != "zstd") return bad("field \"" + where + ".compression\" can only be \"zstd\"");
        a.compression = "zstd";
        const auto t = v.find("transfer");
        if (t == v.end() || !t->is_object() || t->size() != 2 || !t->contains("sha256") || !t->contains("size") ||
            !(*t)["sha256"].is_string() || !security::isSha256Hex((*t)["sha256"].get<std::string>()) ||
            !(*t)["size"].is_number_unsigned()) {
            return bad("field \"" + where + ".transfer\" must be {\"sha256\": <64 hex>, \"size\": <bytes>}");
        }
        a.transfer_sha256 = (*t)["sha256"].get<std::string>();
        a.transfer_size = (*t)["size"].get<std::uint64_t>();
    } else if (v.contains("transfer")) {
        return bad("field \"" + where + ".transfer\" goes with \"compression\"");
    }
    // What is fetched is bound by digest: the URL names exactly that digest.
    if (a.url.substr(kPrefix.size()) != (a.compression.empty() ? a.sha256 : a.transfer_sha256)) {
        return bad("field \"" + where + ".url\" must name the digest of what is downloaded");
    }
    if (auto it = v.find("provenance"); it != v.end()) {
        if (!it->is_object()) return bad("field \"" + where + ".provenance\" must be an object");
        a.provenance = *it;
    }
    return a;
}

Result<std::vector<Artifact>> parseArtifacts(const json& v) {
    if (!v.is_array()) return bad("field \"artifacts\" must be an array");
    std::vector<Artifact> out;
    std::set<std::string> models;
    bool firmware = false;
    for (std::size_t i = 0; i < v.size(); ++i) {
        auto a = parseArtifact(v[i], i);
        if (!a) return fail(std::move(a.error()));
        if (a->kind == ArtifactKind::kFirmware) {
            if (firmware) return bad("field \"artifacts\": more than one firmware image");
            firmware = true;
        } else if (!models.insert(a->name).second) {
            return bad("field \"artifacts\": model \"" + a->name + "\" appears twice");
        }
        out.push_back(std::move(*a));
    }
    return out;
}

json artifactsJson(const std::vector<Artifact>& artifacts) {
    json out = json::array();
    for (const auto& a : artifacts) {
        json j = {{"kind", kindName(a.kind)}, {"name", a.name}, {"version", a.version},
                  {"sha256", a.sha256},       {"size", a.size}, {"url", a.url}};
        if (a.kind == ArtifactKind::kModel) j["provenance"] = a.provenance;
        if (!a.compression.empty()) {
            j["compression"] = a.compression;
            j["transfer"] = {{"sha256", a.transfer_sha256}, {"size", a.transfer_size}};
        }
        out.push_back(std::move(j));
    }
    return out;
}

Result<Bundle> parseDocument(std::string_view text) {
    const json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded()) return bad("not valid JSON");
    if (!doc.is_object()) return bad("not a JSON object");

    static const std::set<std::string> kKnown = {"schema",    "device", "version", "issued_at",
                                                 "expires_at", "source", "policies", "data",
                                                 "enforcement", "artifacts", "retry"};
    for (const auto& item : doc.items()) {
        if (!kKnown.contains(item.key())) return bad("unknown field \"" + item.key() + "\"");
    }

    Bundle out;
    auto schema = field(doc, "schema");
    if (!schema) return fail(std::move(schema.error()));
    if (!(*schema)->is_number_integer()) return bad("field \"schema\" must be an integer");
    if (**schema != kSchema) return bad("unsupported schema " + (*schema)->dump() + " in field \"schema\"");
    out.schema = kSchema;

    auto device = field(doc, "device");
    if (!device) return fail(std::move(device.error()));
    if (!(*device)->is_string()) return bad("field \"device\" must be a string");
    out.device_id = (*device)->get<std::string>();
    if (!isValidDeviceId(out.device_id)) {
        return bad("field \"device\" is not a valid device id ([A-Za-z0-9._-]{1,64})");
    }

    auto version = field(doc, "version");
    if (!version) return fail(std::move(version.error()));
    if (!(*version)->is_number_unsigned()) return bad("field \"version\" must be an unsigned integer");
    out.version = (*version)->get<std::uint64_t>();

    auto issued = timeField(doc, "issued_at");
    if (!issued) return fail(std::move(issued.error()));
    out.issued_at = *issued;
    auto expires = timeField(doc, "expires_at");
    if (!expires) return fail(std::move(expires.error()));
    out.expires_at = *expires;

    auto source = field(doc, "source");
    if (!source) return fail(std::move(source.error()));
    if (!(*source)->is_string()) return bad("field \"source\" must be a string");
    out.source = (*source)->get<std::string>();

    auto policies = field(doc, "policies");
    if (!policies) return fail(std::move(policies.error()));
    auto policy_files = policyMap(**policies, "policies");
    if (!policy_files) return fail(std::move(policy_files.error()));
    out.policies = std::move(*policy_files);

    auto data = field(doc, "data");
    if (!data) return fail(std::move(data.error()));
    if (!(*data)->is_object()) return bad("field \"data\" must be an object");
    out.data = **data;

    if (auto it = doc.find("enforcement"); it != doc.end()) {
        auto enforcement = parseEnforcement(*it);
        if (!enforcement) return fail(std::move(enforcement.error()));
        out.enforcement = std::move(*enforcement);
    }
    if (auto it = doc.find("artifacts"); it != doc.end()) {
        auto artifacts = parseArtifacts(*it);
        if (!artifacts) return fail(std::move(artifacts.error()));
        out.artifacts = std::move(*artifacts);
    }
    if (auto it = doc.find("retry"); it != doc.end()) {
        if (!it->is_number_unsigned()) return bad("field \"retry\" must be an unsigned integer");
        out.retry = it->get<std::uint64_t>();
    }
    return out;
}

}  // namespace

std::string Bundle::contentDigest() const {
    // nlohmann::json keeps object keys sorted, so equal contents dump identically.
    json content = {{"policies", policies}, {"data", data},
                    {"enforcement", enforcementJson(enforcement)}};
    if (!artifacts.empty()) content["artifacts"] = artifactsJson(artifacts);
    if (retry > 0) content["retry"] = retry;  // absent at 0: digests of earlier bundles hold
    return "sha256:" + security::sha256Hex(dumpCompact(content));
}

const Artifact* Bundle::firmware() const {
    for (const auto& a : artifacts) {
        if (a.kind == ArtifactKind::kFirmware) return &a;
    }
    return nullptr;
}

std::string_view kindName(ArtifactKind kind) {
    return kind == ArtifactKind::kFirmware ? "firmware" : "model";
}

std::string toJson(const Bundle& bundle) {
    json doc = {{"schema", bundle.schema},         {"device", bundle.device_id},
                      {"version", bundle.version},       {"issued_at", bundle.issued_at},
                      {"expires_at", bundle.expires_at}, {"source", bundle.source},
                      {"policies", bundle.policies},     {"data", bundle.data},
                      {"enforcement", enforcementJson(bundle.enforcement)}};
    if (!bundle.artifacts.empty()) doc["artifacts"] = artifactsJson(bundle.artifacts);
    if (bundle.retry > 0) doc["retry"] = bundle.retry;
    return dumpCompact(doc);
}

Result<Bundle> fromJson(std::string_view text) {
    try {
        return parseDocument(text);
    } catch (const json::exception& e) {
        return bad(e.what());
    }
}

bool isUsageWindow(std::string_view window) {
    return window == "hour" || window == "day" || window == "week" || window == "month" ||
           window == "total";
}

bool isValidDeviceId(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    // Allowed by the character class but they would walk the directory tree as a path level.
    if (id == "." || id == "..") return false;
    for (const char c : id) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                        c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

}  // namespace edge::bundle
