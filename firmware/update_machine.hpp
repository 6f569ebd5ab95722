#pragma once
// The firmware update as an explicit state machine: one transition table, and a record persisted
// in the Store (db "firmware", key "update") before each transition takes effect.
//
//   Idle|Committed|Failed --Start--> Installing --InstallOk--> Installed --RebootRequested-->
//   Rebooting --BootedNew--> Verifying --HealthOk--> Committing --CommitDone--> Committed
//   Rebooting|Verifying|Committing --BootedOld--> RollingBack --RollbackDone--> Failed
//   Committed --BootedOld--> Failed   (the committed slot stopped booting later: the bootloader
//                                      fell back to the old slot, which runs the previous version)
//
// Each non-final state has an entry action (run by the Updater) that is idempotent, so a restart
// re-runs it through the Resume self-transition. Without Resume the table has no cycle within
// one update; Resume is refused once an update has made kMaxTransitions transitions (the loop
// guard), and the Updater then aborts it. The Updater documents what each state does.
//
// Not thread-safe: one UpdateMachine per store, used from one thread.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "firmware/boot_control.hpp"
#include "shared/core/error.hpp"
#include "shared/store/store.hpp"

namespace edge::firmware {

enum class UpdateState {
    kIdle,         // no update yet
    kInstalling,   // target slot made unbootable; image being written and verified
    kInstalled,    // image verified in the target slot
    kRebooting,    // target slot armed to try once; reboot requested
    kVerifying,    // booted the target slot; health check pending
    kCommitting,   // health check passed; marking the target slot good
    kCommitted,    // final: the target slot is primary and good
    kRollingBack,  // making the old slot primary again (and rebooting into it if needed)
    kFailed,       // final: back on the old slot; reason says why
};

enum class UpdateEvent {
    kStart,
    kInstallOk,
    kInstallFailed,
    kRebootRequested,
    kBootedNew,  // after a reboot, the system runs the target slot
    kBootedOld,  // after a reboot, the bootloader fell back to the old slot
    kHealthOk,
    kHealthFailed,
    kCommitDone,
    kRollbackDone,
    kResume,  // restart in a non-final state: re-run the state's entry action
    kAbort,   // stop the update (operator, failed step, loop guard)
};

inline constexpr int kUpdateStateCount = 9;
inline constexpr int kUpdateEventCount = 12;

struct Transition {
    UpdateState from;
    UpdateEvent event;
    UpdateState to;
};

// clang-format off
/// THE transition table. A (state, event) pair not listed is refused and changes nothing.
inline constexpr std::array kTransitions = {
    Transition{UpdateState::kIdle,        UpdateEvent::kStart,           UpdateState::kInstalling},
    Transition{UpdateState::kCommitted,   UpdateEvent::kStart,           UpdateState::kInstalling},
    Transition{UpdateState::kFailed,      UpdateEvent::kStart,           UpdateState::kInstalling},
    Transition{UpdateState::kInstalling,  UpdateEvent::kInstallOk,       UpdateState::kInstalled},
    Transition{UpdateState::kInstalling,  UpdateEvent::kInstallFailed,   UpdateState::kFailed},
    Transition{UpdateState::kInstalling,  UpdateEvent::kResume,          UpdateState::kInstalling},
    Transition{UpdateState::kInstalling,  UpdateEvent::kAbort,           UpdateState::kFailed},
    Transition{UpdateState::kInstalled,   UpdateEvent::kRebootRequested, UpdateState::kRebooting},
    Transition{UpdateState::kInstalled,   UpdateEvent::kResume,          UpdateState::kInstalled},
    Transition{UpdateState::kInstalled,   UpdateEvent::kAbort,           UpdateState::kFailed},
    Transition{UpdateState::kRebooting,   UpdateEvent::kBootedNew,       UpdateState::kVerifying},
    Transition{UpdateState::kRebooting,   UpdateEvent::kBootedOld,       UpdateState::kRollingBack},
    Transition{UpdateState::kRebooting,   UpdateEvent::kResume,          UpdateState::kRebooting},
    Transition{UpdateState::kRebooting,   UpdateEvent::kAbort,           UpdateState::kRollingBack},
    Transition{UpdateState::kVerifying,   UpdateEvent::kHealthOk,        UpdateState::kCommitting},
    Transition{UpdateState::kVerifying,   UpdateEvent::kHealthFailed,    UpdateState::kRollingBack},
    Transition{UpdateState::kVerifying,   UpdateEvent::kBootedOld,       UpdateState::kRollingBack},
    Transition{UpdateState::kVerifying,   UpdateEvent::kResume,          UpdateState::kVerifying},
    Transition{UpdateState::kVerifying,   UpdateEvent::kAbort,           UpdateState::kRollingBack},
    Transition{UpdateState::kCommitting,  UpdateEvent::kCommitDone,      UpdateState::kCommitted},
    Transition{UpdateState::kCommitting,  UpdateEvent::kBootedOld,       UpdateState::kRollingBack},
    Transition{UpdateState::kCommitting,  UpdateEvent::kResume,          UpdateState::kCommitting},
    Transition{UpdateState::kCommitting,  UpdateEvent::kAbort,           UpdateState::kRollingBack},
    Transition{UpdateState::kCommitted,   UpdateEvent::kBootedOld,       UpdateState::kFailed},
    Transition{UpdateState::kRollingBack, UpdateEvent::kRollbackDone,    UpdateState::kFailed},
    Transition{UpdateState::kRollingBack, UpdateEvent::kResume,          UpdateState::kRollingBack},
    Transition{UpdateState::kRollingBack, UpdateEvent::kAbort,           UpdateState::kFailed},
};
// clang-format on

/// The table lookup: the next state, or nullopt when the pair is not in kTransitions.
[[nodiscard]] constexpr std::optional<UpdateState> nextState(UpdateState from, UpdateEvent event) {
    for (const auto& t : kTransitions) {
        if (t.from == from && t.event == event) return t.to;
    }
    return std::nullopt;
}

/// Idle, Committed, Failed: nothing to resume.
[[nodiscard]] constexpr bool isFinal(UpdateState s) {
    return s == UpdateState::kIdle || s == UpdateState::kCommitted || s == UpdateState::kFailed;
}

/// "idle", "installing", ... (the persisted and reported names).
[[nodiscard]] std::string_view stateName(UpdateState s);
[[nodiscard]] Result<UpdateState> parseState(std::string_view name);
/// "start", "install_ok", ...
[[nodiscard]] std::string_view eventName(UpdateEvent e);

/// The image an update installs: from the signed bundle manifest.
struct FirmwareImage {
    std::string version;
    std::string sha256;  // 64 lowercase hex chars
    std::uint64_t size = 0;
    bool operator==(const FirmwareImage&) const = default;
};

/// What is persisted. Fields other than the state survive across updates where noted.
struct UpdateRecord {
    static constexpr int kSchema = 1;

    UpdateState state = UpdateState::kIdle;
    FirmwareImage target;             // the update's image (empty while Idle)
    Slot target_slot = Slot::kB;      // the slot written (the inactive one at Start)
    Slot old_slot = Slot::kA;         // the slot running at Start: the known-good one
    std::string image_path;           // local file the image is installed from, or
    std::string image_url;            // where it is streamed from (Updater::startStreamed)
    int transitions = 0;              // of this update (reset by Start); the loop guard's count
    std::string reason;               // why it failed or is rolling back ("" otherwise)
    std::string last_failed_version;  // kept across updates; cleared by a commit
    std::string current_version;      // version of the last committed update; kept
    std::string previous_version;     // the one committed before it (what the old slot holds);
                                      // kept ("" when unknown; absent in older records)
    bool operator==(const UpdateRecord&) const = default;
};

/// JSON with "schema": 1.
[[nodiscard]] std::string toJson(const UpdateRecord& record);
/// kState on malformed JSON, missing or mistyped fields, unknown state names, or a schema other
/// than UpdateRecord::kSchema.
[[nodiscard]] Result<UpdateRecord> parseUpdateRecord(std::string_view json);

inline constexpr std::string_view kFirmwareDb = "firmware";
inline constexpr std::string_view kUpdateKey = "update";

/// The record in the store; an Idle default when there is none.
[[nodiscard]] Result<UpdateRecord> loadUpdateRecord(const store::Store& store);
/// Writes the record (one durable transaction).
[[nodiscard]] Status saveUpdateRecord(store::Store& store, const UpdateRecord& record);

class UpdateMachine {
public:
    /// Resume is refused once an update has made this many transitions.
    static constexpr int kMaxTransitions = 16;
    /// Called after each transition is durably persisted, with the new record (status
    /// reporting; crash tests stop the process here).
    using PersistHook = std::function<void(const UpdateRecord&)>;

    /// store must outlive the machine.
    [[nodiscard]] static Result<UpdateMachine> load(store::Store& store,
                                                    PersistHook on_persisted = {});

    [[nodiscard]] const UpdateRecord& record() const { return record_; }
    [[nodiscard]] UpdateState state() const { return record_.state; }

    /// Takes the transition (state(), event) from kTransitions:
    /// - not in the table: kBadTransition, nothing changes;
    /// - Resume with transitions >= kMaxTransitions: kLoopGuard, nothing changes;
    /// - else builds the next record (Start first clears transitions and reason; then edit, if
    ///   given, sets fields such as target or reason; then the machine's bookkeeping: the new
    ///   state, transitions + 1, entering Failed sets last_failed_version, entering Committed
    ///   moves current_version to previous_version, sets current_version and clears
    ///   last_failed_version; leaving Committed for Failed (the committed slot stopped booting)
    ///   gives current_version back the previous one), persists it, and only then adopts it
    ///   and calls the hook. A failed store write changes nothing.
    [[nodiscard]] Status fire(UpdateEvent event,
                              const std::function<void(UpdateRecord&)>& edit = {});

private:
    UpdateMachine(store::Store& store, UpdateRecord record, PersistHook hook)
        : store_(&store), record_(std::move(record)), hook_(std::move(hook)) {}

    store::Store* store_;
    UpdateRecord record_;
    PersistHook hook_;
};

}  // namespace edge::firmware
