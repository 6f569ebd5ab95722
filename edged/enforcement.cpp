#include "edged/enforcement.hpp"

#include <fstream>

#include "shared/core/log.hpp"

namespace edge::edged {
namespace {

/// Resident set size in KiB, from /proc/self/status (0 where unavailable).
std::int64_t residentKiB() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("VmRSS:")) return std::strtoll(line.c_str() + 6, nullptr, 10);
    }
    return 0;
}

}  // namespace

nlohmann::json queueJson(const DurableQueue& queue) {
    return {{"head_seq", queue.headSeq()},
            {"committed_seq", queue.committedSeq()},
            {"acked_seq", queue.acked()},
            {"unacked", queue.headSeq() - queue.acked()},
            {"bytes", queue.bytes()},
            {"dropped", queue.dropped()}};
}

LocalEnforcement::LocalEnforcement(EventLoop& loop, const Clock& clock, store::Store& store,
                                   mqtt::MqttClient* mqtt, EnforcementSettings settings)
    : clock_(clock),
      settings_(std::move(settings)),
      writer_(store, loop, settings_.commit_interval),
      decisions_(store, writer_, {"decisions", settings_.decisions_max_bytes}),
      telemetry_(store, writer_, {"telemetry", settings_.telemetry_max_bytes}),
      meter_(store, writer_, clock) {
    service_ = std::make_unique<DecisionService>(clock, meter_, decisions_, telemetry_,
                                                 settings_.device, settings_.decision);
    if (mqtt != nullptr) {
        decisions_pub_ = std::make_unique<StreamPublisher>(loop, *mqtt, decisions_, settings_.device.id,
                                                           settings_.topic_prefix, "decisions",
                                                           settings_.publisher);
        telemetry_pub_ = std::make_unique<StreamPublisher>(loop, *mqtt, telemetry_, settings_.device.id,
                                                           settings_.topic_prefix, "telemetry",
                                                           settings_.publisher);
        decisions_.onCommitted([this] { decisions_pub_->pump(); });
        telemetry_.onCommitted([this] { telemetry_pub_->pump(); });
    }
}

LocalEnforcement::~LocalEnforcement() { flush(); }

Status LocalEnforcement::load() {
    if (auto st = decisions_.load(); !st) return fail(std::move(st.error()).wrap("load the decision log"));
    if (auto st = telemetry_.load(); !st) return fail(std::move(st.error()).wrap("load the telemetry queue"));
    if (auto st = meter_.load(); !st) return fail(st.error());
    if (decisions_.dropped() > 0 || telemetry_.dropped() > 0) {
        log::warn("queues full in the past: {} decisions and {} telemetry records were dropped",
                  decisions_.dropped(), telemetry_.dropped());
    }
    return {};
}

AgentHooks LocalEnforcement::hooks() {
    AgentHooks h;
    h.policies_changed = [this](std::shared_ptr<const PolicySets> sets) {
        service_->setPolicies(std::move(sets));
        last_set_ = service_->activeSet();
    };
    h.connection_changed = [this](bool online, std::int64_t last_contact) {
        service_->setConnectivity({online, last_contact});
        if (decisions_pub_) decisions_pub_->connectionChanged(online);
        if (telemetry_pub_) telemetry_pub_->connectionChanged(online);
        heartbeat();  // logs a switch back from the fail-safe set at once
    };
    h.ack = [this](const std::string& payload) {
        auto ack = parseAck(payload);
        if (!ack) {
            log::warn("ignored ack: {}", ack.error().what());
            return;
        }
        if (ack->first == "decisions" && decisions_pub_) decisions_pub_->acknowledged(ack->second);
        if (ack->first == "telemetry" && telemetry_pub_) telemetry_pub_->acknowledged(ack->second);
    };
    h.extend_status = [this](nlohmann::json& status) { status["enforcement"] = statusJson(); };
    h.bundle_rejected = [this](const RejectInfo& info) {
        (void)telemetry_.append({{"type", "error"},
                                 {"time_ms", clock_.unixMillis()},
                                 {"code", info.code},
                                 {"message", info.message}});
    };
    h.heartbeat = [this] { heartbeat(); };
    return h;
}

void LocalEnforcement::heartbeat() {
    const auto set = service_->activeSet();
    if (set != last_set_ && !last_set_.empty()) {
        log::warn("policy set switched from '{}' to '{}' (offline {} s)", last_set_, set,
                  service_->offlineSeconds());
        (void)telemetry_.append({{"type", "policy_set"},
                                 {"time_ms", clock_.unixMillis()},
                                 {"from", last_set_},
                                 {"to", set},
                                 {"offline_seconds", service_->offlineSeconds()}});
    }
    last_set_ = set;
    (void)telemetry_.append({{"type", "health"},
                             {"time_ms", clock_.unixMillis()},
                             {"rss_kib", residentKiB()},
                             {"decisions", service_->decisionsMade()},
                             {"policy_set", set},
                             {"online", service_->connectivity().online},
                             {"decisions_dropped", decisions_.dropped()},
                             {"telemetry_dropped", telemetry_.dropped()}});
}

nlohmann::json LocalEnforcement::statusJson() const {
    const auto& c = service_->connectivity();
    return {{"connectivity",
             {{"online", c.online},
              {"last_contact", c.last_contact},
              {"offline_seconds", service_->offlineSeconds()}}},
            {"policy_set", service_->activeSet()},
            {"decisions_made", service_->decisionsMade()},
            {"queues", {{"decisions", queueJson(decisions_)}, {"telemetry", queueJson(telemetry_)}}}};
}

void LocalEnforcement::flush() { writer_.flush(); }

}  // namespace edge::edged
