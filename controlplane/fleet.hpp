#pragma once
// The fleet directory: what operators commit. Layout (docs/fleet.md):
//   fleet.yaml            groups (policies and data files) and devices (group, labels)
//   policies/*.rego       Rego modules, named by their path in the fleet
//   data/*.yaml|*.json    data documents, deep-merged into the bundle's data
// Every path in fleet.yaml is relative and must stay inside the fleet directory.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "shared/bundle/bundle.hpp"
#include "shared/core/error.hpp"

namespace edge::controlplane {

struct GroupSpec {
    std::string name;
    std::vector<std::string> policies;  // paths relative to the fleet dir
    std::vector<std::string> data;
    /// The group's `enforcement:` block; policy sets are read from policy_set_paths.
    bundle::Enforcement enforcement;
    std::map<std::string, std::vector<std::string>> policy_set_paths;
    /// The group's `artifacts:` list (firmware image, models), by digest in the artifact store.
    std::vector<bundle::Artifact> artifacts;
};

struct DeviceSpec {
    std::string id;
    std::string group;
    std::map<std::string, std::string> labels;
};

/// Per device: the bundle content (policies, data) without version or times.
struct CompiledFleet {
    std::string revision;  // "sha256:…" over every file read
    std::map<std::string, DeviceSpec> devices;
    std::map<std::string, bundle::Bundle> bundles;  // device id -> content
};

/// An artifact as the store holds it.
struct StoredArtifact {
    std::uint64_t size = 0;
    /// A zstd file: what it decompresses to (what the bundle binds and the device installs).
    bool zstd = false;
    std::string content_sha256;
    std::uint64_t content_size = 0;
};
/// The artifact stored under a digest, or an error when it is not stored.
using ArtifactLookup = std::function<Result<StoredArtifact>(std::string_view sha256)>;

/// Reads and validates the whole fleet; any problem fails the whole read with a message that
/// names the file and the entry, so a bad commit is refused as a whole. With a lookup, every
/// artifact a group names must be in the store with the declared size (a missing size is taken
/// from the store; a zstd file becomes a compressed artifact); without one, sizes must be given.
[[nodiscard]] Result<CompiledFleet> compileFleet(const std::filesystem::path& dir,
                                                 const ArtifactLookup& artifacts = {});

/// YAML (or JSON) text to JSON, with YAML's plain scalars typed (bool, null, int, float).
[[nodiscard]] Result<nlohmann::json> yamlToJson(std::string_view text, const std::string& source);

}  // namespace edge::controlplane
