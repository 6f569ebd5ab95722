#include "edged/attestor.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "security/tpm/attestation.hpp"
#include "shared/core/log.hpp"

namespace edge::edged {

namespace tpm = security::tpm;
using nlohmann::json;

namespace {

constexpr std::string_view kAkBlobKey = "ak_blob";
constexpr std::string_view kLogKey = "log";

std::string currentKey(const tpm::Measurement& m) { return m.kind + "/" + m.name; }

}  // namespace

Attestor::Attestor(EventLoop& loop, const Clock& clock, store::Store& store, mqtt::MqttClient* mqtt,
                   AttestorSettings settings, TpmFactory open_tpm)
    : loop_(loop),
      clock_(clock),
      store_(store),
      mqtt_(mqtt),
      settings_(std::move(settings)),
      open_tpm_(std::move(open_tpm)) {
    status_ = {{"state", settings_.tcti.empty() ? "unavailable" : "starting"},
               {"error", settings_.tcti.empty() ? json("no TPM configured (tpm.tcti)") : json(nullptr)},
               {"pcr", settings_.pcr},
               {"ak_name", nullptr},
               {"log_entries", 0},
               {"last_quote_at", nullptr}};
}

Attestor::~Attestor() { stop(); }

void Attestor::start() {
    // First job, ahead of measurements queued before start (the agent loads its bundle first).
    auto init = [this] {
        auto stored = store_.getOne(kAttestDb, kLogKey);
        if (stored && *stored) {
            auto parsed = tpm::parseLog(**stored);
            if (parsed && parsed->pcr == settings_.pcr) log_ = std::move(*parsed);
        }
        if (log_.pcr != settings_.pcr) log_ = tpm::MeasurementLog{settings_.pcr, {}, {}};
        for (const auto& m : log_.entries) current_[currentKey(m)] = m;
        (void)ensureTpm();
    };
    {
        const std::lock_guard lock(mu_);
        jobs_.push_front(std::move(init));
    }
    worker_ = std::thread([this] { run(); });
}

void Attestor::stop() {
    {
        const std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

void Attestor::post(std::function<void()> job) {
    {
        const std::lock_guard lock(mu_);
        jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
}

void Attestor::run() {
    std::unique_lock lock(mu_);
    while (true) {
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        job();
        lock.lock();
    }
}

void Attestor::setError(std::string error) {
    log::warn("attestation: {}", error);
    {
        const std::lock_guard lock(mu_);
        status_["state"] = settings_.tcti.empty() ? "unavailable" : "error";
        status_["error"] = std::move(error);
    }
    notifyState();
}

bool Attestor::akHasNoDa() const {
    std::string message;
    {
        const std::lock_guard lock(mu_);
        message = enroll_message_;
    }
    auto parsed = tpm::parseEnroll(message);
    if (!parsed) return true;  // nothing to judge: leave the AK alone
    auto ak = tpm::checkAkPublic(parsed->ak_public);
    return !ak || ak->no_da;
}

void Attestor::notifyState() {
    std::string state;
    {
        const std::lock_guard lock(mu_);
        state = status_.value("state", "");
        if (state == notified_state_) return;
        notified_state_ = state;
    }
    if (on_state_) on_state_(state);
}

bool Attestor::ensureTpm() {
    if (settings_.tcti.empty()) return false;
    if (tpm_) return true;
    auto opened = open_tpm_(settings_.tcti);
    if (!opened) {
        setError(fmt::format("TPM {}: {}", settings_.tcti, opened.error().what()));
        return false;
    }
    std::optional<tpm::AkBlob> existing;
    if (auto blob = store_.getOne(kAttestDb, kAkBlobKey); blob && *blob) {
        existing = tpm::AkBlob{tpm::Bytes((*blob)->begin(), (*blob)->end())};
    }
    if (replace_ak_) existing.reset();
    auto keys = (*opened)->enroll(existing);
    if (!keys && existing && new_ak_allowed_) {
        // An operator re-enrolls a device whose TPM refuses the stored AK (cleared hierarchy,
        // replaced TPM): a new AK. Never on its own: the control plane refuses a changed AK.
        log::warn("attestation: the stored AK does not load ({}); creating a new one", keys.error().what());
        keys = (*opened)->enroll(std::nullopt);
    }
    if (!keys) {
        setError(fmt::format("TPM enrollment: {}", keys.error().what()));
        return false;
    }
    if (!existing || keys->ak_blob != *existing) {
        const auto& data = keys->ak_blob.data;
        if (auto st = store_.putOne(kAttestDb, kAkBlobKey,
                                    std::string_view(reinterpret_cast<const char*>(data.data()), data.size()));
            !st) {
            setError(fmt::format("store the AK: {}", st.error().what()));
            return false;
        }
    }
    tpm_ = std::move(*opened);
    // A TPM that was reopened may have been reset meanwhile (PCRs back to zero): the log follows.
    reconcile();
    if (!tpm_) return false;
    const auto message = tpm::toJson(tpm::EnrollMessage{keys->ek_public, keys->ek_certificate, keys->ak_public,
                                                        keys->ak_name});
    {
        const std::lock_guard lock(mu_);
        enroll_message_ = message;
        status_["state"] = challenged_ ? "enrolled" : "enrolling";
        status_["error"] = nullptr;
        status_["ak_name"] = tpm::bytesHex(keys->ak_name);
    }
    notifyState();
    loop_.post([this] { connected(); });
    return true;
}

Status Attestor::saveLog() {
    {
        const std::lock_guard lock(mu_);
        status_["log_entries"] = log_.entries.size();
    }
    return store_.putOne(kAttestDb, kLogKey, tpm::toJson(log_));
}

void Attestor::reconcile() {
    auto values = tpm_->readPcrs({settings_.pcr});
    if (!values) {
        setError(fmt::format("read PCR {}: {}", settings_.pcr, values.error().what()));
        tpm_.reset();
        return;
    }
    const auto pcr = values->at(settings_.pcr);
    if (log_.replay() == pcr) return;
    if (!log_.entries.empty()) {
        auto shorter = log_;
        shorter.entries.pop_back();
        if (shorter.replay() == pcr) {
            // Logged, then the process stopped before the extend: finish it.
            if (auto st = tpm_->extendPcr(settings_.pcr, log_.entries.back().digest); !st) {
                setError(fmt::format("extend PCR {}: {}", settings_.pcr, st.error().what()));
                tpm_.reset();
            }
            return;
        }
    }
    if (pcr == tpm::Sha256Digest{}) {
        log::info("attestation: PCR {} was reset (TPM restart): new measurement epoch", settings_.pcr);
        newEpoch({});
        return;
    }
    // Extended by someone else: keep the log as it is; quotes will not replay and the control
    // plane quarantines the device until an operator re-enrolls it.
    setError(fmt::format("PCR {} does not match the measurement log (extended outside edged?)", settings_.pcr));
}

void Attestor::newEpoch(const tpm::Sha256Digest& baseline) {
    log_ = tpm::MeasurementLog{settings_.pcr, baseline, {}};
    if (auto st = saveLog(); !st) {
        setError(fmt::format("store the measurement log: {}", st.error().what()));
        return;
    }
    for (const auto& [key, m] : current_) {
        if (auto st = extendLogged(m); !st) {
            setError(st.error().what());
            return;
        }
    }
}

Status Attestor::extendLogged(const tpm::Measurement& m) {
    // Log first (durably), then extend: a crash in between is repaired by reconcile().
    log_.entries.push_back(m);
    if (auto st = saveLog(); !st) {
        log_.entries.pop_back();
        return fail(std::move(st.error()).wrap("store the measurement log"));
    }
    if (auto st = tpm_->extendPcr(settings_.pcr, m.digest); !st) {
        tpm_.reset();
        return fail(std::move(st.error()).wrap(fmt::format("extend PCR {}", settings_.pcr)));
    }
    return {};
}

void Attestor::measure(tpm::Measurement m) {
    post([this, m = std::move(m)] {
        current_[currentKey(m)] = m;
        for (auto it = log_.entries.rbegin(); it != log_.entries.rend(); ++it) {
            if (it->kind == m.kind && it->name == m.name) {
                if (it->digest == m.digest) return;  // already what the log says runs
                break;
            }
        }
        if (!ensureTpm()) return;
        if (auto st = extendLogged(m); !st) setError(st.error().what());
    });
}

void Attestor::connected() {
    std::string message;
    {
        const std::lock_guard lock(mu_);
        if (challenged_) return;
        message = enroll_message_;
    }
    if (message.empty()) return;  // sent once the TPM is open
    publish("attest/enroll", std::move(message));
    // A message can be lost (the control plane not subscribed yet, a restart): ask again, less
    // and less often, until the control plane answers with a challenge.
    enroll_retry_ = loop_.after(enroll_backoff_, [this] {
        if (mqtt_ != nullptr && mqtt_->connected()) connected();
    });
    enroll_backoff_ = std::min(enroll_backoff_ * 2, std::chrono::milliseconds(std::chrono::minutes(5)));
}

void Attestor::onMessage(const std::string& leaf, const std::string& payload) {
    if (leaf == "attest/challenge") {
        post([this, payload] { answerChallenge(payload); });
    } else if (leaf == "attest/credential") {
        post([this, payload] { activate(payload); });
    } else if (leaf == "attest/reenroll") {
        post([this] {
            new_ak_allowed_ = true;
            bool ready = ensureTpm();
            if (ready && !akHasNoDa()) {
                // An AK from before noDA: a TPM in lockout (unclean shutdowns count towards it)
                // cannot quote with it. The operator's re-enrollment is the moment to replace it.
                log::info("attestation: re-enrollment replaces the AK with one that has noDA");
                tpm_.reset();
                replace_ak_ = true;
                ready = ensureTpm();
                replace_ak_ = false;
            }
            new_ak_allowed_ = false;
            if (!ready) return;
            auto values = tpm_->readPcrs({settings_.pcr});
            if (!values) {
                setError(fmt::format("read PCR {}: {}", settings_.pcr, values.error().what()));
                tpm_.reset();
                return;
            }
            log::info("attestation: re-enrollment: new epoch from PCR {}'s present value", settings_.pcr);
            newEpoch(values->at(settings_.pcr));
            {
                const std::lock_guard lock(mu_);
                challenged_ = false;
            }
            loop_.post([this] { connected(); });
        });
    }
}

void Attestor::activate(const std::string& payload) {
    auto credential = tpm::parseCredential(payload);
    if (!credential) {
        log::warn("attestation: ignored a malformed credential: {}", credential.error().what());
        return;
    }
    if (!ensureTpm()) return;
    auto secret = tpm_->activateCredential(credential->credential_blob, credential->encrypted_secret);
    if (!secret) {
        setError(fmt::format("activate credential: {}", secret.error().what()));
        return;
    }
    publish("attest/activate", tpm::toJson(tpm::ActivateMessage{std::move(*secret)}));
}

void Attestor::answerChallenge(const std::string& payload) {
    auto challenge = tpm::parseChallenge(payload);
    if (!challenge) {
        log::warn("attestation: ignored a malformed challenge: {}", challenge.error().what());
        return;
    }
    {
        const std::lock_guard lock(mu_);
        challenged_ = true;
    }
    tpm::QuoteMessage answer;
    answer.nonce = challenge->nonce;
    if (!ensureTpm()) {
        const std::lock_guard lock(mu_);
        answer.error = status_.value("error", std::string("TPM unavailable"));
    } else if (auto quote = tpm_->quote(challenge->nonce, challenge->pcrs); !quote) {
        answer.error = fmt::format("quote: {}", quote.error().what());
        setError(answer.error);
        tpm_.reset();  // reopened (and the AK reloaded) on the next request
    } else {
        answer.quote = std::move(*quote);
        answer.log = log_;
        {
            const std::lock_guard lock(mu_);
            status_["state"] = "enrolled";
            status_["error"] = nullptr;
            status_["last_quote_at"] = clock_.unixSeconds();
        }
        notifyState();
    }
    publish("attest/quote", tpm::toJson(answer));
}

void Attestor::publish(const std::string& leaf, std::string payload) {
    if (mqtt_ == nullptr) return;
    const auto topic = fmt::format("{}/dev/{}/{}", settings_.topic_prefix, settings_.device_id, leaf);
    loop_.post([this, topic, payload = std::move(payload)]() mutable {
        if (!mqtt_->connected()) return;  // enrollment is sent again on connect; challenges come again
        if (auto st = mqtt_->publish({topic, std::move(payload), 1, false}); !st) {
            log::warn("attestation: {} not published: {}", topic, st.error().what());
        }
    });
}

json Attestor::statusJson() const {
    const std::lock_guard lock(mu_);
    return status_;
}

}  // namespace edge::edged
