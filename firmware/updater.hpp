#pragma once
// Updater: drives one A/B firmware update through the UpdateMachine, the BootControl, the slot
// writer and the Rebooter. What each state does (its entry action; all idempotent):
//
//   Installing   make the target slot unbootable (fallBack), then installImage() into it, or
//                for a streamed update let the ImageStreamer write it into the slot from the
//                last checkpoint on, and check size and digest there (a resumed stream whose
//                digest is wrong is streamed once more from byte 0 before it fails)
//                -> InstallOk, or InstallFailed with the reason (a transient streaming failure
//                fires nothing: the update stays Installing, continueInstall() goes on later)
//   Installed    -> RebootRequested
//   Rebooting    tryOnce(target) and Rebooter::reboot(); then wait for the reboot
//                (a failure of either -> Abort -> RollingBack)
//   Verifying    health check: the callable, then the configured command with its timeout
//                -> HealthOk, or HealthFailed with the reason
//   Committing   markGood(target) -> CommitDone
//   RollingBack  fallBack(target); if the system still runs the target slot, reboot (and
//                finish after the boot), else -> RollbackDone
//
// afterBoot() looks at the booted slot to decide how to continue after any restart:
//   Rebooting  + booted target                     -> BootedNew (Verifying)
//   Rebooting  + booted old, target armed, unused  -> markGood(old), Resume (the reboot never
//                                                     happened)
//   Rebooting  + booted old, target armed, used up -> BootedOld: "slot B did not boot"
//   Rebooting  + booted old, target not armed      -> markGood(old), Resume (crashed before
//                                                     tryOnce)
//   Installing, streamed, booted old               -> fallBack(target) only: continueInstall()
//                                                     goes on
//   Installing / Installed, booted old             -> fallBack(target), Resume
//   (the markGood/fallBack give the running slot back the attempt the bootloader just took:
//   reboots or power cuts before the update moves on never drain it)
//   Verifying / Committing + booted old            -> BootedOld (RollingBack)
//   any other non-final state                      -> Resume (re-run the entry action)
//   Committed  + booted old                        -> BootedOld (Failed), fallBack(target):
//                                                     the committed slot stopped booting
//   final states                                   -> markGood(booted slot), as RAUC's
//       mark-good service does on every boot, so the running slot never runs out of attempts —
//       except after a failure while still on the bad target slot.
// Resume past UpdateMachine::kMaxTransitions aborts the update ("loop guard"). So a restart at
// any point resumes or rolls back, never loops, and the old slot stays bootable throughout:
// it is only ever raised (fallBack, markGood) until the target slot is committed.
//
// Blocking (disk I/O, hashing, commands): run it on a worker thread. Not thread-safe.
#include <chrono>
#include <cstdint>
#include <expected>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "firmware/boot_control.hpp"
#include "firmware/rebooter.hpp"
#include "firmware/slot_writer.hpp"
#include "firmware/update_machine.hpp"
#include "shared/core/clock.hpp"
#include "shared/store/store.hpp"

namespace edge::firmware {

/// The daemon's own health verdict after booting a new slot; an error fails the update, except
/// FirmwareErrc::kInterrupted (cut short, e.g. the daemon stops): no verdict, the update stays
/// Verifying and the next start checks again.
using HealthCheck = std::function<Status()>;

struct UpdaterConfig {
    SlotPaths slots;
    std::size_t chunk_size = 1u << 20;
    bool verify_readback = false;  // InstallOptions::read_back
    bool direct_io = true;         // InstallOptions::direct_io
    /// Optional argv run after the HealthCheck passes; a non-zero exit or a timeout fails it.
    std::vector<std::string> health_command;
    std::chrono::milliseconds health_timeout{60'000};
    /// A streamed install syncs the slot and persists its length this often (db "firmware",
    /// key "stream"); after a crash it resumes there instead of at byte 0.
    std::uint64_t checkpoint_bytes = 64u << 20;
};

/// Why an ImageStreamer stopped; retry_later: a transient failure (network, server away), so
/// the update stays Installing and resumes from the slot's last checkpoint.
struct StreamFailure {
    Error error;
    bool retry_later = false;
};
/// Writes the image of record (target, image_url) into out, which already holds out.size()
/// bytes of it (resumed); returns once exactly target.size bytes were appended (the Updater
/// checks the digest). Runs on the Updater's thread.
using ImageStreamer = std::function<std::expected<void, StreamFailure>(
    const UpdateRecord& record, security::StreamWriter& out)>;

inline constexpr std::string_view kStreamCheckpointKey = "stream";

struct UpdaterHooks {
    /// After every persisted transition (status reporting).
    UpdateMachine::PersistHook on_transition;
    /// While the image is written.
    InstallProgress progress;
};

class Updater {
public:
    /// Loads the persisted record. store, boot, rebooter and clock must outlive the Updater.
    [[nodiscard]] static Result<Updater> open(store::Store& store, BootControl& boot,
                                              Rebooter& rebooter, const Clock& clock,
                                              UpdaterConfig config, UpdaterHooks hooks = {});

    [[nodiscard]] const UpdateRecord& record() const { return machine_.record(); }

    /// False when version is the last one that failed (until another update commits) or the
    /// one already committed. Which version is newer is the caller's (edged's) decision.
    [[nodiscard]] bool shouldInstall(std::string_view version) const;

    /// Installs image_path (declared by image) into the inactive slot, arms it to try once and
    /// requests a reboot. Returns success once the reboot is requested (state Rebooting).
    /// retry_failed: the caller has a newer request for the version that failed last (a newer
    /// bundle asks again), so that version may be tried once more.
    /// Errors: kRefused (an update is in progress, !shouldInstall, or the system still runs the
    /// slot the last update failed on), kInvalidArgument (bad
    /// image declaration), boot control or store errors before Start; after Start, the failure
    /// that ended the update (state Failed, record().reason says why).
    [[nodiscard]] Status start(const FirmwareImage& image, const std::filesystem::path& image_path,
                               bool retry_failed = false);

    /// start(), with the image streamed from url straight into the slot by the ImageStreamer
    /// (setImageStreamer): one pass instead of a download then a copy. The slot is unbootable
    /// while it is written and armed only once its size and digest are right. A transient
    /// streaming failure returns its error with the update still Installing (continueInstall).
    [[nodiscard]] Status startStreamed(const FirmwareImage& image, const std::string& url,
                                       bool retry_failed = false);
    /// Goes on with a streamed install that a transient failure or a restart stopped (state
    /// Installing; afterBoot leaves a streamed install for this call, so that the plan decides
    /// whether the image is still wanted): same results as startStreamed(). The first call in a
    /// run counts as a Resume for the loop guard, unless the durable checkpoint got further than
    /// at the run before: a long download through many power cuts goes on, a daemon that dies at
    /// the same place every time is stopped. kBadTransition in any other state.
    [[nodiscard]] Status continueInstall();
    /// Set before start/afterBoot; afterBoot resumes a streamed install with it.
    void setImageStreamer(ImageStreamer streamer) { streamer_ = std::move(streamer); }
    /// Call once each time the daemon starts (after a reboot or a crash): continues, finishes
    /// or rolls back whatever update the record holds (see the header comment). An update that
    /// ends Failed is a result, not an error: read record(). Errors mean no progress could be
    /// made (boot control or store unusable); calling again later retries.
    [[nodiscard]] Status afterBoot(const HealthCheck& health = {});

    /// Stops the update in progress: before the reboot it ends Failed; after it, it rolls back
    /// (which may request a reboot). kBadTransition when no update is in progress.
    [[nodiscard]] Status abort(std::string reason);

private:
    Updater(UpdateMachine machine, store::Store& store, BootControl& boot, Rebooter& rebooter,
            const Clock& clock, UpdaterConfig config, UpdaterHooks hooks);

    /// Runs entry actions from the current state until the update waits for a reboot, reaches
    /// a final state, or a step fails.
    [[nodiscard]] Status run(Slot booted, const HealthCheck& health);
    /// Resume, or Abort("loop guard ...") when the machine refuses it.
    [[nodiscard]] Status resume();
    /// Fires a failure event with its reason and remembers the error for start().
    [[nodiscard]] Status failWith(UpdateEvent event, Error error);
    [[nodiscard]] Status checkHealth(const HealthCheck& health);
    /// Common part of start() and startStreamed(): checks, then Start with the image's source.
    [[nodiscard]] Status begin(const FirmwareImage& image, std::string path, std::string url,
                               bool retry_failed);
    /// The Installing entry action of a streamed update. An error return means a transient
    /// failure (no event fired); otherwise the event fired says how it went.
    [[nodiscard]] Status installStreamed(Slot target);
    /// The durable stream checkpoint of this update (zeros when there is none, or it is of
    /// another image or slot): bytes in the slot, and bytes at the previous run's first
    /// continueInstall() (resumed_at).
    struct Checkpoint {
        std::uint64_t bytes = 0;
        std::uint64_t resumed_at = 0;
    };
    [[nodiscard]] Checkpoint loadCheckpoint() const;
    void saveCheckpoint(std::uint64_t durable);
    void clearCheckpoint();
    /// For continueInstall()'s first call in a run: whether the checkpoint is further than at
    /// the previous run's first call.
    [[nodiscard]] bool progressedSinceLastRun();

    UpdateMachine machine_;
    BootControl* boot_;
    Rebooter* rebooter_;
    const Clock* clock_;
    UpdaterConfig config_;
    UpdaterHooks hooks_;
    std::optional<Error> failure_;  // what ended the update during the current call
    ImageStreamer streamer_;
    store::Store* store_;
    bool resumed_ = false;  // continueInstall() fired its Resume in this run
    std::uint64_t resumed_at_ = 0;  // the checkpoint at this run's first continueInstall()
};

}  // namespace edge::firmware
