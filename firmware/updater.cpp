#include "firmware/updater.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "firmware/command.hpp"
#include "firmware/errors.hpp"
#include "security/crypto.hpp"

namespace edge::firmware {

Result<Updater> Updater::open(store::Store& store, BootControl& boot, Rebooter& rebooter,
                              const Clock& clock, UpdaterConfig config, UpdaterHooks hooks) {
    auto machine = UpdateMachine::load(store, hooks.on_transition);
    if (!machine) return fail(std::move(machine.error()));
    return Updater(std::move(*machine), boot, rebooter, clock, std::move(config), std::move(hooks));
}

Updater::Updater(UpdateMachine machine, BootControl& boot, Rebooter& rebooter, const Clock& clock,
                 UpdaterConfig config, UpdaterHooks hooks)
    : machine_(std::move(machine)),
      boot_(&boot),
      rebooter_(&rebooter),
      clock_(&clock),
      config_(std::move(config)),
      hooks_(std::move(hooks)) {}

bool Updater::shouldInstall(std::string_view version) const {
    const auto& r = record();
    if (!r.last_failed_version.empty() && version == r.last_failed_version) return false;
    if (!r.current_version.empty() && version == r.current_version) return false;
    return true;
}

Status Updater::start(const FirmwareImage& image, const std::filesystem::path& image_path,
                      bool retry_failed) {
    failure_.reset();
    if (!isFinal(record().state)) {
        return fail(FirmwareErrc::kRefused,
                    fmt::format("firmware {}: an update to {} is in progress (state {})",
                                image.version, record().target.version, stateName(record().state)));
    }
    if (image.version.empty() || image.size == 0 || !security::isSha256Hex(image.sha256)) {
        return fail(FirmwareErrc::kInvalidArgument,
                    fmt::format("firmware '{}': needs a version, a size above 0 and a lowercase "
                                "hex sha256",
                                image.version));
    }
    const bool retry = retry_failed && image.version == record().last_failed_version &&
                       image.version != record().current_version;
    if (!retry && !shouldInstall(image.version)) {
        return fail(FirmwareErrc::kRefused,
                    image.version == record().current_version
                        ? fmt::format("firmware {} is already installed", image.version)
                        : fmt::format("firmware {} failed before; waiting for another version",
                                      image.version));
    }
    auto boot = boot_->state();
    if (!boot) return fail(std::move(boot.error()).wrap("start firmware update"));
    if (record().state == UpdateState::kFailed && boot->booted == record().target_slot) {
        // Still running the slot the last update found bad (its rollback reboot did not happen):
        // the inactive slot is the only good one, so it must not be overwritten.
        return fail(
            FirmwareErrc::kRefused,
            fmt::format("firmware {}: running from slot {}, which failed its update; "
                        "reboot into slot {} first",
                        image.version, slotName(boot->booted), slotName(record().old_slot)));
    }
    const Slot old_slot = boot->booted;
    auto st = machine_.fire(UpdateEvent::kStart, [&](UpdateRecord& r) {
        r.target = image;
        r.old_slot = old_slot;
        r.target_slot = otherSlot(old_slot);
        r.image_path = image_path.string();
    });
    if (!st) return st;
    if (auto ran = run(old_slot, {}); !ran) return ran;
    if (record().state == UpdateState::kFailed) {
        if (failure_) return fail(*failure_);
        return fail(FirmwareErrc::kRefused, record().reason);
    }
    return {};
}

Status Updater::afterBoot(const HealthCheck& health) {
    failure_.reset();
    auto boot = boot_->state();
    if (!boot) return fail(std::move(boot.error()).wrap("firmware update after boot"));
    const auto& r = record();
    const Slot booted = boot->booted;
    const Slot target = r.target_slot;
    const Slot old_slot = r.old_slot;
    Status st;
    switch (r.state) {
        case UpdateState::kIdle:
        case UpdateState::kCommitted:
        case UpdateState::kFailed:
            // Never re-arm the slot this update found bad while still running on it.
            if (r.state == UpdateState::kFailed && booted == target) return {};
            return boot_->markGood(booted);
        case UpdateState::kRebooting:
            if (booted == target) {
                st = machine_.fire(UpdateEvent::kBootedNew);
            } else if (boot->primary() == target && boot->attemptsLeft(target) == 0) {
                st = machine_.fire(UpdateEvent::kBootedOld, [&](UpdateRecord& rec) {
                    rec.reason =
                        fmt::format("slot {} did not boot; the bootloader fell back to slot {}",
                                    slotName(target), slotName(booted));
                });
            } else {
                st = resume();  // armed but not yet booted, or not armed yet: arm and reboot again
            }
            break;
        case UpdateState::kVerifying:
        case UpdateState::kCommitting:
            if (booted == target) {
                st = resume();
            } else {
                st = machine_.fire(UpdateEvent::kBootedOld, [&](UpdateRecord& rec) {
                    rec.reason = fmt::format(
                        "the system came back on slot {} before slot {} was "
                        "committed",
                        slotName(booted), slotName(target));
                });
            }
            break;
        case UpdateState::kInstalling:
        case UpdateState::kInstalled:
            if (booted != old_slot) {
                st = machine_.fire(UpdateEvent::kAbort, [&](UpdateRecord& rec) {
                    rec.reason = fmt::format("running from slot {} while installing into it",
                                             slotName(booted));
                });
            } else {
                st = resume();
            }
            break;
        case UpdateState::kRollingBack:
            st = resume();
            break;
    }
    if (!st) return st;
    return run(booted, health);
}

Status Updater::abort(std::string reason) {
    failure_.reset();
    auto boot = boot_->state();
    if (!boot) return fail(std::move(boot.error()).wrap("abort firmware update"));
    auto st =
        machine_.fire(UpdateEvent::kAbort, [&](UpdateRecord& r) { r.reason = std::move(reason); });
    if (!st) return st;
    return run(boot->booted, {});
}

Status Updater::resume() {
    auto st = machine_.fire(UpdateEvent::kResume);
    if (st || st.error().code() != FirmwareErrc::kLoopGuard) return st;
    if (record().state == UpdateState::kRollingBack) {
        // Giving up on the rollback: make sure once more the target slot is not armed.
        [[maybe_unused]] auto ignored = boot_->fallBack(record().target_slot);
    }
    const std::string reason = st.error().message();
    return machine_.fire(UpdateEvent::kAbort, [&](UpdateRecord& r) { r.reason = reason; });
}

Status Updater::failWith(UpdateEvent event, Error error) {
    auto st = machine_.fire(event, [&](UpdateRecord& r) { r.reason = error.what(); });
    failure_ = std::move(error);
    return st;
}

Status Updater::checkHealth(const HealthCheck& health) {
    if (health) {
        if (auto st = health(); !st) return st;
    }
    if (!config_.health_command.empty()) {
        auto out = runChecked(*clock_, config_.health_command, {config_.health_timeout, 64 * 1024});
        if (!out) return fail(std::move(out.error()));
    }
    return {};
}

Status Updater::run(Slot booted, const HealthCheck& health) {
    while (true) {
        const UpdateRecord& r = record();
        const Slot target = r.target_slot;
        Status st;
        switch (r.state) {
            case UpdateState::kIdle:
            case UpdateState::kCommitted:
            case UpdateState::kFailed:
                return {};

            case UpdateState::kInstalling: {
                // As RAUC does: the target slot is unbootable before its first byte changes, so
                // no crash during the write can ever boot a half-written slot.
                if (auto off = boot_->fallBack(target); !off) {
                    st = failWith(UpdateEvent::kInstallFailed,
                                  std::move(off.error())
                                      .wrap(fmt::format("install slot {}", slotName(target))));
                    break;
                }
                InstallOptions options;
                options.chunk_size = config_.chunk_size;
                options.read_back = config_.verify_readback;
                options.active_slot = config_.slots.of(r.old_slot);
                options.progress = hooks_.progress;
                auto written = installImage(r.image_path, config_.slots.of(target), r.target.size,
                                            r.target.sha256, options);
                if (!written) {
                    st = failWith(UpdateEvent::kInstallFailed,
                                  std::move(written.error())
                                      .wrap(fmt::format("install slot {}", slotName(target))));
                } else {
                    st = machine_.fire(UpdateEvent::kInstallOk);
                }
                break;
            }

            case UpdateState::kInstalled:
                st = machine_.fire(UpdateEvent::kRebootRequested);
                break;

            case UpdateState::kRebooting: {
                if (auto armed = boot_->tryOnce(target); !armed) {
                    st = failWith(UpdateEvent::kAbort, std::move(armed.error()));
                    break;
                }
                if (auto rebooting = rebooter_->reboot(); !rebooting) {
                    st = failWith(UpdateEvent::kAbort, std::move(rebooting.error()));
                    break;
                }
                return {};  // the rest happens in afterBoot() on the next start
            }

            case UpdateState::kVerifying:
                if (auto healthy = checkHealth(health); !healthy) {
                    st = failWith(UpdateEvent::kHealthFailed,
                                  std::move(healthy.error()).wrap("health check failed"));
                } else {
                    st = machine_.fire(UpdateEvent::kHealthOk);
                }
                break;

            case UpdateState::kCommitting:
                if (auto good = boot_->markGood(target); !good) return good;  // resume retries
                st = machine_.fire(UpdateEvent::kCommitDone);
                break;

            case UpdateState::kRollingBack:
                if (auto back = boot_->fallBack(target); !back) return back;  // resume retries
                if (booted == target) {
                    // Still on the bad slot: leave it. The rollback finishes after the boot.
                    auto rebooting = rebooter_->reboot();
                    if (!rebooting) return fail(std::move(rebooting.error()).wrap("roll back"));
                    return {};
                }
                st = machine_.fire(UpdateEvent::kRollbackDone);
                break;
        }
        if (!st) return st;
    }
}

}  // namespace edge::firmware
