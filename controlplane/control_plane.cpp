#include "controlplane/control_plane.hpp"

#include <charconv>

#include <fmt/format.h>

#include "security/bundle_signing.hpp"
#include "security/jws.hpp"
#include "shared/core/log.hpp"

namespace edge::controlplane {

ControlPlane::ControlPlane(EventLoop& loop, const Clock& clock, store::Store& store,
                           mqtt::MqttClient& mqtt, std::vector<security::PrivateKey> signing_keys,
                           Settings settings)
    : loop_(loop),
      clock_(clock),
      mqtt_(mqtt),
      keys_(std::move(signing_keys)),
      settings_(std::move(settings)),
      registry_(store),
      streams_(store) {}

ControlPlane::~ControlPlane() { stop(); }

std::string ControlPlane::topic(const std::string& id, std::string_view leaf) const {
    return fmt::format("{}/dev/{}/{}", settings_.topic_prefix, id, leaf);
}

Status ControlPlane::start() {
    if (auto st = registry_.load(); !st) return fail(std::move(st.error()).wrap("load registry"));
    if (attestation_) {
        // Bundles signed before this start (by an older control plane, say) may be what devices
        // run and measure: they count as published.
        for (const auto& [id, record] : registry_.desired()) {
            auto jws = security::jwsParse(record.jws);
            auto signed_bundle = jws ? bundle::fromJson(jws->payload) : fail(jws.error());
            if (signed_bundle) attestation_->onSigned(id, *signed_bundle);
        }
    }
    auto fleet = compileFleet(settings_.fleet_dir, settings_.artifacts);
    if (!fleet) return fail(fleet.error());
    auto report = apply(std::move(*fleet), false);
    if (!report) return fail(report.error());
    log::info("fleet {} loaded: {} devices, {} new bundles", report->revision,
              fleet_.devices.size(), report->changed.size());

    mqtt_.onMessage([this](const mqtt::Message& m) { onMessage(m); });
    mqtt_.onConnectionChange([this](bool connected) {
        if (!connected) {
            log::warn("broker connection lost");
            return;
        }
        // Retained messages may be gone (broker restarted without persistence): republish all.
        log::info("broker connected; publishing {} bundles", fleet_.devices.size());
        for (const auto& [id, spec] : fleet_.devices) publishDesired(id);
    });
    mqtt_.subscribe(fmt::format("{}/dev/+/status", settings_.topic_prefix), 1);
    mqtt_.subscribe(fmt::format("{}/dev/+/decisions", settings_.topic_prefix), 1);
    mqtt_.subscribe(fmt::format("{}/dev/+/telemetry", settings_.topic_prefix), 1);
    // Only what devices send: the control plane's own attest/* messages must not come back.
    for (const char* leaf : {"enroll", "activate", "quote"}) {
        mqtt_.subscribe(fmt::format("{}/dev/+/attest/{}", settings_.topic_prefix, leaf), 1);
    }
    mqtt_.start();
    refresh_timer_ = loop_.after(settings_.refresh_interval, [this] { refreshExpiring(); });
    return {};
}

void ControlPlane::stop() {
    refresh_timer_.reset();
    mqtt_.stop();
}

Result<ReloadReport> ControlPlane::reload() {
    auto fleet = compileFleet(settings_.fleet_dir, settings_.artifacts);
    if (!fleet) {
        log::error("fleet reload refused, keeping {}: {}", fleet_.revision, fleet.error().what());
        return fail(fleet.error());
    }
    auto report = apply(std::move(*fleet), false);
    if (!report) return report;
    log::info("fleet {} loaded: {} devices changed, {} removed", report->revision,
              report->changed.size(), report->removed.size());
    if (mqtt_.connected()) {
        for (const auto& id : report->changed) publishDesired(id);
    }
    for (const auto& id : report->removed) {
        // An empty retained message clears the device's desired topic on the broker.
        (void)mqtt_.publish({topic(id, "desired"), "", 1, true});
    }
    return report;
}

Result<ReloadReport> ControlPlane::apply(CompiledFleet fleet, bool force_refresh,
                                         const std::pair<std::string, std::uint64_t>& retry) {
    const auto now = clock_.unixSeconds();
    const auto ttl = settings_.bundle_ttl.count();
    std::map<std::string, DesiredRecord> changed;
    for (auto& [id, group_content] : fleet.bundles) {
        // A quarantined device gets no artifacts and a policy that admits nothing new.
        const auto quarantine = attestation_ ? attestation_->quarantined(id) : std::nullopt;
        auto content = quarantine ? AttestationService::quarantine(group_content, *quarantine) : group_content;
        const auto* current = registry_.desiredFor(id);
        content.retry = id == retry.first ? retry.second : current != nullptr ? current->retry : 0;
        const auto digest = content.contentDigest();
        const bool stale = current != nullptr && current->expires_at - now < ttl / 2;
        if (current != nullptr && current->content_digest == digest && !(force_refresh && stale)) {
            continue;
        }
        content.version = current == nullptr ? 1 : current->version + 1;
        content.issued_at = now;
        content.expires_at = now + ttl;
        auto jws = security::signBundle(content, keys_);
        if (!jws) return fail(std::move(jws.error()).wrap(fmt::format("sign bundle for '{}'", id)));
        changed[id] = DesiredRecord{content.version, digest, content.issued_at, content.expires_at,
                                    std::move(*jws), content.retry};
        if (attestation_) attestation_->onSigned(id, content);
    }
    // Persist before publishing: a crash after publish must not reuse a version number.
    if (auto st = registry_.commitDesired(changed); !st) {
        return fail(std::move(st.error()).wrap("store new bundle versions"));
    }
    ReloadReport report{fleet.revision, {}, {}};
    for (const auto& [id, record] : changed) report.changed.push_back(id);
    for (const auto& [id, spec] : fleet_.devices) {
        if (!fleet.devices.contains(id)) report.removed.push_back(id);
    }
    fleet_ = std::move(fleet);
    return report;
}

void ControlPlane::publishDesired(const std::string& id) {
    const auto* record = registry_.desiredFor(id);
    if (record == nullptr) return;
    if (auto st = mqtt_.publish({topic(id, "desired"), record->jws, 1, true}); !st) {
        log::warn("publish bundle v{} for '{}' deferred: {}", record->version, id, st.error().what());
        return;
    }
    log::info("published bundle v{} for '{}'", record->version, id);
}

void ControlPlane::refreshExpiring() {
    refresh_timer_ = loop_.after(settings_.refresh_interval, [this] { refreshExpiring(); });
    auto report = apply(fleet_, true);
    if (!report) {
        log::error("re-issuing expiring bundles failed: {}", report.error().what());
        return;
    }
    for (const auto& id : report->changed) publishDesired(id);
}

void ControlPlane::onMessage(const mqtt::Message& message) {
    // edge/v1/dev/<id>/<leaf>
    const auto prefix = settings_.topic_prefix + "/dev/";
    if (!message.topic.starts_with(prefix)) return;
    const auto rest = std::string_view(message.topic).substr(prefix.size());
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return;
    const std::string id(rest.substr(0, slash));
    const std::string leaf(rest.substr(slash + 1));
    if (!bundle::isValidDeviceId(id) || !fleet_.devices.contains(id)) return;
    if (message.payload.empty()) return;
    if (leaf == "decisions" || leaf == "telemetry") return onStream(id, leaf, message.payload);
    if (leaf.starts_with("attest/")) {
        if (attestation_) attestation_->onMessage(id, leaf, message.payload);
        return;
    }
    if (leaf != "status") return;
    const auto* before = registry_.reportedFor(id);
    const std::uint64_t applied_before = before && before->applied_version ? *before->applied_version : 0;
    if (!registry_.applyStatus(id, message.payload)) {
        log::warn("ignored malformed status from '{}'", id);
        return;
    }
    const auto* after = registry_.reportedFor(id);
    // A newly applied bundle was measured: ask the device to prove it.
    if (attestation_ && after && after->applied_version && applied_before != 0 &&
        *after->applied_version != applied_before) {
        attestation_->onApplied(id);
    }
}

void ControlPlane::setAttestation(AttestationService* attestation) {
    attestation_ = attestation;
    if (attestation_ == nullptr) return;
    attestation_->setHooks({[this](const std::string&) { reissue(); },
                            [this](const std::string& id) {
                                const auto* r = registry_.reportedFor(id);
                                return r != nullptr && r->online;
                            }});
}

Result<std::uint64_t> ControlPlane::retry(const std::string& id) {
    if (!fleet_.devices.contains(id)) return fail(SharedErrc::kNotFound, fmt::format("no device '{}' in the fleet", id));
    const auto* current = registry_.desiredFor(id);
    const std::uint64_t next = (current != nullptr ? current->retry : 0) + 1;
    auto report = apply(fleet_, false, {id, next});
    if (!report) return fail(std::move(report.error()).wrap(fmt::format("retry '{}'", id)));
    for (const auto& changed : report->changed) publishDesired(changed);
    log::info("retry generation {} for '{}': bundle v{}", next, id, registry_.desiredFor(id)->version);
    return next;
}

void ControlPlane::reissue() {
    auto report = apply(fleet_, false);
    if (!report) {
        log::error("re-issuing bundles failed: {}", report.error().what());
        return;
    }
    for (const auto& id : report->changed) publishDesired(id);
}

void ControlPlane::onStream(const std::string& id, const std::string& stream,
                            const std::string& payload) {
    auto seq = streams_.ingest(id, stream, payload);
    if (!seq) {
        // Not acknowledged: the device keeps the records and sends them again.
        log::warn("refused a {} batch from '{}': {}", stream, id, seq.error().what());
        return;
    }
    if (*seq == 0) return;
    const nlohmann::json ack = {{"stream", stream}, {"seq", *seq}};
    if (auto st = mqtt_.publish({topic(id, "ack"), ack.dump(), 1, false}); !st) {
        log::warn("ack of {} seq {} for '{}' not sent: {}", stream, *seq, id, st.error().what());
    }
}

http::Response ControlPlane::streamResponse(const std::string& id, const std::string& stream,
                                            const http::Request& request) const {
    std::uint64_t after = 0;
    std::size_t limit = 1000;
    const auto number = [&](const char* name, auto& out, std::uint64_t max) -> bool {
        const auto it = request.query.find(name);
        if (it == request.query.end()) return true;
        std::uint64_t v = 0;
        const auto& text = it->second;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc{} || p != text.data() + text.size() || v > max) return false;
        out = static_cast<std::remove_reference_t<decltype(out)>>(v);
        return true;
    };
    if (!number("after", after, UINT64_MAX)) return http::errorResponse(400, "'after' must be an unsigned integer");
    if (!number("limit", limit, 10000)) return http::errorResponse(400, "'limit' must be 0 to 10000");
    auto records = streams_.list(id, stream, after, limit);
    if (!records) return http::errorResponse(500, records.error().what());
    auto report = streams_.verify(id, stream);
    if (!report) return http::errorResponse(500, report.error().what());
    nlohmann::json body = {{"device", id}, {"stream", stream}, {"records", *records},
                           {"chain", toJson(*report)}};
    return {200, "application/json", body.dump() + "\n"};
}

nlohmann::json ControlPlane::deviceJson(const std::string& id) const {
    const auto& spec = fleet_.devices.at(id);
    nlohmann::json j = {{"id", id}, {"group", spec.group}, {"labels", spec.labels}};
    const auto* desired = registry_.desiredFor(id);
    j["desired_version"] = desired ? nlohmann::json(desired->version) : nlohmann::json(nullptr);
    const auto* reported = registry_.reportedFor(id);
    if (reported == nullptr) {
        j["applied_version"] = nullptr;
        j["online"] = false;
        j["last_seen"] = nullptr;
        j["last_error"] = nullptr;
        j["in_sync"] = false;
        j["ota"] = nullptr;
        if (attestation_) j["attestation"] = attestation_->stateOf(id);
        return j;
    }
    j["applied_version"] = reported->applied_version ? nlohmann::json(*reported->applied_version)
                                                     : nlohmann::json(nullptr);
    j["online"] = reported->online;
    j["last_seen"] = reported->last_seen ? nlohmann::json(isoTime(reported->last_seen))
                                         : nlohmann::json(nullptr);
    j["last_error"] = reported->last_error;
    j["in_sync"] = desired != nullptr && reported->applied_version == desired->version;
    j["ota"] = reported->ota;
    if (attestation_) j["attestation"] = attestation_->stateOf(id);
    return j;
}

http::Response ControlPlane::attestationResponse(const std::string& id, const std::string& action,
                                                 const http::Request& request) {
    if (attestation_ == nullptr) return http::errorResponse(404, "attestation is not enabled");
    if (action == "attestation") {
        if (request.method != "GET") return http::errorResponse(405, "use GET");
        return {200, "application/json", attestation_->deviceJson(id).dump() + "\n"};
    }
    if (request.method != "POST") return http::errorResponse(405, "use POST");
    auto st = action == "attest" ? attestation_->challenge(id, "operator") : attestation_->reenroll(id);
    if (!st) return http::errorResponse(409, st.error().what());
    return {202, "application/json", attestation_->deviceJson(id).dump() + "\n"};
}

http::Response ControlPlane::handle(const http::Request& request) {
    const auto json = [](int status, const nlohmann::json& body) {
        return http::Response{status, "application/json", body.dump() + "\n"};
    };
    if (request.path == "/healthz") {
        if (request.method != "GET") return http::errorResponse(405, "use GET");
        return json(200, {{"status", "ok"}, {"broker_connected", mqtt_.connected()},
                          {"fleet_revision", fleet_.revision}});
    }
    if (request.path == "/v1/devices") {
        if (request.method != "GET") return http::errorResponse(405, "use GET");
        auto devices = nlohmann::json::array();
        for (const auto& [id, spec] : fleet_.devices) devices.push_back(deviceJson(id));
        return json(200, {{"fleet_revision", fleet_.revision}, {"devices", devices}});
    }
    if (request.path.starts_with("/v1/devices/")) {
        auto id = request.path.substr(12);
        if (id.ends_with("/retry")) {
            id.resize(id.size() - 6);
            if (!fleet_.devices.contains(id)) return http::errorResponse(404, "no such device");
            if (request.method != "POST") return http::errorResponse(405, "use POST");
            auto generation = retry(id);
            if (!generation) return http::errorResponse(500, generation.error().what());
            return json(200, {{"device", id}, {"retry", *generation}, {"version", registry_.desiredFor(id)->version}});
        }
        for (const char* action : {"attestation", "attest", "reenroll"}) {
            const auto leaf = std::string("/") + action;
            if (id.ends_with(leaf)) {
                id.resize(id.size() - leaf.size());
                if (!fleet_.devices.contains(id)) return http::errorResponse(404, "no such device");
                return attestationResponse(id, action, request);
            }
        }
        if (request.method != "GET") return http::errorResponse(405, "use GET");
        for (const char* stream : {"decisions", "telemetry"}) {
            const auto leaf = std::string("/") + stream;
            if (id.ends_with(leaf)) {
                id.resize(id.size() - leaf.size());
                if (!fleet_.devices.contains(id)) return http::errorResponse(404, "no such device");
                return streamResponse(id, stream, request);
            }
        }
        if (!fleet_.devices.contains(id)) return http::errorResponse(404, "no such device");
        return json(200, deviceJson(id));
    }
    if (request.path == "/v1/reload") {
        if (request.method != "POST") return http::errorResponse(405, "use POST");
        auto report = reload();
        if (!report) return http::errorResponse(422, report.error().what());
        return json(200, {{"fleet_revision", report->revision},
                          {"changed", report->changed},
                          {"removed", report->removed}});
    }
    return http::errorResponse(404, "no such endpoint");
}

}  // namespace edge::controlplane
