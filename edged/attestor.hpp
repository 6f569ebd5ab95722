#pragma once
// Attestor: edged's side of TPM attestation (docs/attestation.md, issue 5).
//
// - Enrollment: the AK is created once under the EK and its blob kept in LMDB (db "attest"), so
//   restarts reuse the same AK. On every connect the device sends attest/enroll (EK and AK public
//   parts, AK name), and again with a growing interval (2 s to 5 min), until the control plane
//   challenges it; attest/credential is answered with
//   ActivateCredential's secret on attest/activate, which proves the AK lives in that EK's TPM.
// - Measured apply: every applied bundle, installed firmware image and activated model is
//   appended to the measurement log in LMDB first and then extended into the configured PCR, so
//   the log always replays to the PCR (after a crash between the two, start() extends the
//   logged entry again). After a TPM reset (the PCR reads zero) a new epoch starts: the log is
//   emptied and what the device runs now is measured again.
// - attest/challenge (nonce, PCRs) is answered on attest/quote with the quote, the signature,
//   the PCR values and the log; a TPM failure is answered with the error, and the TPM is
//   reopened on the next request.
// - attest/reenroll (an operator accepted the device's state again): a new epoch starting at
//   the PCR's present value, then enrollment again.
//
// TPM calls block: they run on the attestor's own worker thread. Publishing happens on the loop.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "security/tpm/messages.hpp"
#include "security/tpm/tpm.hpp"
#include "shared/core/clock.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/mqtt/client.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

struct AttestorSettings {
    std::string device_id;
    std::string topic_prefix = "edge/v1";
    /// TCTI of the TPM ("device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=P"); empty: no TPM,
    /// attestation is reported as unavailable.
    std::string tcti;
    /// The PCR measurements are extended into (23: resettable, free for applications).
    int pcr = 23;
};

using TpmFactory = std::function<Result<std::unique_ptr<security::tpm::Tpm>>(const std::string& tcti)>;

inline constexpr std::string_view kAttestDb = "attest";

class Attestor {
public:
    /// mqtt may be null (offline: measurements are still kept).
    Attestor(EventLoop& loop, const Clock& clock, store::Store& store, mqtt::MqttClient* mqtt,
             AttestorSettings settings, TpmFactory open_tpm);
    ~Attestor();
    Attestor(const Attestor&) = delete;
    Attestor& operator=(const Attestor&) = delete;

    /// Starts the worker: opens the TPM, enrolls (or reloads) the AK, reconciles log and PCR.
    void start();
    void stop();

    /// The broker connection is up (loop thread): sends attest/enroll unless challenged already.
    void connected();
    /// A message on <prefix>/dev/<id>/<leaf> with leaf "attest/..." (loop thread).
    void onMessage(const std::string& leaf, const std::string& payload);
    /// Records and extends a measurement (any thread). The same digest for the same kind and
    /// name as the newest such entry of the epoch is not repeated.
    void measure(security::tpm::Measurement m);

    /// {"state": "unavailable"|"starting"|"error"|"enrolling"|"enrolled", "error", "pcr", "ak_name",
    ///  "log_entries", "last_quote_at"}; any thread.
    [[nodiscard]] nlohmann::json statusJson() const;
    /// Called with the new state each time statusJson()'s "state" changes (on the worker
    /// thread). Set before start().
    void onStateChange(std::function<void(const std::string&)> fn) { on_state_ = std::move(fn); }

private:
    void post(std::function<void()> job);
    void run();
    /// Opens the TPM, enrolls and reconciles the log with the PCR when not open yet; false
    /// (state error) on failure.
    bool ensureTpm();
    void reconcile();
    void newEpoch(const security::tpm::Sha256Digest& baseline);
    [[nodiscard]] Status extendLogged(const security::tpm::Measurement& m);
    void answerChallenge(const std::string& payload);
    void activate(const std::string& payload);
    void publish(const std::string& leaf, std::string payload);
    void setError(std::string error);
    /// The AK in use has noDA (an AK created before that attribute was used has not).
    [[nodiscard]] bool akHasNoDa() const;
    /// Calls on_state_ when the state differs from the one last reported.
    void notifyState();
    [[nodiscard]] Status saveLog();

    EventLoop& loop_;
    const Clock& clock_;
    store::Store& store_;
    mqtt::MqttClient* mqtt_;
    AttestorSettings settings_;
    TpmFactory open_tpm_;

    // Worker-thread state.
    std::unique_ptr<security::tpm::Tpm> tpm_;
    security::tpm::MeasurementLog log_;
    /// What runs now, per kind/name: measured again at each new epoch.
    std::map<std::string, security::tpm::Measurement> current_;
    bool new_ak_allowed_ = false;  // only while an operator's re-enrollment opens the TPM

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    nlohmann::json status_;
    std::string notified_state_;
    bool replace_ak_ = false;  // worker thread: ensureTpm() creates a new AK (re-enrollment)
    std::function<void(const std::string&)> on_state_;
    std::string enroll_message_;  // what attest/enroll carries ("" until enrolled with the TPM)
    bool challenged_ = false;     // the control plane has challenged us since we started
    // Loop thread: attest/enroll is sent again until a challenge comes.
    std::unique_ptr<Timer> enroll_retry_;
    std::chrono::milliseconds enroll_backoff_{2000};
    std::thread worker_;
};

}  // namespace edge::edged
