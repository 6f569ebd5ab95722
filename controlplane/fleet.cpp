#include "controlplane/fleet.hpp"

#include <charconv>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "security/crypto.hpp"
#include "shared/core/config.hpp"
#include "shared/core/fs.hpp"
#include "shared/policy/engine.hpp"

namespace edge::controlplane {
namespace {

constexpr std::size_t kMaxFileBytes = 4u << 20;

nlohmann::json scalarToJson(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    if (node.Tag() == "!") return s;  // quoted: always a string
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
    if (s == "null" || s == "~" || s.empty()) return nullptr;
    std::int64_t i = 0;
    if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), i);
        ec == std::errc{} && p == s.data() + s.size()) {
        return i;
    }
    double d = 0;
    if (auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
        ec == std::errc{} && p == s.data() + s.size()) {
        return d;
    }
    return s;
}

nlohmann::json nodeToJson(const YAML::Node& node, int depth) {
    if (depth > 64) throw YAML::Exception(node.Mark(), "nesting deeper than 64 levels");
    switch (node.Type()) {
        case YAML::NodeType::Map: {
            auto obj = nlohmann::json::object();
            for (const auto& kv : node) obj[kv.first.as<std::string>()] = nodeToJson(kv.second, depth + 1);
            return obj;
        }
        case YAML::NodeType::Sequence: {
            auto arr = nlohmann::json::array();
            for (const auto& item : node) arr.push_back(nodeToJson(item, depth + 1));
            return arr;
        }
        case YAML::NodeType::Scalar: return scalarToJson(node);
        default: return nullptr;
    }
}

void deepMerge(nlohmann::json& into, const nlohmann::json& from) {
    for (const auto& [key, value] : from.items()) {
        if (into.contains(key) && into[key].is_object() && value.is_object()) {
            deepMerge(into[key], value);
        } else {
            into[key] = value;
        }
    }
}

std::unexpected<Error> fleetError(std::string message) {
    return fail(SharedErrc::kConfig, std::move(message));
}

Result<std::vector<std::string>> stringList(const YAML::Node& node, const std::string& where) {
    std::vector<std::string> out;
    if (!node) return out;
    if (!node.IsSequence()) return fleetError(fmt::format("{}: expected a list of paths", where));
    for (const auto& item : node) {
        if (!item.IsScalar()) return fleetError(fmt::format("{}: expected a list of paths", where));
        out.push_back(item.Scalar());
    }
    return out;
}

/// A bundle whose policies do not compile would be refused by every device: refuse the commit.
Status checkPolicies(const std::string& group, const bundle::Bundle& content) {
    auto compileSet = [&](const std::map<std::string, std::string>& files, const std::string& what,
                          const std::vector<std::string>& entrypoints) -> Status {
        std::vector<policy::ModuleSource> modules;
        for (const auto& [file, text] : files) modules.push_back({file, text});
        auto compiled = policy::Policy::compile(modules);
        if (!compiled) {
            return fleetError(fmt::format("group '{}': {} do not compile: {}", group, what,
                                          compiled.error().what()));
        }
        for (const auto& entry : entrypoints) {
            if (auto prepared = (*compiled)->prepare(entry); !prepared) {
                return fleetError(fmt::format("group '{}': entry point '{}': {}", group, entry,
                                              prepared.error().what()));
            }
        }
        return {};
    };
    if (auto st = compileSet(content.policies, "policies", content.enforcement.entrypoints); !st) {
        return st;
    }
    for (const auto& [name, files] : content.enforcement.policy_sets) {
        if (auto st = compileSet(files, fmt::format("policy set '{}'", name), {}); !st) return st;
    }
    return {};
}

class FleetReader {
public:
    explicit FleetReader(std::filesystem::path dir) : dir_(std::move(dir)) {}

    Result<std::string> read(std::string_view relative) {
        auto path = fs::resolveInside(dir_, relative);
        if (!path) return fail(path.error());
        auto text = fs::readFile(*path, kMaxFileBytes);
        if (!text) return fail(text.error());
        digest_input_ += fmt::format("{}\n{}\n{}\n", relative, text->size(), *text);
        return text;
    }

    std::string revision() const { return "sha256:" + security::sha256Hex(digest_input_); }

private:
    std::filesystem::path dir_;
    std::string digest_input_;
};

Result<std::int64_t> durationSeconds(const YAML::Node& node, const std::string& where) {
    if (!node.IsScalar()) return fleetError(where + ": expected a duration (\"72h\", \"7d\")");
    auto parsed = config::ConfigFile::parseDuration(node.Scalar());
    if (!parsed) return fleetError(fmt::format("{}: {}", where, parsed.error().message()));
    return std::chrono::duration_cast<std::chrono::seconds>(*parsed).count();
}

Status parseEnforcement(const YAML::Node& node, const std::string& where, GroupSpec& group) {
    if (!node.IsMap()) return fleetError(where + ": expected a mapping");
    auto& e = group.enforcement;
    for (const auto& kv : node) {
        const auto key = kv.first.as<std::string>();
        const auto at = fmt::format("{}.{}", where, key);
        if (key == "entrypoints") {
            auto list = stringList(kv.second, at);
            if (!list) return fail(list.error());
            for (const auto& entry : *list) {
                if (!entry.starts_with("data.")) {
                    return fleetError(fmt::format("{}: '{}' must start with 'data.'", at, entry));
                }
            }
            e.entrypoints = std::move(*list);
        } else if (key == "log_input") {
            if (!kv.second.IsScalar() || (kv.second.Scalar() != "true" && kv.second.Scalar() != "false")) {
                return fleetError(at + ": expected true or false");
            }
            e.log_input = kv.second.Scalar() == "true";
        } else if (key == "usage_windows") {
            auto list = stringList(kv.second, at);
            if (!list) return fail(list.error());
            for (const auto& w : *list) {
                if (!bundle::isUsageWindow(w)) {
                    return fleetError(fmt::format("{}: unknown window '{}' (hour, day, week, month, total)", at, w));
                }
            }
            e.usage_windows = std::move(*list);
        } else if (key == "offline") {
            if (!kv.second.IsMap()) return fleetError(at + ": expected a mapping (max_age, after)");
            for (const auto& item : kv.second) {
                const auto sub = item.first.as<std::string>();
                if (sub == "max_age") {
                    auto secs = durationSeconds(item.second, at + ".max_age");
                    if (!secs) return fail(secs.error());
                    e.offline.max_age = *secs;
                } else if (sub == "after") {
                    e.offline.after = item.second.as<std::string>();
                } else {
                    return fleetError(fmt::format("{}: unknown key '{}' (max_age, after)", at, sub));
                }
            }
        } else if (key == "provenance_entrypoint") {
            if (!kv.second.IsScalar() || !kv.second.Scalar().starts_with("data.")) {
                return fleetError(at + ": expected an entry point starting with 'data.'");
            }
            e.provenance_entrypoint = kv.second.Scalar();
        } else if (key == "policy_sets") {
            if (!kv.second.IsMap()) return fleetError(at + ": expected a mapping of set name to policy files");
            for (const auto& set : kv.second) {
                const auto name = set.first.as<std::string>();
                auto list = stringList(set.second, fmt::format("{}.{}", at, name));
                if (!list) return fail(list.error());
                if (list->empty()) return fleetError(fmt::format("{}.{}: a policy set needs at least one file", at, name));
                group.policy_set_paths[name] = std::move(*list);
            }
        } else {
            return fleetError(fmt::format(
                "{}: unknown key '{}' (entrypoints, log_input, usage_windows, offline, policy_sets, "
                "provenance_entrypoint)", where, key));
        }
    }
    if (e.offline.after != "keep" && !group.policy_set_paths.contains(e.offline.after)) {
        return fleetError(fmt::format("{}.offline.after: '{}' is neither 'keep' nor one of the group's policy_sets",
                                      where, e.offline.after));
    }
    return {};
}

Result<bundle::Artifact> parseArtifact(const YAML::Node& node, const std::string& where,
                                       const ArtifactLookup& lookup) {
    if (!node.IsMap()) return fleetError(where + ": expected a mapping (kind, name, version, sha256, size, provenance)");
    bundle::Artifact a;
    std::optional<std::uint64_t> size;
    bool have_kind = false;
    for (const auto& kv : node) {
        const auto key = kv.first.as<std::string>();
        const auto at = fmt::format("{}.{}", where, key);
        if (key == "provenance") {
            if (!kv.second.IsMap()) return fleetError(at + ": expected a mapping");
            a.provenance = nodeToJson(kv.second, 0);
            continue;
        }
        if (!kv.second.IsScalar()) return fleetError(at + ": expected a scalar");
        const std::string& value = kv.second.Scalar();
        if (key == "kind") {
            if (value == "firmware") {
                a.kind = bundle::ArtifactKind::kFirmware;
            } else if (value == "model") {
                a.kind = bundle::ArtifactKind::kModel;
            } else {
                return fleetError(fmt::format("{}: '{}' is neither 'firmware' nor 'model'", at, value));
            }
            have_kind = true;
        } else if (key == "name") {
            if (!bundle::isValidDeviceId(value)) return fleetError(at + ": names are 1 to 64 of [A-Za-z0-9._-]");
            a.name = value;
        } else if (key == "version") {
            if (value.empty() || value.size() > 64) return fleetError(at + ": 1 to 64 characters");
            a.version = value;
        } else if (key == "sha256") {
            if (!security::isSha256Hex(value)) {
                return fleetError(at + ": expected 64 lowercase hex characters (see 'controlplane artifact-add')");
            }
            a.sha256 = value;
        } else if (key == "size") {
            std::uint64_t n = 0;
            if (auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
                ec != std::errc{} || p != value.data() + value.size()) {
                return fleetError(at + ": expected a byte count");
            }
            size = n;
        } else {
            return fleetError(fmt::format("{}: unknown key '{}' (kind, name, version, sha256, size, provenance)",
                                          where, key));
        }
    }
    for (auto [present, key] : {std::pair{have_kind, "kind"}, std::pair{!a.name.empty(), "name"},
                                std::pair{!a.version.empty(), "version"}, std::pair{!a.sha256.empty(), "sha256"}}) {
        if (!present) return fleetError(fmt::format("{}: '{}' is required", where, key));
    }
    if (a.kind == bundle::ArtifactKind::kFirmware && !a.provenance.empty()) {
        return fleetError(where + ": 'provenance' is for models");
    }
    if (lookup) {
        auto stored = lookup(a.sha256);
        if (!stored) {
            return fleetError(fmt::format("{}: artifact {} is not in the artifact store: {}", where, a.sha256,
                                          stored.error().what()));
        }
        if (size && *size != stored->size) {
            return fleetError(fmt::format("{}: size {} does not match the stored artifact ({} bytes)", where,
                                          *size, stored->size));
        }
        a.url = fmt::format("/v1/artifacts/{}", a.sha256);
        if (stored->zstd) {
            // Sent compressed; bound, installed and measured as the decompressed bytes.
            a.compression = "zstd";
            a.transfer_sha256 = a.sha256;
            a.transfer_size = stored->size;
            a.sha256 = stored->content_sha256;
            a.size = stored->content_size;
            return a;
        }
        size = stored->size;
    }
    if (!size) return fleetError(where + ": 'size' is required");
    a.size = *size;
    a.url = fmt::format("/v1/artifacts/{}", a.sha256);
    return a;
}

Result<GroupSpec> parseGroup(const std::string& name, const YAML::Node& node, const ArtifactLookup& lookup) {
    const auto where = fmt::format("fleet.yaml: group '{}'", name);
    if (!node.IsMap()) return fleetError(where + ": expected a mapping");
    GroupSpec group{.name = name};
    for (const auto& kv : node) {
        const auto key = kv.first.as<std::string>();
        if (key == "policies") {
            auto list = stringList(kv.second, where + ": policies");
            if (!list) return fail(list.error());
            group.policies = std::move(*list);
        } else if (key == "data") {
            auto list = stringList(kv.second, where + ": data");
            if (!list) return fail(list.error());
            group.data = std::move(*list);
        } else if (key == "enforcement") {
            if (auto st = parseEnforcement(kv.second, where + ": enforcement", group); !st) {
                return fail(st.error());
            }
        } else if (key == "artifacts") {
            if (!kv.second.IsSequence()) return fleetError(where + ": artifacts: expected a list");
            std::set<std::string> models;
            bool firmware = false;
            for (std::size_t i = 0; i < kv.second.size(); ++i) {
                auto a = parseArtifact(kv.second[i], fmt::format("{}: artifacts[{}]", where, i), lookup);
                if (!a) return fail(a.error());
                if (a->kind == bundle::ArtifactKind::kFirmware) {
                    if (firmware) return fleetError(where + ": artifacts: more than one firmware image");
                    firmware = true;
                } else if (!models.insert(a->name).second) {
                    return fleetError(fmt::format("{}: artifacts: model '{}' appears twice", where, a->name));
                }
                group.artifacts.push_back(std::move(*a));
            }
        } else {
            return fleetError(fmt::format("{}: unknown key '{}' (policies, data, enforcement, artifacts)", where, key));
        }
    }
    return group;
}

Result<DeviceSpec> parseDevice(const std::string& id, const YAML::Node& node) {
    const auto where = fmt::format("fleet.yaml: device '{}'", id);
    if (!bundle::isValidDeviceId(id)) {
        return fleetError(where + ": device ids are 1 to 64 of [A-Za-z0-9._-]");
    }
    if (!node.IsMap()) return fleetError(where + ": expected a mapping");
    DeviceSpec device{.id = id};
    for (const auto& kv : node) {
        const auto key = kv.first.as<std::string>();
        if (key == "group") {
            device.group = kv.second.as<std::string>();
        } else if (key == "labels") {
            if (!kv.second.IsMap()) return fleetError(where + ": labels must be a mapping");
            for (const auto& label : kv.second) {
                device.labels[label.first.as<std::string>()] = label.second.as<std::string>();
            }
        } else {
            return fleetError(fmt::format("{}: unknown key '{}' (group, labels)", where, key));
        }
    }
    if (device.group.empty()) return fleetError(where + ": 'group' is required");
    return device;
}

Result<CompiledFleet> compile(const std::filesystem::path& dir, const ArtifactLookup& lookup) {
    FleetReader reader(dir);
    auto text = reader.read("fleet.yaml");
    if (!text) return fail(text.error());
    YAML::Node root = YAML::Load(*text);
    if (!root.IsMap()) return fleetError("fleet.yaml: expected a mapping with groups and devices");
    for (const auto& kv : root) {
        const auto key = kv.first.as<std::string>();
        if (key != "groups" && key != "devices") {
            return fleetError(fmt::format("fleet.yaml: unknown key '{}' (groups, devices)", key));
        }
    }

    std::map<std::string, GroupSpec> groups;
    for (const auto& kv : root["groups"]) {
        auto group = parseGroup(kv.first.as<std::string>(), kv.second, lookup);
        if (!group) return fail(group.error());
        groups.emplace(group->name, std::move(*group));
    }

    // Each group's content is read once, however many devices share it.
    std::map<std::string, bundle::Bundle> group_content;
    for (const auto& [name, group] : groups) {
        bundle::Bundle content;
        content.enforcement = group.enforcement;
        content.artifacts = group.artifacts;
        auto readPolicies = [&](const std::vector<std::string>& paths,
                                std::map<std::string, std::string>& into) -> Status {
            for (const auto& policy : paths) {
                if (!policy.ends_with(".rego")) {
                    return fleetError(fmt::format("group '{}': policy '{}' is not a .rego file", name, policy));
                }
                auto rego = reader.read(policy);
                if (!rego) return fail(std::move(rego.error()).wrap(fmt::format("group '{}'", name)));
                into[policy] = std::move(*rego);
            }
            return {};
        };
        if (auto st = readPolicies(group.policies, content.policies); !st) return fail(st.error());
        for (const auto& [set_name, paths] : group.policy_set_paths) {
            if (auto st = readPolicies(paths, content.enforcement.policy_sets[set_name]); !st) {
                return fail(st.error());
            }
        }
        if (auto st = checkPolicies(name, content); !st) return fail(st.error());
        for (const auto& data_file : group.data) {
            auto data_text = reader.read(data_file);
            if (!data_text) return fail(std::move(data_text.error()).wrap(fmt::format("group '{}'", name)));
            auto doc = yamlToJson(*data_text, data_file);
            if (!doc) return fail(doc.error());
            if (!doc->is_object()) {
                return fleetError(fmt::format("{}: a data document must be a mapping", data_file));
            }
            deepMerge(content.data, *doc);
        }
        group_content.emplace(name, std::move(content));
    }

    CompiledFleet fleet;
    for (const auto& kv : root["devices"]) {
        auto device = parseDevice(kv.first.as<std::string>(), kv.second);
        if (!device) return fail(device.error());
        auto content = group_content.find(device->group);
        if (content == group_content.end()) {
            return fleetError(fmt::format("fleet.yaml: device '{}' names unknown group '{}'",
                                          device->id, device->group));
        }
        bundle::Bundle b = content->second;
        b.device_id = device->id;
        fleet.bundles.emplace(device->id, std::move(b));
        fleet.devices.emplace(device->id, std::move(*device));
    }
    fleet.revision = reader.revision();
    for (auto& [id, b] : fleet.bundles) b.source = fleet.revision;
    return fleet;
}

}  // namespace

Result<nlohmann::json> yamlToJson(std::string_view text, const std::string& source) {
    try {
        return nodeToJson(YAML::Load(std::string(text)), 0);
    } catch (const YAML::Exception& e) {
        return fail(SharedErrc::kParse, fmt::format("{}:{}:{}: {}", source, e.mark.line + 1,
                                                    e.mark.column + 1, e.msg));
    }
}

Result<CompiledFleet> compileFleet(const std::filesystem::path& dir, const ArtifactLookup& artifacts) {
    try {
        auto fleet = compile(dir, artifacts);
        if (!fleet) return fail(std::move(fleet.error()).wrap(fmt::format("fleet '{}'", dir.string())));
        return fleet;
    } catch (const YAML::Exception& e) {
        return fail(SharedErrc::kConfig, fmt::format("fleet '{}': fleet.yaml:{}:{}: {}", dir.string(),
                                                     e.mark.line + 1, e.mark.column + 1, e.msg));
    }
}

}  // namespace edge::controlplane
