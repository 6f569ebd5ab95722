#include "edged/decision_service.hpp"

#include <random>

#include <fmt/format.h>

#include "security/crypto.hpp"
#include "shared/core/log.hpp"

namespace edge::edged {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxLoggedResultBytes = 4096;

std::string jsonString(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

/// JSON text the engine produced, as a JSON value for a log record (null if it does not parse).
json logged(const std::string& text) {
    auto j = json::parse(text, nullptr, false);
    return j.is_discarded() ? json(nullptr) : j;
}

http::Response jsonResponse(int status, const json& body) {
    return {status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"};
}

policy::Value toValue(const json& j) {
    auto v = policy::parseJson(j.dump(-1, ' ', false, json::error_handler_t::replace));
    return v ? *v : policy::Value::emptyObject();
}

/// The input of a request body: the body itself, or X when the body is {"input": X}.
Result<std::optional<policy::Value>> parseInput(std::string_view body, bool required) {
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        if (required) return fail(SharedErrc::kInvalidArgument, "the body must be a JSON object");
        return std::optional<policy::Value>{};
    }
    auto parsed = policy::parseJson(body);
    if (!parsed) return fail(SharedErrc::kInvalidArgument, fmt::format("body: {}", parsed.error().message()));
    if (!parsed->isObject()) return fail(SharedErrc::kInvalidArgument, "the body must be a JSON object");
    if (parsed->asObject().size() == 1) {
        if (const auto* input = parsed->get("input")) return std::optional<policy::Value>(*input);
    }
    if (!required) {
        // The data API takes {"input": …} only, like OPA.
        if (parsed->asObject().empty()) return std::optional<policy::Value>{};
        return fail(SharedErrc::kInvalidArgument, "the body must be {\"input\": …}");
    }
    return std::optional<policy::Value>(std::move(*parsed));
}

/// Reasons from one entry point's value: a set or array of messages, a string, or true.
void collectReasons(const std::string& entry, const policy::Value& v, std::vector<std::string>& out) {
    const auto add = [&](const policy::Value& item) {
        out.push_back(item.isString() ? item.asString() : item.toJson());
    };
    switch (v.kind()) {
        case policy::Kind::kSet:
            for (const auto& item : v.asSet()) add(item);
            break;
        case policy::Kind::kArray:
            for (const auto& item : v.asArray()) add(item);
            break;
        case policy::Kind::kBool:
            if (v.asBool()) out.push_back(fmt::format("denied by {}", entry));
            break;
        case policy::Kind::kString: out.push_back(v.asString()); break;
        case policy::Kind::kNull: break;
        default: out.push_back(fmt::format("{}: {}", entry, v.toJson())); break;
    }
}

std::string randomBootId() {
    std::random_device rd;
    return fmt::format("{:08x}", rd());
}

int evalErrorStatus(const Error& error) {
    return error.code() == policy::PolicyErrc::kLimit ? 503 : 500;
}

}  // namespace

DecisionService::DecisionService(const Clock& clock, Meter& meter, DurableQueue& decisions,
                                 DurableQueue& telemetry, DeviceInfo device, DecisionSettings settings)
    : clock_(clock),
      meter_(meter),
      decisions_(decisions),
      telemetry_(telemetry),
      device_(std::move(device)),
      settings_(settings),
      boot_id_(randomBootId()) {
    setAttestation("unavailable");
}

void DecisionService::setAttestation(const std::string& state) {
    device_value_ = toValue({{"id", device_.id},
                             {"labels", device_.labels},
                             {"hardware", device_.hardware},
                             {"attestation", {{"state", state}}}});
    eval_data_policies_ = nullptr;  // data.edge is rebuilt with it at the next evaluation
}

void DecisionService::setPolicies(std::shared_ptr<const PolicySets> policies) {
    policies_ = std::move(policies);
}

void DecisionService::setConnectivity(Connectivity connectivity) { connectivity_ = connectivity; }

std::int64_t DecisionService::offlineSeconds() const {
    if (connectivity_.online || connectivity_.last_contact == 0) return 0;
    return std::max<std::int64_t>(0, clock_.unixSeconds() - connectivity_.last_contact);
}

std::string DecisionService::activeSet() const {
    if (!policies_) return "";
    return policies_->select(connectivity_.online, offlineSeconds()).name;
}

const policy::Value& DecisionService::evalData() {
    const auto& usage = meter_.usageValue(policies_->enforcement.usage_windows);
    const auto offline = offlineSeconds();
    if (eval_data_policies_ == policies_.get() && eval_data_usage_gen_ == meter_.generation() &&
        eval_data_online_ == connectivity_.online && eval_data_offline_ == offline) {
        return eval_data_;
    }
    policy::Object connectivity;
    connectivity.emplace(policy::Value::string("online"), policy::Value::boolean(connectivity_.online));
    connectivity.emplace(policy::Value::string("offline_seconds"), policy::Value::number(offline));
    connectivity.emplace(policy::Value::string("last_contact"),
                         policy::Value::number(connectivity_.last_contact));
    policy::Object edge;
    edge.emplace(policy::Value::string("usage"), usage);
    edge.emplace(policy::Value::string("device"), device_value_);
    edge.emplace(policy::Value::string("connectivity"), policy::Value::object(std::move(connectivity)));
    policy::Object data = policies_->data.isObject() ? policies_->data.asObject() : policy::Object{};
    data.insert_or_assign(policy::Value::string("edge"), policy::Value::object(std::move(edge)));
    eval_data_ = policy::Value::object(std::move(data));
    eval_data_policies_ = policies_.get();
    eval_data_usage_gen_ = meter_.generation();
    eval_data_online_ = connectivity_.online;
    eval_data_offline_ = offline;
    return eval_data_;
}

std::optional<http::Response> DecisionService::logBehind() const {
    if (decisions_.pending() < settings_.max_uncommitted) return std::nullopt;
    return http::errorResponse(503, fmt::format("the decision log has {} decisions waiting for the disk; retry shortly",
                                                decisions_.pending()));
}

std::string DecisionService::nextDecisionId() const {
    return fmt::format("{}-{}-{}", device_.id, boot_id_, decisions_.headSeq() + 1);
}

void DecisionService::logDecision(json record) {
    ++decisions_made_;
    (void)decisions_.append(std::move(record));
}

http::Response DecisionService::admit(std::string_view body) {
    if (!policies_) return http::errorResponse(503, "no policy bundle applied yet: admission fails closed");
    if (auto behind = logBehind()) return *behind;
    auto input = parseInput(body, true);
    if (!input) return http::errorResponse(400, input.error().message());
    const auto& sets = *policies_;
    const auto& set = sets.select(connectivity_.online, offlineSeconds());
    policy::EvalOptions options;
    options.input = **input;
    options.data = evalData();
    options.timeout = settings_.eval_timeout;
    const auto input_text = (*input)->toJson();
    const auto id = nextDecisionId();
    json record = {{"id", id},
                   {"time_ms", clock_.unixMillis()},
                   {"kind", "admit"},
                   {"bundle_version", sets.bundle_version},
                   {"policy_set", set.name},
                   {"input_sha256", security::sha256Hex(input_text)}};
    if (sets.enforcement.log_input) record["input"] = logged(input_text);
    std::vector<std::string> reasons;
    for (const auto& [entry, query] : set.entrypoints) {
        auto value = query.evalValue(options);
        if (!value) {
            const auto status = evalErrorStatus(value.error());
            record["error"] = {{"status", status}, {"message", value.error().what()}};
            logDecision(std::move(record));
            return http::errorResponse(status, fmt::format("{}: {}", entry, value.error().what()));
        }
        if (*value) collectReasons(entry, **value, reasons);
    }
    const bool allowed = reasons.empty();
    record["result"] = {{"allowed", allowed}, {"reasons", reasons}};  // copied: also answered
    logDecision(std::move(record));
    // Written directly (the hot path): the same JSON nlohmann would give, keys sorted.
    std::string out = fmt::format(R"({{"allowed":{},"bundle_version":{},"decision_id":{},"policy_set":{},"reasons":[)",
                                  allowed, sets.bundle_version, jsonString(id), jsonString(set.name));
    for (std::size_t i = 0; i < reasons.size(); ++i) {
        if (i > 0) out += ',';
        out += jsonString(reasons[i]);
    }
    out += "]}\n";
    return {200, "application/json", std::move(out)};
}

http::Response DecisionService::data(std::string_view path, std::string_view body) {
    if (!policies_) return http::errorResponse(503, "no policy bundle applied yet");
    if (auto behind = logBehind()) return *behind;
    auto input = parseInput(body, false);
    if (!input) return http::errorResponse(400, input.error().message());
    const auto& sets = *policies_;
    const auto& set = sets.select(connectivity_.online, offlineSeconds());
    auto query = set.dataQuery(path);
    if (!query) return http::errorResponse(400, fmt::format("path '{}': {}", path, query.error().what()));
    policy::EvalOptions options;
    options.input = *input;
    options.data = evalData();
    options.timeout = settings_.eval_timeout;
    const auto id = nextDecisionId();
    json record = {{"id", id},
                   {"time_ms", clock_.unixMillis()},
                   {"kind", "data"},
                   {"path", std::string(path)},
                   {"bundle_version", sets.bundle_version},
                   {"policy_set", set.name}};
    if (*input) {
        const auto input_text = (*input)->toJson();
        record["input_sha256"] = security::sha256Hex(input_text);
        if (sets.enforcement.log_input) record["input"] = logged(input_text);
    }
    auto value = query->evalValue(options);
    if (!value) {
        const auto status = evalErrorStatus(value.error());
        record["error"] = {{"status", status}, {"message", value.error().what()}};
        logDecision(std::move(record));
        return http::errorResponse(status, value.error().what());
    }
    if (!*value) {
        record["result"] = nullptr;
        record["defined"] = false;
        logDecision(std::move(record));
        return jsonResponse(200, {{"decision_id", id}});
    }
    const auto result_text = (*value)->toJson();
    record["defined"] = true;
    if (result_text.size() <= kMaxLoggedResultBytes) {
        record["result"] = logged(result_text);
    } else {
        record["result_sha256"] = security::sha256Hex(result_text);
    }
    logDecision(std::move(record));
    return {200, "application/json",
            fmt::format("{{\"decision_id\":{},\"result\":{}}}\n", json(id).dump(), result_text)};
}

http::Response DecisionService::reportUsage(std::string_view body) {
    auto report = parseUsageReport(body);
    if (!report) return http::errorResponse(400, report.error().message());
    meter_.record(*report);
    auto event = toJson(*report);
    event["type"] = "usage";
    event["time_ms"] = clock_.unixMillis();
    (void)telemetry_.append(std::move(event));
    return jsonResponse(200, {{"recorded", true}});
}

http::Response DecisionService::handle(const http::Request& request) {
    const auto& path = request.path;
    if (path == "/v1/admit") {
        if (request.method != "POST") return http::errorResponse(405, "use POST");
        return admit(request.body);
    }
    if (path == "/v1/data" || path.starts_with("/v1/data/")) {
        if (request.method != "POST" && request.method != "GET") return http::errorResponse(405, "use GET or POST");
        const std::string_view rest = path.size() > 8 ? std::string_view(path).substr(9) : std::string_view{};
        return data(rest, request.method == "POST" ? std::string_view(request.body) : std::string_view{});
    }
    if (path == "/v1/usage") {
        if (request.method == "POST") return reportUsage(request.body);
        if (request.method != "GET") return http::errorResponse(405, "use GET or POST");
        auto totals = meter_.totalsJson();
        totals["windows"] = policies_ ? policies_->enforcement.usage_windows
                                      : bundle::Enforcement{}.usage_windows;
        return jsonResponse(200, totals);
    }
    if (path == "/health") {
        if (request.method != "GET") return http::errorResponse(405, "use GET");
        return jsonResponse(200, {{"status", "ok"},
                                  {"bundle_version", policies_ ? json(policies_->bundle_version) : json(nullptr)},
                                  {"policy_set", activeSet()},
                                  {"online", connectivity_.online}});
    }
    return http::errorResponse(404, "no such endpoint");
}

}  // namespace edge::edged
