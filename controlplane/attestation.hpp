#pragma once
// AttestationService: the control plane's verifier (docs/attestation.md, issue 5).
//
// Enrollment: attest/enroll brings the EK and AK public parts. The AK must be a restricted
// P-256 signing key whose name matches; the control plane then makes a credential for that EK
// and AK name (software MakeCredential) and enrolls the AK only when the device answers on
// attest/activate with the secret, which only the TPM holding that EK and that AK can recover.
// A device that comes back with another AK is refused until an operator re-enrolls it.
//
// Quotes: each challenge has a fresh 32-byte nonce, is outstanding once, and expires after
// `deadline`. A quote is accepted only when:
// - it answers the outstanding nonce (a replayed or unsolicited quote is counted and ignored);
// - the enrolled AK signed it;
// - the clock and reset counters moved forward;
// - the PCR digest matches the PCR values;
// - the measurement log replays to the PCR;
// - every measured digest is one the control plane published for this device (bundles it
//   signed, artifacts they named).
// A failed quote or no answer quarantines the device with the reason. ControlPlane then
// re-issues its bundle with no artifacts and a policy that denies new workloads, until a quote
// is accepted again.
//
// The log's baseline (where the PCR started) must be zeros (a TPM reset) or the one adopted at
// enrollment or after an operator's re-enrollment: that is how a device whose PCR was extended
// outside edged recovers (POST /v1/devices/<id>/reenroll, `edgectl attest <id> --reenroll`).
//
// State per device in LMDB (db "attest"); the digests published per device in db
// "attest_published". Loop thread only.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "security/tpm/attestation.hpp"
#include "security/tpm/messages.hpp"
#include "shared/bundle/bundle.hpp"
#include "shared/core/clock.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/mqtt/client.hpp"
#include "shared/store/store.hpp"

namespace edge::controlplane {

struct AttestationSettings {
    bool enabled = false;
    std::chrono::milliseconds interval{std::chrono::minutes(10)};  // periodic challenges
    std::chrono::milliseconds deadline{std::chrono::seconds(10)};  // to answer a challenge
    int pcr = 23;
};

struct AttestationHooks {
    /// A device entered or left quarantine: its bundle must be re-issued.
    std::function<void(const std::string& id)> quarantine_changed;
    /// Whether the device is online now (only online devices are challenged periodically).
    std::function<bool(const std::string& id)> online;
};

class AttestationService {
public:
    AttestationService(EventLoop& loop, const Clock& clock, store::Store& store, mqtt::MqttClient& mqtt,
                       std::string topic_prefix, AttestationSettings settings);

    void setHooks(AttestationHooks hooks) { hooks_ = std::move(hooks); }
    /// Loads the persisted state and starts the periodic challenges.
    [[nodiscard]] Status load();

    /// A message on <prefix>/dev/<id>/attest/<x> (leaf "attest/<x>").
    void onMessage(const std::string& id, const std::string& leaf, const std::string& payload);
    /// The device applied a new bundle: challenge it (the bundle was measured).
    void onApplied(const std::string& id);
    /// A bundle was signed for the device: its digest and its artifacts may be measured.
    void onSigned(const std::string& id, const bundle::Bundle& signed_bundle);

    /// Sends a challenge now. kNotFound when the device has no enrolled AK.
    [[nodiscard]] Status challenge(const std::string& id, const std::string& why);
    /// Operator: accept the device's present state again (new baseline, enrollment again).
    [[nodiscard]] Status reenroll(const std::string& id);

    /// The reason when the device is quarantined.
    [[nodiscard]] std::optional<std::string> quarantined(const std::string& id) const;
    /// GET /v1/devices/<id>/attestation.
    [[nodiscard]] nlohmann::json deviceJson(const std::string& id) const;
    /// The state name alone, for the devices table ("unenrolled" when nothing is known).
    [[nodiscard]] std::string stateOf(const std::string& id) const;

    /// The same as the quarantined bundle the control plane sends (exposed for tests): no
    /// artifacts, and a `quarantine` package whose deny set refuses every admission.
    [[nodiscard]] static bundle::Bundle quarantine(bundle::Bundle content, const std::string& reason);

private:
    struct Record {
        std::string state = "unenrolled";  // enrolling, enrolled, trusted, quarantined, refused
        std::string reason;
        std::int64_t at = 0;
        std::string ak_public;  // base64url of the marshalled TPM2B_PUBLIC
        std::string ak_name;    // hex
        std::string ek_digest;  // hex SHA-256 of the EK public area
        bool accept_baseline = true;
        std::string baseline;  // hex; "" = only zeros accepted
        bool have_counters = false;
        std::uint32_t reset_count = 0;
        std::uint32_t restart_count = 0;
        std::uint64_t clock = 0;
        nlohmann::json pcrs = nlohmann::json::object();
        nlohmann::json log = nullptr;
        std::int64_t last_quote_at = 0;
        std::uint64_t rejected = 0;
        std::string last_rejection;
        std::uint64_t results = 0;  // state changes and verdicts so far (edgectl waits on it)
    };
    struct Pending {
        security::tpm::Bytes secret;
        std::string ak_public;
        std::string ak_name;
        std::string ek_digest;
        std::string credential;  // the attest/credential message, sent again for a repeated enroll
    };
    struct Outstanding {
        security::tpm::Bytes nonce;
        std::string why;
        std::unique_ptr<Timer> deadline;
    };

    void onEnroll(const std::string& id, const std::string& payload);
    void onActivate(const std::string& id, const std::string& payload);
    void onQuote(const std::string& id, const std::string& payload);
    /// Checks a quote message against the record; the reason it fails otherwise.
    [[nodiscard]] Status verify(const std::string& id, Record& record, const security::tpm::QuoteMessage& m,
                                const security::tpm::Bytes& nonce);
    void setState(const std::string& id, Record& record, std::string state, std::string reason);
    void reject(const std::string& id, std::string why);
    void save(const std::string& id, const Record& record);
    [[nodiscard]] Status publish(const std::string& id, std::string_view leaf, std::string payload);
    void periodic();
    [[nodiscard]] nlohmann::json recordJson(const Record& r) const;

    EventLoop& loop_;
    const Clock& clock_;
    store::Store& store_;
    mqtt::MqttClient& mqtt_;
    std::string topic_prefix_;
    AttestationSettings settings_;
    AttestationHooks hooks_;
    std::map<std::string, Record> records_;
    std::map<std::string, std::set<std::string>> published_;  // id -> hex digests
    std::map<std::string, Pending> pending_;
    std::map<std::string, Outstanding> outstanding_;
    std::map<std::string, security::tpm::AkInfo> ak_cache_;
    std::unique_ptr<Timer> periodic_;
};

}  // namespace edge::controlplane
