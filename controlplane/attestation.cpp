#include "controlplane/attestation.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "security/crypto.hpp"
#include "shared/core/log.hpp"

namespace edge::controlplane {

namespace tpm = security::tpm;
using nlohmann::json;

namespace {

constexpr std::string_view kDb = "attest";
constexpr std::string_view kPublishedDb = "attest_published";
constexpr std::size_t kMaxPublished = 512;

std::string b64(const tpm::Bytes& b) {
    return security::base64UrlEncode(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

tpm::Bytes randomNonce() {
    const auto r = security::randomBytes(32);
    return tpm::Bytes(r.begin(), r.end());
}

bool constantTimeEqual(const tpm::Bytes& a, const tpm::Bytes& b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

constexpr std::string_view kQuarantinePolicy = R"(package quarantine

import rego.v1

# Added by the control plane to the bundle of a device that failed attestation: nothing new is
# admitted until the device attests again (docs/attestation.md).
deny contains msg if {
	msg := sprintf("device quarantined by attestation: %s", [data.edge_quarantine.reason])
}
)";

}  // namespace

AttestationService::AttestationService(EventLoop& loop, const Clock& clock, store::Store& store,
                                       mqtt::MqttClient& mqtt, std::string topic_prefix,
                                       AttestationSettings settings)
    : loop_(loop),
      clock_(clock),
      store_(store),
      mqtt_(mqtt),
      topic_prefix_(std::move(topic_prefix)),
      settings_(settings) {}

Status AttestationService::load() {
    auto st = store_.read([&](const store::ReadTxn& txn) -> Status {
        auto listed = txn.forEach(kDb, [&](std::string_view key, std::string_view value) {
            const auto j = json::parse(value, nullptr, false);
            if (j.is_discarded() || !j.is_object()) return true;
            Record r;
            r.state = j.value("state", r.state);
            r.reason = j.value("reason", "");
            r.at = j.value("at", std::int64_t{0});
            r.ak_public = j.value("ak_public", "");
            r.ak_name = j.value("ak_name", "");
            r.ek_digest = j.value("ek_digest", "");
            r.accept_baseline = j.value("accept_baseline", true);
            r.baseline = j.value("baseline", "");
            r.have_counters = j.value("have_counters", false);
            r.reset_count = j.value("reset_count", std::uint32_t{0});
            r.restart_count = j.value("restart_count", std::uint32_t{0});
            r.clock = j.value("clock", std::uint64_t{0});
            r.pcrs = j.value("pcrs", json::object());
            r.log = j.value("log", json(nullptr));
            r.last_quote_at = j.value("last_quote_at", std::int64_t{0});
            r.rejected = j.value("rejected", std::uint64_t{0});
            r.last_rejection = j.value("last_rejection", "");
            r.results = j.value("results", std::uint64_t{0});
            records_[std::string(key)] = std::move(r);
            return true;
        });
        if (!listed) return listed;
        return txn.forEach(kPublishedDb, [&](std::string_view key, std::string_view value) {
            const auto j = json::parse(value, nullptr, false);
            if (!j.is_array()) return true;
            auto& set = published_[std::string(key)];
            for (const auto& d : j) {
                if (d.is_string()) set.insert(d.get<std::string>());
            }
            return true;
        });
    });
    if (!st) return fail(std::move(st.error()).wrap("load attestation state"));
    if (settings_.enabled) periodic_ = loop_.after(settings_.interval, [this] { periodic(); });
    return {};
}

void AttestationService::periodic() {
    periodic_ = loop_.after(settings_.interval, [this] { periodic(); });
    for (const auto& [id, record] : records_) {
        if (record.ak_public.empty() || outstanding_.contains(id)) continue;
        if (hooks_.online && !hooks_.online(id)) continue;
        (void)challenge(id, "periodic");
    }
}

Status AttestationService::publish(const std::string& id, std::string_view leaf, std::string payload) {
    const auto topic = fmt::format("{}/dev/{}/{}", topic_prefix_, id, leaf);
    if (auto st = mqtt_.publish({topic, std::move(payload), 1, false}); !st) {
        log::warn("attestation: {} not published: {}", topic, st.error().what());
        return st;
    }
    return {};
}

void AttestationService::save(const std::string& id, const Record& record) {
    if (auto st = store_.putOne(kDb, id, recordJson(record).dump()); !st) {
        log::error("attestation: state of '{}' not stored: {}", id, st.error().what());
    }
}

json AttestationService::recordJson(const Record& r) const {
    return {{"state", r.state},
            {"reason", r.reason},
            {"at", r.at},
            {"ak_public", r.ak_public},
            {"ak_name", r.ak_name},
            {"ek_digest", r.ek_digest},
            {"accept_baseline", r.accept_baseline},
            {"baseline", r.baseline},
            {"have_counters", r.have_counters},
            {"reset_count", r.reset_count},
            {"restart_count", r.restart_count},
            {"clock", r.clock},
            {"pcrs", r.pcrs},
            {"log", r.log},
            {"last_quote_at", r.last_quote_at},
            {"rejected", r.rejected},
            {"last_rejection", r.last_rejection},
            {"results", r.results}};
}

void AttestationService::setState(const std::string& id, Record& record, std::string state, std::string reason) {
    const bool was_quarantined = record.state == "quarantined";
    record.state = std::move(state);
    record.reason = std::move(reason);
    record.at = clock_.unixSeconds();
    ++record.results;
    save(id, record);
    if (record.state == "quarantined") {
        log::warn("attestation: '{}' quarantined: {}", id, record.reason);
    } else {
        log::info("attestation: '{}' {}{}", id, record.state, record.reason.empty() ? "" : ": " + record.reason);
    }
    if (was_quarantined != (record.state == "quarantined") && hooks_.quarantine_changed) {
        hooks_.quarantine_changed(id);
    }
}

void AttestationService::reject(const std::string& id, std::string why) {
    log::warn("attestation: refused a message from '{}': {}", id, why);
    auto& record = records_[id];
    ++record.rejected;
    record.last_rejection = std::move(why);
    save(id, record);
}

void AttestationService::onMessage(const std::string& id, const std::string& leaf, const std::string& payload) {
    if (!settings_.enabled) return;
    if (leaf == "attest/enroll") return onEnroll(id, payload);
    if (leaf == "attest/activate") return onActivate(id, payload);
    if (leaf == "attest/quote") return onQuote(id, payload);
}

void AttestationService::onEnroll(const std::string& id, const std::string& payload) {
    auto m = tpm::parseEnroll(payload);
    if (!m) return reject(id, fmt::format("enrollment: {}", m.error().what()));
    auto ak = tpm::checkAkPublic(m->ak_public);
    if (!ak) return reject(id, fmt::format("enrollment: the AK is not fit for attestation: {}", ak.error().what()));
    if (ak->name != m->ak_name) return reject(id, "enrollment: the AK name does not match its public area");
    auto& record = records_[id];
    const auto ak_name = tpm::bytesHex(m->ak_name);
    if (!record.ak_name.empty() && record.ak_name == ak_name && !record.accept_baseline) {
        // The same AK after a restart: it proved itself already.
        if (!outstanding_.contains(id)) (void)challenge(id, "reconnect");
        return;
    }
    if (!record.ak_name.empty() && record.ak_name != ak_name && !record.accept_baseline) {
        setState(id, record, "quarantined",
                 "the device presented another attestation key; an operator must re-enroll it");
        return;
    }
    const auto ek_digest = security::sha256Hex(
        std::string_view(reinterpret_cast<const char*>(m->ek_public.data()), m->ek_public.size()));
    // The device asks again until it is challenged: the same keys get the same credential, so an
    // activation already on its way still matches.
    if (const auto it = pending_.find(id);
        it != pending_.end() && it->second.ak_name == ak_name && it->second.ek_digest == ek_digest) {
        (void)publish(id, "attest/credential", it->second.credential);
        return;
    }
    const auto secret = randomNonce();
    auto credential = tpm::makeCredential(m->ek_public, m->ak_name, secret);
    if (!credential) return reject(id, fmt::format("enrollment: make credential: {}", credential.error().what()));
    auto message = tpm::toJson(tpm::CredentialMessage{credential->credential_blob, credential->encrypted_secret});
    pending_[id] = Pending{secret, b64(m->ak_public), ak_name, ek_digest, message};
    if (record.state == "unenrolled" || record.state == "refused") setState(id, record, "enrolling", "");
    (void)publish(id, "attest/credential", std::move(message));
}

void AttestationService::onActivate(const std::string& id, const std::string& payload) {
    auto m = tpm::parseActivate(payload);
    if (!m) return reject(id, fmt::format("activation: {}", m.error().what()));
    const auto it = pending_.find(id);
    if (it == pending_.end()) return reject(id, "activation without a credential outstanding");
    auto& record = records_[id];
    if (!constantTimeEqual(m->secret, it->second.secret)) {
        pending_.erase(it);
        setState(id, record, "refused", "the credential was not activated: the AK is not bound to the EK");
        return;
    }
    record.ak_public = it->second.ak_public;
    record.ak_name = it->second.ak_name;
    record.ek_digest = it->second.ek_digest;
    record.accept_baseline = true;
    record.have_counters = false;
    ak_cache_.erase(id);
    pending_.erase(it);
    log::info("attestation: '{}' enrolled AK {}", id, record.ak_name.substr(0, 16));
    if (record.state != "quarantined") setState(id, record, "enrolled", "");
    save(id, record);
    (void)challenge(id, "enrollment");
}

Status AttestationService::challenge(const std::string& id, const std::string& why) {
    const auto it = records_.find(id);
    if (it == records_.end() || it->second.ak_public.empty()) {
        return fail(SharedErrc::kNotFound, fmt::format("'{}' has no enrolled attestation key", id));
    }
    Outstanding o{randomNonce(), why, nullptr};
    o.deadline = loop_.after(settings_.deadline, [this, id] {
        const auto out = outstanding_.find(id);
        if (out == outstanding_.end()) return;
        const auto why_sent = out->second.why;
        outstanding_.erase(out);
        setState(id, records_[id], "quarantined",
                 fmt::format("no quote within {} ms of the {} challenge", settings_.deadline.count(), why_sent));
    });
    const auto message = tpm::toJson(tpm::ChallengeMessage{o.nonce, {settings_.pcr}});
    // A challenge that never left (broker down) must not run into its deadline.
    if (auto st = publish(id, "attest/challenge", message); !st) return st;
    outstanding_[id] = std::move(o);
    return {};
}

void AttestationService::onApplied(const std::string& id) {
    if (!settings_.enabled) return;
    const auto it = records_.find(id);
    if (it == records_.end() || it->second.ak_public.empty()) return;
    (void)challenge(id, "bundle applied");
}

void AttestationService::onSigned(const std::string& id, const bundle::Bundle& signed_bundle) {
    auto& set = published_[id];
    set.insert(security::sha256Hex(bundle::toJson(signed_bundle)));
    for (const auto& a : signed_bundle.artifacts) set.insert(a.sha256);
    // Bounded: the oldest digests go first in practice as they are the least likely measured.
    while (set.size() > kMaxPublished) set.erase(set.begin());
    json list = json::array();
    for (const auto& d : set) list.push_back(d);
    if (auto st = store_.putOne(kPublishedDb, id, list.dump()); !st) {
        log::error("attestation: published digests of '{}' not stored: {}", id, st.error().what());
    }
}

Status AttestationService::verify(const std::string& id, Record& record, const tpm::QuoteMessage& m,
                                  const tpm::Bytes& nonce) {
    auto cached = ak_cache_.find(id);
    if (cached == ak_cache_.end()) {
        auto bytes = security::base64UrlDecode(record.ak_public);
        if (!bytes) return fail(bytes.error());
        auto ak = tpm::checkAkPublic(tpm::Bytes(bytes->begin(), bytes->end()));
        if (!ak) return fail(ak.error());
        cached = ak_cache_.emplace(id, std::move(*ak)).first;
    }
    auto info = tpm::verifyQuote(cached->second, m.quote.attest, m.quote.signature, nonce, m.quote.pcrs);
    if (!info) {
        return fail(Error(info.error().code(),
                          fmt::format("{}: {}", tpm::failureReason(info.error()), info.error().what())));
    }
    if (record.have_counters) {
        const bool older_boot = info->reset_count < record.reset_count;
        const bool same_boot = info->reset_count == record.reset_count;
        if (older_boot || (same_boot && (info->clock <= record.clock || info->restart_count < record.restart_count))) {
            return fail(SharedErrc::kInvalidArgument,
                        fmt::format("counters_backwards: the TPM's clock or reset counters went back "
                                    "(reset {} clock {} after reset {} clock {})",
                                    info->reset_count, info->clock, record.reset_count, record.clock));
        }
    }
    const auto pcr = m.quote.pcrs.find(m.log.pcr);
    if (pcr == m.quote.pcrs.end()) {
        return fail(SharedErrc::kInvalidArgument, fmt::format("log_mismatch: PCR {} of the log was not quoted", m.log.pcr));
    }
    if (m.log.replay() != pcr->second) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("log_mismatch: the measurement log does not replay to PCR {} ({})", m.log.pcr,
                                tpm::digestHex(pcr->second)));
    }
    const auto baseline = tpm::digestHex(m.log.baseline);
    if (m.log.baseline != tpm::Sha256Digest{} && baseline != record.baseline && !record.accept_baseline) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("baseline: the log starts from {} and not from a reset or an accepted state; "
                                "an operator must re-enroll the device",
                                baseline));
    }
    const auto& known = published_[id];
    for (const auto& entry : m.log.entries) {
        if (!known.contains(tpm::digestHex(entry.digest))) {
            return fail(SharedErrc::kInvalidArgument,
                        fmt::format("unknown_measurement: {} {} {} ({}) was never published for this device",
                                    entry.kind, entry.name, entry.version, tpm::digestHex(entry.digest)));
        }
    }
    if (record.accept_baseline) {
        record.baseline = m.log.baseline == tpm::Sha256Digest{} ? "" : baseline;
        record.accept_baseline = false;
    }
    record.have_counters = true;
    record.reset_count = info->reset_count;
    record.restart_count = info->restart_count;
    record.clock = info->clock;
    record.pcrs = json::object();
    for (const auto& [index, value] : info->pcrs) record.pcrs[std::to_string(index)] = tpm::digestHex(value);
    record.log = json::parse(tpm::toJson(m.log));
    record.last_quote_at = clock_.unixSeconds();
    return {};
}

void AttestationService::onQuote(const std::string& id, const std::string& payload) {
    auto m = tpm::parseQuote(payload);
    if (!m) return reject(id, fmt::format("quote: {}", m.error().what()));
    const auto out = outstanding_.find(id);
    if (out == outstanding_.end() || !constantTimeEqual(out->second.nonce, m->nonce)) {
        return reject(id, "quote: its nonce is not the outstanding challenge's (a replayed or unsolicited quote)");
    }
    const auto nonce = out->second.nonce;
    outstanding_.erase(out);  // used once, and the deadline is cancelled with it
    auto& record = records_[id];
    if (!m->error.empty()) return setState(id, record, "quarantined", "the device could not quote: " + m->error);
    if (auto st = verify(id, record, *m, nonce); !st) {
        return setState(id, record, "quarantined", "quote refused: " + st.error().what());
    }
    setState(id, record, "trusted", "");
}

Status AttestationService::reenroll(const std::string& id) {
    auto& record = records_[id];
    record.accept_baseline = true;
    outstanding_.erase(id);
    save(id, record);
    log::info("attestation: operator re-enrollment of '{}'", id);
    return publish(id, "attest/reenroll", "{}");
}

std::optional<std::string> AttestationService::quarantined(const std::string& id) const {
    const auto it = records_.find(id);
    if (it == records_.end() || it->second.state != "quarantined") return std::nullopt;
    return it->second.reason;
}

std::string AttestationService::stateOf(const std::string& id) const {
    const auto it = records_.find(id);
    return it == records_.end() ? "unenrolled" : it->second.state;
}

json AttestationService::deviceJson(const std::string& id) const {
    const auto it = records_.find(id);
    if (it == records_.end()) return {{"device", id}, {"state", "unenrolled"}, {"enabled", settings_.enabled}};
    const auto& r = it->second;
    return {{"device", id},
            {"enabled", settings_.enabled},
            {"state", r.state},
            {"reason", r.reason},
            {"at", r.at ? json(isoTime(r.at)) : json(nullptr)},
            {"at_unix", r.at},
            {"ak_name", r.ak_name},
            {"ek_digest", r.ek_digest},
            {"pcrs", r.pcrs},
            {"log", r.log},
            {"last_quote_at", r.last_quote_at ? json(isoTime(r.last_quote_at)) : json(nullptr)},
            {"challenge_outstanding", outstanding_.contains(id)},
            {"rejected", r.rejected},
            {"last_rejection", r.last_rejection},
            {"results", r.results},
            {"reset_count", r.reset_count},
            {"clock", r.clock}};
}

bundle::Bundle AttestationService::quarantine(bundle::Bundle content, const std::string& reason) {
    content.artifacts.clear();
    const std::string file = "edge-quarantine.rego";
    content.policies[file] = std::string(kQuarantinePolicy);
    if (!content.enforcement.entrypoints.empty()) content.enforcement.entrypoints.push_back("data.quarantine.deny");
    for (auto& [name, set] : content.enforcement.policy_sets) set[file] = std::string(kQuarantinePolicy);
    content.data["edge_quarantine"] = {{"reason", reason}};
    return content;
}

}  // namespace edge::controlplane
