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

Result<Bundle> parseDocument(std::string_view text) {
    const json doc = json::parse(text.begin(), text.end(), nullptr, false);
    if (doc.is_discarded()) return bad("not valid JSON");
    if (!doc.is_object()) return bad("not a JSON object");

    static const std::set<std::string> kKnown = {"schema",    "device", "version", "issued_at",
                                                 "expires_at", "source", "policies", "data"};
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
    if (!(*policies)->is_object()) return bad("field \"policies\" must be an object of strings");
    for (const auto& [name, body] : (*policies)->items()) {
        if (!body.is_string()) return bad("field \"policies\": \"" + name + "\" must be a string");
        out.policies.emplace(name, body.get<std::string>());
    }

    auto data = field(doc, "data");
    if (!data) return fail(std::move(data.error()));
    if (!(*data)->is_object()) return bad("field \"data\" must be an object");
    out.data = **data;
    return out;
}

}  // namespace

std::string Bundle::contentDigest() const {
    // nlohmann::json keeps object keys sorted, so equal contents dump identically.
    const json content = {{"policies", policies}, {"data", data}};
    return "sha256:" + security::sha256Hex(dumpCompact(content));
}

std::string toJson(const Bundle& bundle) {
    const json doc = {{"schema", bundle.schema},         {"device", bundle.device_id},
                      {"version", bundle.version},       {"issued_at", bundle.issued_at},
                      {"expires_at", bundle.expires_at}, {"source", bundle.source},
                      {"policies", bundle.policies},     {"data", bundle.data}};
    return dumpCompact(doc);
}

Result<Bundle> fromJson(std::string_view text) {
    try {
        return parseDocument(text);
    } catch (const json::exception& e) {
        return bad(e.what());
    }
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
