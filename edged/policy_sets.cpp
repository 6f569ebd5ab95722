#include "edged/policy_sets.hpp"

#include <set>

#include <fmt/format.h>

namespace edge::edged {
namespace {

constexpr std::size_t kMaxCachedPaths = 1024;

bool isIdentifier(std::string_view s) {
    static const std::set<std::string_view> kKeywords = {
        "as",   "default", "else", "false", "import", "package", "not",     "null",
        "true", "with",    "some", "in",    "every",  "contains", "if",     "set"};
    if (s.empty() || kKeywords.contains(s)) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
    }
    return true;
}

Result<std::shared_ptr<const CompiledSet>> compileSet(std::string name,
                                                      const std::map<std::string, std::string>& files,
                                                      const std::vector<std::string>& entrypoints) {
    std::vector<policy::ModuleSource> modules;
    modules.reserve(files.size());
    for (const auto& [file, text] : files) modules.push_back({file, text});
    auto compiled = policy::Policy::compile(modules);
    if (!compiled) {
        return fail(std::move(compiled.error()).wrap(fmt::format("policy set '{}'", name)));
    }
    auto set = std::make_shared<CompiledSet>();
    set->name = std::move(name);
    set->policy = std::move(*compiled);
    std::vector<std::string> entries = entrypoints;
    if (entries.empty()) {
        std::set<std::string> packages;
        for (const auto& pkg : set->policy->packages()) packages.insert(pkg);
        for (const auto& pkg : packages) entries.push_back(pkg + ".deny");
    }
    for (const auto& entry : entries) {
        auto prepared = set->policy->prepare(entry);
        if (!prepared) {
            return fail(std::move(prepared.error())
                            .wrap(fmt::format("policy set '{}': entry point '{}'", set->name, entry)));
        }
        set->entrypoints.emplace_back(entry, std::move(*prepared));
    }
    return std::shared_ptr<const CompiledSet>(std::move(set));
}

}  // namespace

Result<std::string> dataPathQuery(std::string_view path) {
    std::string query = "data";
    while (!path.empty()) {
        const auto slash = path.find('/');
        const auto segment = path.substr(0, slash);
        path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
        if (segment.empty()) continue;
        if (isIdentifier(segment)) {
            query += '.';
            query += segment;
        } else {
            query += '[';
            query += nlohmann::json(std::string(segment)).dump(-1, ' ', false,
                                                               nlohmann::json::error_handler_t::replace);
            query += ']';
        }
    }
    return query;
}

Result<policy::PreparedQuery> CompiledSet::dataQuery(std::string_view path) const {
    {
        std::lock_guard lock(cache_mutex_);
        if (auto it = cache_.find(path); it != cache_.end()) return it->second;
    }
    auto query = dataPathQuery(path);
    if (!query) return fail(query.error());
    auto prepared = policy->prepare(*query);
    if (!prepared) return fail(prepared.error());
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kMaxCachedPaths) cache_.clear();
    cache_.emplace(std::string(path), *prepared);
    return *prepared;
}

bool PolicySets::failSafeActive(bool online, std::int64_t offline_seconds) const {
    const auto& rule = enforcement.offline;
    return !online && rule.max_age > 0 && offline_seconds > rule.max_age && rule.after != "keep";
}

const CompiledSet& PolicySets::select(bool online, std::int64_t offline_seconds) const {
    if (failSafeActive(online, offline_seconds)) {
        if (auto it = named.find(enforcement.offline.after); it != named.end()) return *it->second;
    }
    return *main;
}

Result<std::shared_ptr<const PolicySets>> PolicySets::build(const bundle::Bundle& bundle) {
    auto sets = std::make_shared<PolicySets>();
    sets->bundle_version = bundle.version;
    sets->enforcement = bundle.enforcement;
    auto data = policy::parseJson(bundle.data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    if (!data) return fail(std::move(data.error()).wrap("bundle data"));
    sets->data = std::move(*data);
    auto main = compileSet("main", bundle.policies, bundle.enforcement.entrypoints);
    if (!main) return fail(main.error());
    sets->main = std::move(*main);
    for (const auto& [name, files] : bundle.enforcement.policy_sets) {
        // A fail-safe set answers through its own packages' deny rules.
        auto set = compileSet(name, files, {});
        if (!set) return fail(set.error());
        sets->named.emplace(name, std::move(*set));
    }
    return std::shared_ptr<const PolicySets>(std::move(sets));
}

}  // namespace edge::edged
