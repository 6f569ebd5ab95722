#pragma once
// Config files: a YAML mapping (docs/config.md documents the format and every program's keys).
// - Keys are lower_snake_case; a nested mapping is addressed with dots ("http.listen").
// - Values: strings, integers, booleans, durations ("250ms", "30s", "5m", "2h", "7d"), paths
//   (relative ones resolve against the config file's folder), and lists of strings.
// - Unknown keys are an error: a typo must not silently fall back to a default.
// Every error names the file, the line and the key.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "shared/core/error.hpp"

namespace edge::config {

class ConfigFile {
public:
    [[nodiscard]] static Result<ConfigFile> load(const std::filesystem::path& path);
    /// base_dir anchors relative paths; source names the text in errors.
    [[nodiscard]] static Result<ConfigFile> parse(std::string_view text, std::string source,
                                                  std::filesystem::path base_dir);

    // Each getter marks its key as known. Without a default the key is required.
    [[nodiscard]] Result<std::string> string(std::string_view key);
    [[nodiscard]] Result<std::string> string(std::string_view key, std::string fallback);
    [[nodiscard]] Result<std::int64_t> integer(std::string_view key, std::int64_t fallback,
                                               std::int64_t min, std::int64_t max);
    [[nodiscard]] Result<bool> boolean(std::string_view key, bool fallback);
    [[nodiscard]] Result<std::chrono::milliseconds> duration(std::string_view key,
                                                             std::chrono::milliseconds fallback);
    [[nodiscard]] Result<std::filesystem::path> path(std::string_view key);
    [[nodiscard]] Result<std::vector<std::string>> strings(std::string_view key);
    [[nodiscard]] bool has(std::string_view key) const;

    /// Fails on the first key no getter asked for.
    [[nodiscard]] Status finish() const;

    /// Parses "250ms", "30s", "5m", "2h", "7d".
    [[nodiscard]] static Result<std::chrono::milliseconds> parseDuration(std::string_view text);

private:
    struct Entry {
        std::string scalar;
        std::vector<std::string> list;
        bool is_list = false;
        int line = 0;
        bool used = false;
    };
    [[nodiscard]] Result<Entry*> find(std::string_view key, bool required);
    [[nodiscard]] Error keyError(std::string_view key, const Entry* entry,
                                 std::string_view problem) const;

    std::map<std::string, Entry, std::less<>> entries_;
    std::string source_;
    std::filesystem::path base_dir_;
};

}  // namespace edge::config
