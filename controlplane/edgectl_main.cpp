// edgectl: the operator's CLI over the control plane's HTTP API.
#include <chrono>
#include <cstdlib>
#include <thread>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "controlplane/policy_cli.hpp"
#include "shared/bundle/bundle.hpp"
#include "shared/core/clock.hpp"
#include "shared/http/http.hpp"

namespace {

using namespace edge;

std::string cell(const nlohmann::json& j) {
    if (j.is_null()) return "-";
    if (j.is_string()) return j.get<std::string>();
    if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
    return j.dump();
}

std::string errorCell(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("code")) return "-";
    return cell(j["code"]);
}

/// Rows as columns aligned on the widest cell, two spaces apart; the first row is the header.
void printRows(const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> widths(rows[0].size(), 0);
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += row[i];
            if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
        }
        std::cout << line << "\n";
    }
}

void printTable(const nlohmann::json& body) {
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"DEVICE", "GROUP", "DESIRED", "APPLIED", "SYNC", "ONLINE", "ATTESTATION", "LAST SEEN", "ERROR"});
    for (const auto& d : body.value("devices", nlohmann::json::array())) {
        rows.push_back({cell(d["id"]), cell(d["group"]), cell(d["desired_version"]),
                        cell(d["applied_version"]), cell(d["in_sync"]), cell(d["online"]),
                        cell(d.value("attestation", nlohmann::json())), cell(d["last_seen"]),
                        errorCell(d["last_error"])});
    }
    printRows(rows);
}

/// One line per decision record, then the chain report; "" for a value not in the record.
void printDecisions(const nlohmann::json& body) {
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"SEQ", "TIME", "KIND", "BUNDLE", "SET", "RESULT", "ID"});
    for (const auto& r : body.value("records", nlohmann::json::array())) {
        std::string result = "-";
        if (r.contains("error")) {
            result = "error " + cell(r["error"].value("status", nlohmann::json()));
        } else if (r.value("kind", "") == "admit" && r.contains("result")) {
            result = r["result"].value("allowed", false) ? "allowed" : "denied";
        } else if (r.contains("defined")) {
            result = r.value("defined", false) ? "defined" : "undefined";
        }
        const auto time_ms = r.value("time_ms", std::int64_t{0});
        rows.push_back({cell(r["seq"]), isoTime(time_ms / 1000), r.value("kind", "-") + (r.contains("path") ? " " + r.value("path", "") : ""),
                        cell(r.value("bundle_version", nlohmann::json())), r.value("policy_set", "-"), result,
                        r.value("id", "-")});
    }
    printRows(rows);
    const auto& chain = body["chain"];
    std::cout << fmt::format("chain: {} records stored, seq {}..{}, {} gaps, {} dropped by the device (queue full): {}\n",
                             cell(chain["records"]), cell(chain["first_seq"]), cell(chain["last_seq"]),
                             chain["gaps"].size(), cell(chain["dropped_reported"]),
                             chain.value("verified", false) ? "verified" : "NOT VERIFIED");
    for (const auto& problem : chain.value("problems", nlohmann::json::array())) {
        std::cout << "  problem: " << problem.get<std::string>() << "\n";
    }
}

/// Calls the API; prints a clear message and returns nullopt on any failure.
std::optional<nlohmann::json> call(const std::string& method, const std::string& server,
                                   const std::string& path) {
    auto response = http::request(method, server + path);
    if (!response) {
        std::cerr << "edgectl: cannot reach the control plane at " << server << ": "
                  << response.error().what() << "\n";
        return std::nullopt;
    }
    auto body = nlohmann::json::parse(response->body, nullptr, false);
    if (response->status / 100 != 2) {
        std::string message = response->body;
        if (!body.is_discarded() && body.contains("error")) {
            message = body["error"].value("message", message);
        }
        std::cerr << "edgectl: " << method << " " << path << ": HTTP " << response->status << ": "
                  << message << "\n";
        return std::nullopt;
    }
    if (body.is_discarded()) {
        std::cerr << "edgectl: the control plane sent a body that is not JSON\n";
        return std::nullopt;
    }
    return body;
}

void printAttestation(const nlohmann::json& a) {
    std::cout << "device:      " << cell(a["device"]) << "\n"
              << "state:       " << cell(a["state"]);
    if (!a.value("reason", "").empty()) std::cout << " (" << a.value("reason", "") << ")";
    std::cout << "\n"
              << "since:       " << cell(a.value("at", nlohmann::json())) << "\n"
              << "last quote:  " << cell(a.value("last_quote_at", nlohmann::json())) << "\n"
              << "AK name:     " << cell(a.value("ak_name", nlohmann::json())) << "\n";
    const auto pcrs = a.value("pcrs", nlohmann::json::object());
    for (const auto& [index, value] : pcrs.items()) {
        std::cout << "PCR " << index << ":      " << cell(value) << "\n";
    }
    if (a.contains("log") && a["log"].is_object()) {
        std::cout << "measurements (from " << cell(a["log"]["baseline"]).substr(0, 16) << "…):\n";
        for (const auto& e : a["log"].value("entries", nlohmann::json::array())) {
            std::cout << "  " << cell(e["kind"]) << " " << cell(e["name"]) << " " << cell(e["version"]) << " "
                      << cell(e["digest"]).substr(0, 16) << "…\n";
        }
    }
    if (a.value("rejected", 0) > 0) {
        std::cout << "refused messages: " << a.value("rejected", 0) << " (last: " << a.value("last_rejection", "")
                  << ")\n";
    }
}

/// `edgectl attest`: challenge (or re-enroll) and wait for the verdict. Exit 0 trusted, 3 not.
int attest(const std::string& server, const std::string& id, bool reenroll, int timeout_s, bool as_json) {
    const auto path = fmt::format("/v1/devices/{}/attestation", id);
    auto before = call("GET", server, path);
    if (!before) return 1;
    const auto results_before = before->value("results", std::uint64_t{0});
    if (!call("POST", server, fmt::format("/v1/devices/{}/{}", id, reenroll ? "reenroll" : "attest"))) return 1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        auto now = call("GET", server, path);
        if (!now) return 1;
        const auto state = now->value("state", "");
        const bool settled = state == "trusted" || state == "quarantined" || state == "refused";
        if (now->value("results", std::uint64_t{0}) > results_before && settled &&
            !now->value("challenge_outstanding", false)) {
            if (as_json) {
                std::cout << now->dump(2) << "\n";
            } else {
                printAttestation(*now);
            }
            return state == "trusted" ? 0 : 3;
        }
    }
    std::cerr << "edgectl: no attestation result for '" << id << "' within " << timeout_s << " s\n";
    return 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"edgectl: operate an edge fleet through its control plane"};
    app.require_subcommand(1);
    const char* env_server = std::getenv("EDGECTL_SERVER");
    std::string server = env_server ? env_server : "http://127.0.0.1:8080";
    app.add_option("-s,--server", server, "control plane URL (or EDGECTL_SERVER)")
        ->capture_default_str();

    std::string output = "table";
    auto* devices = app.add_subcommand("devices", "list devices: desired and applied versions");
    devices->add_option("-o,--output", output, "table or json")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
    auto* reload = app.add_subcommand("reload", "re-read the fleet directory and publish changes");
    int wait_seconds = 60;
    auto* wait = app.add_subcommand("wait", "wait until every device applied its desired version");
    wait->add_option("-t,--timeout", wait_seconds, "seconds")->capture_default_str();

    std::string device_id;
    std::uint64_t after = 0;
    std::size_t limit = 100;
    auto* decisions = app.add_subcommand(
        "decisions", "a device's decision log as the control plane stored it, and its chain check "
                     "(exit 3 when the chain does not verify)");
    decisions->add_option("device", device_id, "device id")->required();
    decisions->add_option("--after", after, "only records after this seq")->capture_default_str();
    decisions->add_option("--limit", limit, "at most this many records (up to 10000)")
        ->capture_default_str()
        ->check(CLI::Range(std::size_t{0}, std::size_t{10000}));
    decisions->add_option("-o,--output", output, "table or json")->check(CLI::IsMember({"table", "json"}));

    std::string retry_id;
    auto* retry_cmd = app.add_subcommand(
        "retry", "publish a device's bundle again so that what failed under it (firmware, model) is tried again");
    retry_cmd->add_option("device", retry_id, "device id")->required();
    std::string attest_id;
    bool reenroll = false;
    int attest_timeout = 30;
    auto* attest_cmd = app.add_subcommand("attest", "challenge a device's TPM now and show the verdict");
    attest_cmd->add_option("device", attest_id, "device id")->required();
    attest_cmd->add_flag("--reenroll", reenroll,
                         "accept the device's present state again (after an investigation), then attest");
    attest_cmd->add_option("--timeout", attest_timeout, "seconds to wait for the verdict")->capture_default_str();
    attest_cmd->add_option("-o,--output", output, "table or json")->check(CLI::IsMember({"table", "json"}));
    auto* policy_cmd = app.add_subcommand("policy", "evaluate and test Rego policies locally");
    policy_cmd->require_subcommand(1);
    controlplane::PolicyEvalArgs eval_args;
    std::vector<std::string> eval_paths;
    std::string input_path;
    auto* eval_cmd = policy_cmd->add_subcommand("eval", "evaluate a query, like opa eval");
    eval_cmd->add_option("-d,--data", eval_paths, ".rego/.json/.yaml files or folders")->required();
    eval_cmd->add_option("-i,--input", input_path, "input document (JSON or YAML)");
    eval_cmd->add_flag("--strict-builtin-errors", eval_args.strict, "builtin errors fail the query");
    eval_cmd->add_option("query", eval_args.query, "Rego query, e.g. data.finops.deny")->required();
    std::vector<std::string> test_paths;
    bool test_verbose = false;
    auto* test_cmd = policy_cmd->add_subcommand("test", "run test_* rules, like opa test");
    test_cmd->add_option("paths", test_paths, "files or folders")->required();
    test_cmd->add_flag("-v,--verbose", test_verbose, "print every test");

    CLI11_PARSE(app, argc, argv);
    if (*eval_cmd) {
        for (const auto& p : eval_paths) eval_args.paths.emplace_back(p);
        if (!input_path.empty()) eval_args.input = input_path;
        return controlplane::policyEval(eval_args, std::cout, std::cerr);
    }
    if (*test_cmd) {
        std::vector<std::filesystem::path> paths(test_paths.begin(), test_paths.end());
        return controlplane::policyTest(paths, test_verbose, std::cout, std::cerr);
    }
    while (!server.empty() && server.back() == '/') server.pop_back();

    if (*devices) {
        auto body = call("GET", server, "/v1/devices");
        if (!body) return 1;
        if (output == "json") {
            std::cout << body->dump(2) << "\n";
        } else {
            printTable(*body);
        }
        return 0;
    }
    if (*wait) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
        std::size_t behind = 0;
        while (true) {
            auto response = http::request("GET", server + "/v1/devices");
            if (response && response->status == 200) {
                auto body = nlohmann::json::parse(response->body, nullptr, false);
                if (!body.is_discarded()) {
                    behind = 0;
                    for (const auto& d : body.value("devices", nlohmann::json::array())) {
                        if (!d.value("in_sync", false)) ++behind;
                    }
                    if (behind == 0) {
                        std::cout << "all devices in sync\n";
                        return 0;
                    }
                }
            }
            if (std::chrono::steady_clock::now() >= deadline) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(250));
        }
        std::cerr << "edgectl: timed out after " << wait_seconds << " s; " << behind
                  << " devices not in sync\n";
        return 1;
    }
    if (*decisions) {
        if (!bundle::isValidDeviceId(device_id)) {
            std::cerr << "edgectl: '" << device_id << "' is not a device id ([A-Za-z0-9._-]{1,64})\n";
            return 2;
        }
        auto body = call("GET", server, fmt::format("/v1/devices/{}/decisions?after={}&limit={}", device_id, after, limit));
        if (!body) return 1;
        if (output == "json") {
            std::cout << body->dump(2) << "\n";
        } else {
            printDecisions(*body);
        }
        return (*body)["chain"].value("verified", false) ? 0 : 3;
    }
    if (*retry_cmd) {
        if (!bundle::isValidDeviceId(retry_id)) {
            std::cerr << "edgectl: '" << retry_id << "' is not a device id ([A-Za-z0-9._-]{1,64})\n";
            return 2;
        }
        auto body = call("POST", server, fmt::format("/v1/devices/{}/retry", retry_id));
        if (!body) return 1;
        std::cout << retry_id << ": bundle v" << body->value("version", std::uint64_t{0}) << " published (retry "
                  << body->value("retry", std::uint64_t{0}) << ")\n";
        return 0;
    }
    if (*attest_cmd) {
        if (!bundle::isValidDeviceId(attest_id)) {
            std::cerr << "edgectl: '" << attest_id << "' is not a device id ([A-Za-z0-9._-]{1,64})\n";
            return 2;
        }
        return attest(server, attest_id, reenroll, attest_timeout, output == "json");
    }
    if (*reload) {
        auto body = call("POST", server, "/v1/reload");
        if (!body) return 1;
        std::cout << "fleet " << body->value("fleet_revision", "") << ": "
                  << (*body)["changed"].size() << " devices changed, " << (*body)["removed"].size()
                  << " removed\n";
        for (const auto& id : (*body)["changed"]) std::cout << "  changed " << id.get<std::string>() << "\n";
        for (const auto& id : (*body)["removed"]) std::cout << "  removed " << id.get<std::string>() << "\n";
        return 0;
    }
    return 0;
}
