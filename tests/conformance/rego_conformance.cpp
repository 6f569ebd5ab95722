// rego-conformance DIR [--core CORE_SUBSET.tsv] [--known-failures FILE] [--filter TEXT] [-v]
// Runs OPA's Rego conformance cases (YAML; format in shared/rego-conformance/README.md) found
// under DIR against the engine, prints a table per topic and a closing "N passed, N failed".
// Core cases (CORE_SUBSET.tsv in DIR, or --core) are counted separately, and any failing core
// case makes the run fail (exit 1) — except those listed, "file<TAB>note" a line, in
// --known-failures, each of which is printed so the list stays short and honest.
#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "shared/policy/engine.hpp"

namespace {

using namespace edge::policy;

Value scalarToValue(const YAML::Node& node) {
    const std::string& s = node.Scalar();
    if (node.Tag() == "!") return Value::string(s);
    if (s == "true") return Value::boolean(true);
    if (s == "false") return Value::boolean(false);
    if (s == "null" || s == "~") return Value::null();
    if (!s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.')) {
        auto parsed = parseJson(s);
        if (parsed && parsed->isNumber()) return *parsed;
        double d = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
        if (ec == std::errc{} && p == s.data() + s.size()) return Value::number(d);
    }
    return Value::string(s);
}

Value yamlToValue(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map: {
            Object o;
            for (const auto& kv : node) o.insert_or_assign(Value::string(kv.first.as<std::string>()), yamlToValue(kv.second));
            return Value::object(std::move(o));
        }
        case YAML::NodeType::Sequence: {
            Array a;
            for (const auto& item : node) a.push_back(yamlToValue(item));
            return Value::array(std::move(a));
        }
        case YAML::NodeType::Scalar: return scalarToValue(node);
        default: return Value::null();
    }
}

/// JSON round trip: sets become sorted arrays, object keys strings — how OPA's harness compares.
Value normalize(const Value& v) {
    auto parsed = parseJson(v.toJson());
    return parsed ? *parsed : v;
}

Value sortArrays(const Value& v) {
    if (!v.isArray()) return v;
    Array a = v.asArray();
    std::sort(a.begin(), a.end());
    return Value::array(std::move(a));
}

struct Outcome {
    bool passed = false;
    bool skipped = false;
    std::string detail;
};

Outcome runCase(const YAML::Node& c) {
    Outcome out;
    const bool want_result = c["want_result"].IsDefined();
    const bool want_error = c["want_error"].IsDefined() || c["want_error_code"].IsDefined();
    if (!want_result && !want_error) {
        out.skipped = true;
        out.detail = "malformed case: no want_result, want_error or want_error_code";
        return out;
    }
    std::vector<ModuleSource> modules;
    int index = 0;
    for (const auto& m : c["modules"]) modules.push_back({fmt::format("test-{}.rego", index++), m.as<std::string>()});

    EvalOptions options;
    options.timeout = std::chrono::seconds(10);
    options.strict_builtin_errors = c["strict_error"].IsDefined() && c["strict_error"].as<bool>();
    if (c["data"].IsDefined()) options.data = yamlToValue(c["data"]);
    if (c["input"].IsDefined()) options.input = yamlToValue(c["input"]);

    auto run = [&]() -> edge::Result<ResultSet> {
        if (c["input_term"].IsDefined()) {
            auto empty = Policy::compile({});
            if (!empty) return std::unexpected(empty.error());
            auto q = (*empty)->prepare(c["input_term"].as<std::string>());
            if (!q) return std::unexpected(q.error());
            auto v = q->evalValue({});
            if (!v) return std::unexpected(v.error());
            if (*v) options.input = **v;
        }
        auto policy = Policy::compile(modules);
        if (!policy) return std::unexpected(policy.error());
        auto query = (*policy)->prepare(c["query"].as<std::string>());
        if (!query) return std::unexpected(query.error());
        return query->eval(options);
    };
    auto rs = run();
    if (want_error) {
        if (rs) {
            out.detail = fmt::format("expected an error, got {} results", rs->size());
            return out;
        }
        const auto& err = rs.error();
        if (c["want_error_code"].IsDefined()) {
            const auto want = c["want_error_code"].as<std::string>();
            std::string got = "other";
            if (err.code().category() == policyCategory()) {
                got = std::string(conformanceName(static_cast<PolicyErrc>(err.code().value())));
            }
            if (got != want) {
                out.detail = fmt::format("expected error code {}, got {}: {}", want, got, err.what());
                return out;
            }
        }
        if (c["want_error"].IsDefined()) {
            const auto want = c["want_error"].as<std::string>();
            if (err.what().find(want) == std::string::npos) {
                out.detail = fmt::format("expected error containing '{}', got: {}", want, err.what());
                return out;
            }
        }
        out.passed = true;
        return out;
    }
    if (!rs) {
        out.detail = "error: " + rs.error().what();
        return out;
    }
    const bool sort = c["sort_bindings"].IsDefined() && c["sort_bindings"].as<bool>();
    std::vector<Value> got;
    for (const auto& b : *rs) {
        Object o;
        for (const auto& [name, v] : b) {
            if (name.starts_with("$") || name.starts_with("__")) continue;
            Value n = normalize(v);
            o.insert_or_assign(Value::string(name), sort ? sortArrays(n) : n);
        }
        got.push_back(Value::object(std::move(o)));
    }
    std::vector<Value> want;
    for (const auto& b : c["want_result"]) {
        Value w = normalize(yamlToValue(b));
        if (sort && w.isObject()) {
            Object o;
            for (const auto& [k, v] : w.asObject()) o.insert_or_assign(k, sortArrays(v));
            w = Value::object(std::move(o));
        }
        want.push_back(w);
    }
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    if (got == want) {
        out.passed = true;
        return out;
    }
    out.detail = fmt::format("want {} got {}", Value::array(want).toJson(), Value::array(got).toJson());
    if (out.detail.size() > 600) out.detail = out.detail.substr(0, 600) + "…";
    return out;
}

struct Tally {
    int passed = 0;
    int failed = 0;
    int skipped = 0;
};

}  // namespace

int main(int argc, char** argv) {
    std::filesystem::path dir;
    std::filesystem::path core_file;
    std::string filter;
    bool verbose = false;
    std::filesystem::path known_file;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--core" && i + 1 < argc) core_file = argv[++i];
        else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
        else if (a == "--known-failures" && i + 1 < argc) known_file = argv[++i];
        else if (a == "--verbose" || a == "-v") verbose = true;
        else if (dir.empty()) dir = a;
        else {
            std::cerr << "usage: rego-conformance DIR [--core FILE] [--known-failures FILE] [--filter TEXT] [-v]\n";
            return 2;
        }
    }
    if (dir.empty()) {
        std::cerr << "usage: rego-conformance DIR [--core FILE] [--known-failures FILE] [--filter TEXT] [-v]\n";
        return 2;
    }
    std::set<std::string> known;
    if (!known_file.empty()) {
        std::ifstream in(known_file);
        std::string line;
        while (std::getline(in, line)) {
            if (!line.empty() && line[0] != '#') known.insert(line);
        }
    }
    if (core_file.empty() && std::filesystem::exists(dir / "CORE_SUBSET.tsv")) core_file = dir / "CORE_SUBSET.tsv";
    std::set<std::pair<std::string, std::string>> core;
    if (!core_file.empty()) {
        std::ifstream in(core_file);
        std::string line;
        std::getline(in, line);  // header
        while (std::getline(in, line)) {
            const auto tab = line.find('\t');
            if (tab != std::string::npos) core.emplace(line.substr(0, tab), line.substr(tab + 1));
        }
    }
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        if (e.is_regular_file() && e.path().extension() == ".yaml") files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());

    std::map<std::string, Tally> topics;
    Tally total;
    Tally core_tally;
    std::vector<std::string> skipped;
    std::vector<std::string> core_failures;
    for (const auto& file : files) {
        const auto rel = std::filesystem::relative(file, dir).string();
        YAML::Node doc;
        try {
            doc = YAML::LoadFile(file.string());
        } catch (const std::exception& e) {
            std::cerr << rel << ": unreadable: " << e.what() << "\n";
            ++total.failed;
            continue;
        }
        for (const auto& c : doc["cases"]) {
            const auto note = c["note"].as<std::string>();
            if (!filter.empty() && note.find(filter) == std::string::npos && rel.find(filter) == std::string::npos) continue;
            const auto topic = note.substr(0, note.find('/'));
            Outcome o;
            try {
                o = runCase(c);
            } catch (const std::exception& e) {
                o.detail = std::string("exception: ") + e.what();
            }
            auto& t = topics[topic];
            const bool is_core = core.contains({rel, note});
            if (o.skipped) {
                ++t.skipped;
                ++total.skipped;
                skipped.push_back(fmt::format("{}: {} ({})", rel, note, o.detail));
            } else if (o.passed) {
                ++t.passed;
                ++total.passed;
                if (is_core) ++core_tally.passed;
            } else {
                ++t.failed;
                ++total.failed;
                if (is_core) {
                    ++core_tally.failed;
                    core_failures.push_back(fmt::format("{}\t{}", rel, note));
                }
                if (verbose) std::cout << "FAIL " << rel << ": " << note << "\n     " << o.detail << "\n";
            }
        }
    }
    std::cout << fmt::format("{:<32} {:>7} {:>7} {:>7}\n", "topic", "passed", "failed", "skipped");
    for (const auto& [topic, t] : topics) {
        std::cout << fmt::format("{:<32} {:>7} {:>7} {:>7}\n", topic, t.passed, t.failed, t.skipped);
    }
    for (const auto& s : skipped) std::cout << "skipped: " << s << "\n";
    if (!core.empty()) {
        std::cout << fmt::format("core subset: {} passed, {} failed (of {})\n", core_tally.passed, core_tally.failed,
                                 core.size());
    }
    int unexpected = 0;
    for (const auto& f : core_failures) {
        const bool expected = known.contains(f);
        if (!expected) ++unexpected;
        std::cout << (expected ? "known core failure: " : "CORE FAILURE: ") << f << "\n";
    }
    std::cout << fmt::format("{} passed, {} failed, {} skipped\n", total.passed, total.failed, total.skipped);
    if (unexpected > 0) {
        std::cerr << fmt::format("{} core cases failed that are not listed as known failures\n", unexpected);
        return 1;
    }
    return 0;
}
