#include "controlplane/policy_cli.hpp"

#include <algorithm>
#include <chrono>
#include <ostream>

#include <fmt/format.h>

#include "shared/core/fs.hpp"
#include "shared/policy/builtins.hpp"
#include "shared/policy/engine.hpp"

namespace edge::controlplane {
namespace {

using policy::Value;

struct Loaded {
    std::vector<policy::ModuleSource> modules;
    Value data = Value::emptyObject();
};

Value merge(const Value& into, const Value& from) {
    if (!into.isObject() || !from.isObject()) return from;
    policy::Object out = into.asObject();
    for (const auto& [k, v] : from.asObject()) {
        auto it = out.find(k);
        out.insert_or_assign(k, it == out.end() ? v : merge(it->second, v));
    }
    return Value::object(std::move(out));
}

Result<Value> parseDocument(const std::filesystem::path& path, const std::string& text) {
    if (path.extension() == ".json") {
        auto v = policy::parseJson(text);
        if (!v) return fail(SharedErrc::kParse, fmt::format("{}: {}", path.string(), v.error().message()));
        return *v;
    }
    const auto* yaml = policy::findBuiltin("yaml.unmarshal");
    if (yaml == nullptr) return fail(SharedErrc::kUnavailable, "no YAML support");
    policy::BuiltinContext ctx;
    const Value arg = Value::string(text);
    auto v = yaml->fn(std::span<const Value>(&arg, 1), ctx);
    if (!v || !*v) {
        return fail(SharedErrc::kParse,
                    fmt::format("{}: not valid YAML{}", path.string(), v ? "" : ": " + v.error().message()));
    }
    return **v;
}

Status loadFile(const std::filesystem::path& path, Loaded& out) {
    const auto ext = path.extension().string();
    if (ext != ".rego" && ext != ".json" && ext != ".yaml" && ext != ".yml") return {};
    auto text = fs::readFile(path, 16u << 20);
    if (!text) return fail(text.error());
    if (ext == ".rego") {
        out.modules.push_back({path.string(), std::move(*text)});
        return {};
    }
    auto doc = parseDocument(path, *text);
    if (!doc) return fail(doc.error());
    if (!doc->isObject()) return fail(SharedErrc::kParse, fmt::format("{}: data must be an object", path.string()));
    out.data = merge(out.data, *doc);
    return {};
}

Result<Loaded> load(const std::vector<std::filesystem::path>& paths) {
    Loaded out;
    for (const auto& p : paths) {
        std::error_code ec;
        if (std::filesystem::is_directory(p, ec)) {
            std::vector<std::filesystem::path> files;
            for (const auto& e : std::filesystem::recursive_directory_iterator(p, ec)) {
                if (e.is_regular_file()) files.push_back(e.path());
            }
            std::sort(files.begin(), files.end());
            for (const auto& f : files) {
                if (auto st = loadFile(f, out); !st) return fail(st.error());
            }
        } else if (std::filesystem::exists(p, ec)) {
            if (auto st = loadFile(p, out); !st) return fail(st.error());
        } else {
            return fail(SharedErrc::kNotFound, fmt::format("{}: no such file or directory", p.string()));
        }
    }
    return out;
}

}  // namespace

int policyEval(const PolicyEvalArgs& args, std::ostream& out, std::ostream& err) {
    auto loaded = load(args.paths);
    if (!loaded) {
        err << "edgectl policy eval: " << loaded.error().what() << "\n";
        return 2;
    }
    auto compiled = policy::Policy::compile(loaded->modules);
    if (!compiled) {
        err << "edgectl policy eval: " << compiled.error().what() << "\n";
        return 2;
    }
    auto query = (*compiled)->prepare(args.query);
    if (!query) {
        err << "edgectl policy eval: " << query.error().what() << "\n";
        return 2;
    }
    policy::EvalOptions options;
    options.data = loaded->data;
    options.strict_builtin_errors = args.strict;
    options.timeout = std::chrono::seconds(30);
    if (args.input) {
        auto text = fs::readFile(*args.input, 64u << 20);
        if (!text) {
            err << "edgectl policy eval: " << text.error().what() << "\n";
            return 2;
        }
        auto input = parseDocument(*args.input, *text);
        if (!input) {
            err << "edgectl policy eval: " << input.error().what() << "\n";
            return 2;
        }
        options.input = *input;
    }
    // A value query (data.x.y) answers with its value; any other query with its bindings. The
    // second evaluation only happens when the first found no value.
    auto value = query->evalValue(options);
    if (!value) {
        err << "edgectl policy eval: " << value.error().what() << "\n";
        return 1;
    }
    std::string results;
    if (*value) {
        results = fmt::format(R"({{"expressions":[{{"value":{},"text":{}}}]}})", (*value)->toJson(),
                              Value::string(args.query).toJson());
    } else {
        auto rs = query->eval(options);
        if (!rs) {
            err << "edgectl policy eval: " << rs.error().what() << "\n";
            return 1;
        }
        for (const auto& b : *rs) {
            policy::Object bindings;
            for (const auto& [name, v] : b) bindings.insert_or_assign(Value::string(name), v);
            if (!results.empty()) results += ",";
            results += fmt::format(R"({{"expressions":[{{"value":true,"text":{}}}],"bindings":{}}})",
                                   Value::string(args.query).toJson(), Value::object(std::move(bindings)).toJson());
        }
    }
    if (results.empty()) {
        out << "{}\n";
        return 0;
    }
    out << "{\"result\":[" << results << "]}\n";
    return 0;
}

int policyTest(const std::vector<std::filesystem::path>& paths, bool verbose, std::ostream& out, std::ostream& err) {
    auto loaded = load(paths);
    if (!loaded) {
        err << "edgectl policy test: " << loaded.error().what() << "\n";
        return 2;
    }
    auto compiled = policy::Policy::compile(loaded->modules);
    if (!compiled) {
        err << "edgectl policy test: " << compiled.error().what() << "\n";
        return 2;
    }
    int passed = 0;
    int failed = 0;
    for (const auto& name : (*compiled)->testRules()) {
        const auto start = std::chrono::steady_clock::now();
        auto query = (*compiled)->prepare(name);
        std::string outcome;
        if (!query) {
            outcome = "ERROR: " + query.error().what();
        } else {
            policy::EvalOptions options;
            options.data = loaded->data;
            options.timeout = std::chrono::seconds(30);
            auto v = query->evalValue(options);
            if (!v) outcome = "ERROR: " + v.error().what();
            else if (!*v) outcome = "FAIL (undefined)";
            else if ((*v)->isFalse()) outcome = "FAIL";
            else outcome = "PASS";
        }
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
        if (outcome == "PASS") ++passed;
        else ++failed;
        if (verbose || outcome != "PASS") out << fmt::format("{}: {} ({} µs)\n", name, outcome, us.count());
    }
    out << "--------------------------------------------------------------------------------\n";
    if (failed == 0) out << fmt::format("PASS: {}/{}\n", passed, passed);
    else out << fmt::format("PASS: {}/{}\nFAIL: {}/{}\n", passed, passed + failed, failed, passed + failed);
    return failed == 0 ? 0 : 1;
}

}  // namespace edge::controlplane
