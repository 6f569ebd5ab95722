#pragma once
// OtaManager: carries out the artifacts of the applied bundle (issue 6) on one worker thread.
//
// Each applied bundle is a plan with three domains, done in this order:
//   policies  switched by the agent once the bundle's models are settled: "pending" until then
//             (when the bundle has models), then "done";
//   models    per model: the provenance policy first (no download for a denied model), then
//             download (resumable, size-bounded, digest-checked) and stage. Only when every
//             model's bytes are verified and staged does each switch, atomically, with the
//             readiness check, which rolls back on failure: a download that fails half-way
//             (transient) leaves every model as it was; a model refused for good does not hold
//             the others back;
//   firmware  last, because it reboots: Updater::startStreamed (the image goes from the
//             store straight into the inactive slot, checkpointed for resume, checked, armed
//             once, reboot requested), or with firmware.download: cache (and for zstd images)
//             download, then Updater::start (install from the file). After the reboot, start() runs
//             Updater::afterBoot with the daemon's health check, which commits or falls back.
// A newer bundle replaces a plan that has not started its next step. Transient failures
// (network, artifact store) are retried every retry_interval; a refusal (policy, digest, health)
// is final for that bundle version and is reported with its reason. The plan's outcome is kept
// in LMDB (db "ota"), so a restart neither repeats a finished plan nor forgets its result.
// A bundle with the content of the plan in force (re-signed before it expires) is the same plan.
// A failed firmware version is tried again only when a newer bundle, with other content, asks.
//
// statusJson() is safe from any thread (the loop reads it for status reports and the API).
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "edged/artifact_fetcher.hpp"
#include "edged/model_store.hpp"
#include "firmware/updater.hpp"
#include "shared/bundle/bundle.hpp"
#include "shared/core/clock.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

struct OtaSettings {
    /// Where artifact URLs ("/v1/artifacts/<sha256>") are fetched from, e.g.
    /// "https://cp.example:8443". Empty: bundles with artifacts fail their domains.
    std::string artifact_base;
    /// Downloads and their .part files (resumed after a restart).
    std::filesystem::path downloads_dir;
    std::chrono::milliseconds retry_interval{std::chrono::seconds(30)};
    /// firmware.state_command: run after every persisted transition of a firmware update with
    /// the new state's name appended, like Mender's state scripts (notify applications, stop a
    /// workload before the reboot). Its exit status is logged, not acted on.
    std::vector<std::string> state_command;
    std::chrono::milliseconds state_timeout{std::chrono::seconds(30)};
    /// models.state_command: run after each durable step of a model store change with the step
    /// ("staged", "activating", "switched", "active", "rolled-back"), the model's name and its
    /// version appended (an inference runtime reloads current/<name> on "active").
    std::vector<std::string> model_state_command;
    /// firmware.download: stream (true) the image straight into the inactive slot, or cache it
    /// in downloads_dir first. zstd images are always cached.
    bool stream_firmware = true;
};

/// The optional parts; null ones make the matching domain fail with a clear reason.
struct OtaParts {
    ArtifactFetcher* fetcher = nullptr;
    firmware::Updater* updater = nullptr;
    ModelStore* models = nullptr;
};

inline constexpr std::string_view kOtaDb = "ota";

/// The lines `edged status` prints for statusJson(): the plan and its reasons, the download in
/// progress (bytes, percent, rate, ETA) and the firmware update.
[[nodiscard]] std::string otaStatusText(const nlohmann::json& ota);

class OtaManager {
public:
    OtaManager(EventLoop& loop, const Clock& clock, store::Store& store, OtaSettings settings);
    ~OtaManager();
    OtaManager(const OtaManager&) = delete;
    OtaManager& operator=(const OtaManager&) = delete;

    /// Hooks for firmware::Updater::open (status on each transition, install progress).
    [[nodiscard]] firmware::UpdaterHooks updaterHooks();
    /// ModelStoreOptions::on_step: runs models.state_command with the step, the model's name
    /// and version appended (after the step is durable, like firmware.state_command).
    [[nodiscard]] std::function<void(std::string_view, const ModelVersion&)> modelStepHook();
    /// Set before start().
    void setParts(OtaParts parts) { parts_ = parts; }
    /// Runs on the loop thread after each notable change (publish a status report).
    void onChange(std::function<void()> fn) { on_change_ = std::move(fn); }
    /// What now runs: called (on the worker) for each activated model, for the committed
    /// firmware, and at start for what already runs (attestation measures it). Set before start().
    using InstalledFn = std::function<void(const std::string& kind, const std::string& name,
                                           const std::string& version, const std::string& sha256)>;
    void onInstalled(InstalledFn fn) { on_installed_ = std::move(fn); }
    /// The models of bundle `version` are settled (active, refused or none): posted to the loop,
    /// where edged switches that bundle's policies, so policies and models change together.
    void onModelsSettled(std::function<void(std::uint64_t version)> fn) { on_models_settled_ = std::move(fn); }

    /// Starts the worker: finishes whatever firmware update a reboot or crash interrupted
    /// (afterBoot with health), then carries out the plan of applied (null: none yet).
    void start(std::shared_ptr<const bundle::Bundle> applied, firmware::HealthCheck health);
    /// A new bundle was applied (any thread): it becomes the plan.
    void bundleApplied(std::shared_ptr<const bundle::Bundle> bundle);
    /// Stops the worker after its current step (a download is cut at its next chunk when the
    /// fetcher's FetchOptions::stop asks stopRequested()).
    void stop();
    /// stop() was called (any thread).
    [[nodiscard]] bool stopRequested();

    /// {"bundle_version", "domains": {"policies","models","firmware"}, "reasons": {...},
    ///  "download": {...}|null, "firmware": {...}|null, "models": [...]} (docs/ota.md).
    [[nodiscard]] nlohmann::json statusJson() const;

private:
    struct Plan {
        std::shared_ptr<const bundle::Bundle> bundle;
    };

    void run(firmware::HealthCheck health);
    /// One pass over the plan; false when something transient failed (retry later).
    bool execute(const bundle::Bundle& b);
    /// nullopt: done or refused (final); an error string: transient, retry.
    std::optional<std::string> doModels(const bundle::Bundle& b);
    std::optional<std::string> doFirmware(const bundle::Bundle& b);
    /// What Updater::start/startStreamed/continueInstall returned, as doFirmware's result.
    std::optional<std::string> firmwareStarted(const Status& started, const std::filesystem::path& file);
    Status download(const bundle::Artifact& a, const std::filesystem::path& dest);
    static constexpr const char* kNoArtifactStore = "no artifact store configured (artifacts.url)";
    [[nodiscard]] bool artifactStoreConfigured() const;
    /// Progress of one transfer into status_["download"] (bytes, rate, ETA).
    FetchProgressFn progressReporter(const std::string& kind, const std::string& name, const std::string& version);
    /// The Updater's ImageStreamer: the firmware image from the artifact store into the slot.
    std::expected<void, firmware::StreamFailure> streamFirmware(const firmware::UpdateRecord& r,
                                                                security::StreamWriter& out);
    [[nodiscard]] Status provenanceAllows(const bundle::Bundle& b, const bundle::Artifact& a) const;

    void runStateCommand(const std::vector<std::string>& command, std::vector<std::string> args) const;
    void setDomain(const std::string& domain, const std::string& state, const std::string& reason = {});
    void changed();
    void persistOutcome();
    void loadOutcome();

    EventLoop& loop_;
    const Clock& clock_;
    store::Store& store_;
    OtaSettings settings_;
    OtaParts parts_;
    std::function<void()> on_change_;
    InstalledFn on_installed_;
    std::function<void(std::uint64_t)> on_models_settled_;
    void installed(const std::string& kind, const std::string& name, const std::string& version,
                   const std::string& sha256) {
        if (on_installed_) on_installed_(kind, name, version, sha256);
    }
    void reportRunning();
    /// At start: deletes downloads (firmware-*, model-*, with their .part and .zst files) that
    /// the applied bundle no longer needs.
    void removeUnwantedDownloads();

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::optional<Plan> pending_;  // newest plan not yet taken by the worker
    bool stopping_ = false;
    std::string firmware_name_ = "firmware";  // the bundle's name of the image (worker thread)
    nlohmann::json status_;        // guarded by mu_
    std::string content_;          // guarded by mu_: the content digest of the plan in status_
    std::thread worker_;
};

}  // namespace edge::edged
