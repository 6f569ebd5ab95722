#include "shared/core/config.hpp"

#include <charconv>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "shared/core/fs.hpp"

namespace edge::config {
namespace {

Status flatten(const YAML::Node& node, const std::string& prefix, const std::string& source,
               auto& entries, auto make_entry) {
    for (const auto& item : node) {
        const auto key_node = item.first;
        if (!key_node.IsScalar()) {
            return fail(SharedErrc::kConfig,
                        fmt::format("{}:{}: keys must be plain names", source,
                                    key_node.Mark().line + 1));
        }
        const std::string key = prefix.empty() ? key_node.Scalar() : prefix + "." + key_node.Scalar();
        const auto& value = item.second;
        if (value.IsMap()) {
            if (auto st = flatten(value, key, source, entries, make_entry); !st) return st;
            continue;
        }
        auto entry = make_entry(key_node.Mark().line + 1);
        if (value.IsSequence()) {
            entry.is_list = true;
            for (const auto& element : value) {
                if (!element.IsScalar()) {
                    return fail(SharedErrc::kConfig,
                                fmt::format("{}:{}: key '{}': list items must be plain values",
                                            source, element.Mark().line + 1, key));
                }
                entry.list.push_back(element.Scalar());
            }
        } else if (value.IsScalar()) {
            entry.scalar = value.Scalar();
        } else if (!value.IsNull()) {
            return fail(SharedErrc::kConfig,
                        fmt::format("{}:{}: key '{}': unsupported value", source, entry.line, key));
        }
        entries.insert_or_assign(key, std::move(entry));
    }
    return {};
}

}  // namespace

Result<ConfigFile> ConfigFile::load(const std::filesystem::path& path) {
    auto text = fs::readFile(path, 1u << 20);
    if (!text) return fail(std::move(text.error()).wrap("config"));
    return parse(*text, path.string(), path.parent_path());
}

Result<ConfigFile> ConfigFile::parse(std::string_view text, std::string source,
                                     std::filesystem::path base_dir) {
    ConfigFile file;
    file.source_ = std::move(source);
    file.base_dir_ = std::move(base_dir);
    YAML::Node root;
    try {
        root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        return fail(SharedErrc::kConfig, fmt::format("{}:{}:{}: not valid YAML: {}", file.source_,
                                                     e.mark.line + 1, e.mark.column + 1, e.msg));
    }
    if (root.IsNull()) return file;
    if (!root.IsMap()) {
        return fail(SharedErrc::kConfig,
                    fmt::format("{}: the top level must be a mapping of keys", file.source_));
    }
    try {
        auto st = flatten(root, "", file.source_, file.entries_, [](int line) {
            Entry e;
            e.line = line;
            return e;
        });
        if (!st) return fail(st.error());
    } catch (const YAML::Exception& e) {
        return fail(SharedErrc::kConfig, fmt::format("{}: {}", file.source_, e.what()));
    }
    return file;
}

Error ConfigFile::keyError(std::string_view key, const Entry* entry,
                           std::string_view problem) const {
    if (entry == nullptr) {
        return Error(make_error_code(SharedErrc::kConfig),
                     fmt::format("{}: key '{}': {}", source_, key, problem));
    }
    return Error(make_error_code(SharedErrc::kConfig),
                 fmt::format("{}:{}: key '{}': {}", source_, entry->line, key, problem));
}

Result<ConfigFile::Entry*> ConfigFile::find(std::string_view key, bool required) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        if (required) return fail(keyError(key, nullptr, "missing, and it is required"));
        return nullptr;
    }
    it->second.used = true;
    return &it->second;
}

bool ConfigFile::has(std::string_view key) const { return entries_.contains(key); }

Result<std::string> ConfigFile::string(std::string_view key) {
    auto entry = find(key, true);
    if (!entry) return fail(entry.error());
    if ((*entry)->is_list || (*entry)->scalar.empty()) {
        return fail(keyError(key, *entry, "expected a non-empty string"));
    }
    return (*entry)->scalar;
}

Result<std::string> ConfigFile::string(std::string_view key, std::string fallback) {
    if (!has(key)) return fallback;
    return string(key);
}

Result<std::int64_t> ConfigFile::integer(std::string_view key, std::int64_t fallback,
                                         std::int64_t min, std::int64_t max) {
    auto entry = find(key, false);
    if (!entry) return fail(entry.error());
    if (*entry == nullptr) return fallback;
    const auto& s = (*entry)->scalar;
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if ((*entry)->is_list || ec != std::errc{} || ptr != s.data() + s.size()) {
        return fail(keyError(key, *entry, fmt::format("expected an integer, got '{}'", s)));
    }
    if (value < min || value > max) {
        return fail(keyError(key, *entry, fmt::format("{} is outside {}..{}", value, min, max)));
    }
    return value;
}

Result<bool> ConfigFile::boolean(std::string_view key, bool fallback) {
    auto entry = find(key, false);
    if (!entry) return fail(entry.error());
    if (*entry == nullptr) return fallback;
    const auto& s = (*entry)->scalar;
    if (s == "true") return true;
    if (s == "false") return false;
    return fail(keyError(key, *entry, fmt::format("expected true or false, got '{}'", s)));
}

Result<std::chrono::milliseconds> ConfigFile::parseDuration(std::string_view text) {
    std::int64_t value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    const std::string_view unit(ptr, text.data() + text.size() - ptr);
    if (ec != std::errc{} || value < 0 || ptr == text.data()) {
        return fail(SharedErrc::kConfig, fmt::format("expected a duration like 30s, got '{}'", text));
    }
    using namespace std::chrono;
    if (unit == "ms") return milliseconds(value);
    if (unit == "s") return duration_cast<milliseconds>(seconds(value));
    if (unit == "m") return duration_cast<milliseconds>(minutes(value));
    if (unit == "h") return duration_cast<milliseconds>(hours(value));
    if (unit == "d") return duration_cast<milliseconds>(hours(24 * value));
    return fail(SharedErrc::kConfig,
                fmt::format("expected a duration like 30s (units ms, s, m, h, d), got '{}'", text));
}

Result<std::chrono::milliseconds> ConfigFile::duration(std::string_view key,
                                                       std::chrono::milliseconds fallback) {
    auto entry = find(key, false);
    if (!entry) return fail(entry.error());
    if (*entry == nullptr) return fallback;
    auto parsed = parseDuration((*entry)->scalar);
    if (!parsed) return fail(keyError(key, *entry, parsed.error().message()));
    return *parsed;
}

Result<std::filesystem::path> ConfigFile::path(std::string_view key) {
    auto text = string(key);
    if (!text) return fail(text.error());
    std::filesystem::path p(*text);
    if (p.is_relative()) p = base_dir_ / p;
    return p.lexically_normal();
}

Result<std::vector<std::string>> ConfigFile::strings(std::string_view key) {
    auto entry = find(key, true);
    if (!entry) return fail(entry.error());
    if (!(*entry)->is_list) {
        if ((*entry)->scalar.empty()) return fail(keyError(key, *entry, "expected a list"));
        return std::vector<std::string>{(*entry)->scalar};
    }
    return (*entry)->list;
}

Status ConfigFile::finish() const {
    for (const auto& [key, entry] : entries_) {
        if (!entry.used) return fail(keyError(key, &entry, "unknown key"));
    }
    return {};
}

}  // namespace edge::config
