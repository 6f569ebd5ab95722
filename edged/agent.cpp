#include "edged/agent.hpp"

#include <fmt/format.h>

#include "security/bundle_signing.hpp"
#include "security/crypto.hpp"
#include "security/errors.hpp"
#include "shared/core/log.hpp"
#include "shared/core/text.hpp"

namespace edge::edged {

std::string offlineWill(const std::string& device_id) {
    return jsonText(nlohmann::json{{"device", device_id}, {"state", "offline"}});
}

std::string errorCodeName(const Error& error) {
    if (error.code().category() == security::securityCategory()) {
        switch (static_cast<security::SecurityErrc>(error.code().value())) {
            case security::SecurityErrc::kMalformed: return "malformed";
            case security::SecurityErrc::kBadSignature: return "bad_signature";
            case security::SecurityErrc::kThresholdNotMet: return "threshold_not_met";
            case security::SecurityErrc::kWrongDevice: return "wrong_device";
            case security::SecurityErrc::kStaleVersion: return "stale_version";
            case security::SecurityErrc::kExpired: return "expired";
            case security::SecurityErrc::kKey:
            case security::SecurityErrc::kCrypto:
            case security::SecurityErrc::kTrustRoot: return "security";
        }
    }
    if (error.code() == SharedErrc::kStore) return "store";
    return "internal";
}

EdgeAgent::EdgeAgent(EventLoop& loop, const Clock& clock, store::Store& store,
                     mqtt::MqttClient* mqtt, security::TrustRoot trust_root, AgentSettings settings)
    : loop_(loop),
      clock_(clock),
      store_(store),
      mqtt_(mqtt),
      trust_root_(std::move(trust_root)),
      settings_(std::move(settings)) {}

Status EdgeAgent::load() {
    auto applied = loadApplied(store_);
    if (!applied) return fail(std::move(applied.error()).wrap("load applied state"));
    applied_ = std::move(*applied);
    auto contact = loadLastContact(store_);
    if (!contact) return fail(std::move(contact.error()).wrap("load last contact"));
    last_contact_ = std::max(*contact, applied_ ? applied_->applied_at : 0);
    if (!applied_) {
        log::info("no bundle applied yet");
        return {};
    }
    log::info("applied bundle v{} ({}) loaded from the store", applied_->version,
              applied_->bundle_digest);
    auto stored = loadBundle(store_);
    if (!stored) return fail(std::move(stored.error()).wrap("load applied bundle"));
    if (!*stored) return fail(SharedErrc::kStore, "applied state names a bundle the store does not hold");
    auto sets = PolicySets::build(**stored);
    if (!sets) return fail(std::move(sets.error()).wrap("compile the applied bundle's policies"));
    if (hooks_.policies_changed) hooks_.policies_changed(*sets);
    if (hooks_.bundle_applied) {
        hooks_.bundle_applied(std::make_shared<const bundle::Bundle>(std::move(**stored)));
    }
    return {};
}

std::int64_t EdgeAgent::lastContact() const { return online() ? clock_.unixSeconds() : last_contact_; }

void EdgeAgent::recordContact() {
    last_contact_ = clock_.unixSeconds();
    if (auto st = storeLastContact(store_, last_contact_); !st) {
        log::warn("last contact not stored: {}", st.error().what());
    }
}

void EdgeAgent::start() {
    if (mqtt_ == nullptr) {
        log::info("no broker configured: running offline on the stored state");
        startOffline();
        return;
    }
    const auto desired = fmt::format("{}/dev/{}/desired", settings_.topic_prefix, settings_.device_id);
    const auto ack = fmt::format("{}/dev/{}/ack", settings_.topic_prefix, settings_.device_id);
    const auto attest = fmt::format("{}/dev/{}/attest/", settings_.topic_prefix, settings_.device_id);
    mqtt_->onMessage([this, desired, ack, attest](const mqtt::Message& message) {
        if (message.topic == ack) {
            if (hooks_.ack) hooks_.ack(message.payload);
            return;
        }
        if (message.topic.starts_with(attest)) {
            if (hooks_.attest_message) {
                hooks_.attest_message(message.topic.substr(attest.size() - std::string_view("attest/").size()),
                                      message.payload);
            }
            return;
        }
        if (message.topic != desired) return;
        if (message.payload.empty()) return;  // cleared by the control plane
        if (auto st = handleDesired(message.payload); !st) {
            log::warn("bundle rejected: {}", st.error().what());
        }
    });
    mqtt_->onConnectionChange([this](bool connected) {
        recordContact();
        if (connected) {
            log::info("connected to the broker");
            publishStatus();
        } else {
            log::warn("broker connection lost; enforcing the stored state");
        }
        if (hooks_.connection_changed) hooks_.connection_changed(connected, last_contact_);
    });
    mqtt_->subscribe(desired, 1);
    mqtt_->subscribe(ack, 1);
    mqtt_->subscribe(attest + "+", 1);
    mqtt_->start();
    heartbeat_ = loop_.after(settings_.status_interval, [this] { heartbeat(); });
}

void EdgeAgent::startOffline() {
    heartbeat_ = loop_.after(settings_.status_interval, [this] { heartbeat(); });
}

void EdgeAgent::heartbeat() {
    if (online()) recordContact();
    if (hooks_.heartbeat) hooks_.heartbeat();
    publishStatus();
    heartbeat_ = loop_.after(settings_.status_interval, [this] { heartbeat(); });
}

void EdgeAgent::stop() {
    heartbeat_.reset();
    if (mqtt_ == nullptr) return;
    if (mqtt_->connected()) {
        const auto topic = fmt::format("{}/dev/{}/status", settings_.topic_prefix, settings_.device_id);
        (void)mqtt_->publish({topic, jsonText(statusJson(false)), 1, true});
    }
    mqtt_->stop();
}

Status EdgeAgent::handleDesired(std::string_view payload) {
    security::VerifyContext ctx{settings_.device_id, applied_ ? applied_->version : 0,
                                clock_.unixSeconds()};
    auto verified = security::verifyBundle(payload, trust_root_, ctx);
    if (!verified) {
        // The retained bundle we already applied comes back on every reconnect: not an error.
        if (applied_ && verified.error().code() == security::SecurityErrc::kStaleVersion) {
            auto again = security::verifyBundle(
                payload, trust_root_,
                {settings_.device_id, applied_->version - 1, clock_.unixSeconds()});
            if (again && "sha256:" + security::sha256Hex(bundle::toJson(*again)) ==
                             applied_->bundle_digest) {
                return {};
            }
        }
        auto err = std::move(verified.error()).wrap("verify bundle");
        last_error_ = RejectInfo{errorCodeName(err), err.what(), clock_.unixSeconds()};
        rejected();
        return fail(std::move(err));
    }
    const auto& b = *verified;
    // Policies that do not compile would leave the device enforcing nothing: refuse the bundle.
    auto sets = PolicySets::build(b);
    if (!sets) {
        auto err = std::move(sets.error()).wrap("compile bundle policies");
        last_error_ = RejectInfo{"bad_policy", err.what(), clock_.unixSeconds()};
        rejected();
        return fail(std::move(err));
    }
    AppliedState next;
    next.version = b.version;
    next.bundle_digest = "sha256:" + security::sha256Hex(bundle::toJson(b));
    next.source = b.source;
    next.applied_at = clock_.unixSeconds();
    next.expires_at = b.expires_at;
    for (const auto& [name, text] : b.policies) next.policies.push_back(name);
    if (auto st = commitApply(store_, b, payload, next); !st) {
        auto err = std::move(st.error()).wrap("store bundle");
        last_error_ = RejectInfo{errorCodeName(err), err.what(), clock_.unixSeconds()};
        rejected();
        return fail(std::move(err));
    }
    applied_ = std::move(next);
    last_error_.reset();
    if (hooks_.policies_changed) hooks_.policies_changed(*sets);
    log::info("applied bundle v{} ({}, {} policies, {} artifacts)", applied_->version, applied_->bundle_digest,
              applied_->policies.size(), b.artifacts.size());
    if (hooks_.bundle_applied) hooks_.bundle_applied(std::make_shared<const bundle::Bundle>(b));
    publishStatus();
    return {};
}

nlohmann::json EdgeAgent::statusJson(bool online) const {
    nlohmann::json j = {{"device", settings_.device_id},
                        {"state", online ? "online" : "offline"},
                        {"time", clock_.unixSeconds()}};
    if (applied_) {
        j["applied_version"] = applied_->version;
        j["bundle_digest"] = applied_->bundle_digest;
        j["source"] = applied_->source;
        j["applied_at"] = applied_->applied_at;
        j["expires_at"] = applied_->expires_at;
    } else {
        j["applied_version"] = nullptr;
    }
    j["last_contact"] = lastContact();
    if (hooks_.extend_status) hooks_.extend_status(j);
    if (last_error_) {
        j["last_error"] = {{"code", last_error_->code},
                           {"message", last_error_->message},
                           {"at", last_error_->at}};
    } else {
        j["last_error"] = nullptr;
    }
    return j;
}

void EdgeAgent::rejected() {
    if (hooks_.bundle_rejected) hooks_.bundle_rejected(*last_error_);
    publishStatus();
}

void EdgeAgent::publishStatus() {
    if (mqtt_ == nullptr || !mqtt_->connected()) return;  // republished on connect
    const auto topic = fmt::format("{}/dev/{}/status", settings_.topic_prefix, settings_.device_id);
    if (auto st = mqtt_->publish({topic, jsonText(statusJson(true)), 1, true}); !st) {
        log::warn("status not published: {}", st.error().what());
    }
}

}  // namespace edge::edged
