#include "firmware/updater.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "firmware/command.hpp"
#include "firmware/errors.hpp"
#include "security/crypto.hpp"
#include "shared/core/text.hpp"

#include <nlohmann/json.hpp>

namespace edge::firmware {

Result<Updater> Updater::open(store::Store& store, BootControl& boot, Rebooter& rebooter,
                              const Clock& clock, UpdaterConfig config, UpdaterHooks hooks) {
    auto machine = UpdateMachine::load(store, hooks.on_transition);
    if (!machine) return fail(std::move(machine.error()));
    return Updater(std::move(*machine), store, boot, rebooter, clock, std::move(config),
                   std::move(hooks));
}

Updater::Updater(UpdateMachine machine, store::Store& store, BootControl& boot, Rebooter& rebooter,
                 const Clock& clock, UpdaterConfig config, UpdaterHooks hooks)
    : machine_(std::move(machine)),
      boot_(&boot),
      rebooter_(&rebooter),
      clock_(&clock),
      config_(std::move(config)),
      hooks_(std::move(hooks)),
      store_(&store) {}

bool Updater::shouldInstall(std::string_view version) const {
    const auto& r = record();
    if (!r.last_failed_version.empty() && version == r.last_failed_version) return false;
    if (!r.current_version.empty() && version == r.current_version) return false;
    return true;
}

Status Updater::start(const FirmwareImage& image, const std::filesystem::path& image_path,
                      bool retry_failed) {
    return begin(image, image_path.string(), {}, retry_failed);
}

Status Updater::startStreamed(const FirmwareImage& image, const std::string& url,
                              bool retry_failed) {
    if (url.empty()) return fail(FirmwareErrc::kInvalidArgument, "firmware: no URL to stream from");
    if (!streamer_) return fail(FirmwareErrc::kInvalidArgument, "firmware: no image streamer set");
    return begin(image, {}, url, retry_failed);
}

Status Updater::continueInstall() {
    failure_.reset();
    if (record().state != UpdateState::kInstalling || record().image_url.empty()) {
        return fail(FirmwareErrc::kBadTransition,
                    fmt::format("firmware: no streamed install to continue (state {})",
                                stateName(record().state)));
    }
    auto boot = boot_->state();
    if (!boot) return fail(std::move(boot.error()).wrap("continue firmware install"));
    if (!resumed_) {
        // The first time in this run counts as a resume (the loop guard sees a daemon that
        // keeps dying while it streams) unless the stream got further since the last restart;
        // retries within the run after a network failure don't count.
        resumed_ = true;
        if (!progressedSinceLastRun()) {
            if (auto st = resume(); !st) return st;
        }
    }
    if (auto ran = run(boot->booted, {}); !ran) return ran;
    if (record().state == UpdateState::kFailed) {
        if (failure_) return fail(*failure_);
        return fail(FirmwareErrc::kRefused, record().reason);
    }
    return {};
}

Status Updater::begin(const FirmwareImage& image, std::string path, std::string url,
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
    clearCheckpoint();  // a checkpoint of an earlier update never carries over
    auto st = machine_.fire(UpdateEvent::kStart, [&](UpdateRecord& r) {
        r.target = image;
        r.old_slot = old_slot;
        r.target_slot = otherSlot(old_slot);
        r.image_path = std::move(path);
        r.image_url = std::move(url);
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
            if (r.state == UpdateState::kCommitted && booted != target) {
                // The committed slot used up its attempts (it panics now, or power cuts during
                // boot took them), or the bootloader skipped it on its last attempt, and the
                // old slot runs: the record says so, with the previous version as current, and
                // the committed slot leaves the order, as any failed target does.
                st = machine_.fire(UpdateEvent::kBootedOld, [&](UpdateRecord& rec) {
                    rec.reason = fmt::format(
                        "slot {} stopped booting after version {} was committed; the "
                        "bootloader fell back to slot {}",
                        slotName(target), rec.target.version, slotName(booted));
                });
                if (!st) return fail(std::move(st.error()).wrap("firmware update after boot"));
                return boot_->fallBack(target);
            }
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
                // The old slot booted again before the trial boot, and the bootloader spent one
                // of its attempts: give them back (as every boot does in a final state), then arm
                // the trial and reboot again. Otherwise reboots or power cuts here would drain it.
                if (auto armed = boot_->markGood(booted); !armed) {
                    return fail(std::move(armed.error()).wrap("firmware update after boot"));
                }
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
                // The bootloader spent one of the running slot's attempts on this boot: give them
                // back, and keep the target unbootable, as Installing's entry action does. A long
                // install through many reboots or power cuts must never drain both slots.
                if (auto armed = boot_->fallBack(target); !armed) {
                    return fail(std::move(armed.error()).wrap("firmware update after boot"));
                }
                // A streamed install goes on only when the plan still asks for that image
                // (continueInstall), not before: a newer bundle may want another one, or none.
                if (r.state == UpdateState::kInstalling && !r.image_url.empty()) return {};
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

Updater::Checkpoint Updater::loadCheckpoint() const {
    const auto& r = record();
    auto stored = store_->getOne(kFirmwareDb, kStreamCheckpointKey);
    if (!stored || !*stored) return {};
    const auto j = nlohmann::json::parse(**stored, nullptr, false);
    try {
        if (!j.is_object() || j.value("sha256", "") != r.target.sha256 ||
            j.value("slot", "") != slotName(r.target_slot)) {
            return {};
        }
        const auto bytes = j.value("bytes", std::uint64_t{0});
        if (bytes > r.target.size) return {};
        const auto at = j.find("resumed_at");
        return {bytes, at != j.end() && at->is_number_unsigned() ? at->get<std::uint64_t>() : 0};
    } catch (const nlohmann::json::exception&) {
        return {};  // mistyped: start from byte 0
    }
}

bool Updater::progressedSinceLastRun() {
    const auto [bytes, before] = loadCheckpoint();  // 0 unless it is this update's
    resumed_at_ = bytes;
    if (bytes <= before) return false;
    saveCheckpoint(bytes);  // now with resumed_at: the next restart compares with this one
    return true;
}

void Updater::saveCheckpoint(std::uint64_t durable) {
    const auto& r = record();
    const nlohmann::json j = {{"sha256", r.target.sha256},
                              {"slot", slotName(r.target_slot)},
                              {"bytes", durable},
                              {"resumed_at", resumed_at_}};
    // Losing one only costs a longer resume.
    [[maybe_unused]] auto ignored = store_->putOne(kFirmwareDb, kStreamCheckpointKey, jsonText(j));
}

void Updater::clearCheckpoint() {
    resumed_at_ = 0;
    [[maybe_unused]] auto ignored = store_->write(
        [](store::WriteTxn& txn) { return txn.del(kFirmwareDb, kStreamCheckpointKey); });
}

Status Updater::installStreamed(Slot target) {
    const auto& r = record();
    const auto what = fmt::format("install slot {} from {}", slotName(target), r.image_url);
    if (!streamer_) {
        return failWith(UpdateEvent::kInstallFailed,
                        Error(FirmwareErrc::kInvalidArgument, what + ": no image streamer set"));
    }
    InstallOptions options;
    options.chunk_size = config_.chunk_size;
    options.direct_io = config_.direct_io;
    options.active_slot = config_.slots.of(r.old_slot);
    const auto open = [&] {
        security::StreamWriterOptions writer;
        writer.checkpoint_bytes = config_.checkpoint_bytes;
        writer.on_checkpoint = [this](std::uint64_t durable) { saveCheckpoint(durable); };
        return SlotStream::open(config_.slots.of(target), options, std::move(writer));
    };
    auto slot = open();
    if (!slot) return failWith(UpdateEvent::kInstallFailed, std::move(slot.error()).wrap(what));
    std::uint64_t resumed = loadCheckpoint().bytes;
    if (resumed > 0) {
        if (auto adopted = (*slot)->writer().adopt(resumed); !adopted) {
            clearCheckpoint();
            return failWith(UpdateEvent::kInstallFailed, std::move(adopted.error()).wrap(what));
        }
    }
    while (true) {
        auto& out = (*slot)->writer();
        auto streamed = streamer_(r, out);
        if (!streamed && streamed.error().retry_later) {
            // Keep what arrived: the next attempt continues after it.
            [[maybe_unused]] auto kept = out.checkpoint();
            return fail(std::move(streamed.error().error).wrap(what));
        }
        if (!streamed) {
            clearCheckpoint();
            return failWith(UpdateEvent::kInstallFailed,
                            std::move(streamed.error().error).wrap(what));
        }
        // The checkpoint stays until Installed is persisted: a crash or power cut while the
        // slot is synced and checked (seconds for a large image) resumes from it, not from byte
        // 0. One left behind by a crash right after is harmless: Start clears it, and only
        // Installing reads it.
        auto done = (*slot)->finish(r.target.size, r.target.sha256, config_.verify_readback);
        if (done) {
            auto installed = machine_.fire(UpdateEvent::kInstallOk);
            if (installed) clearCheckpoint();  // not persisted: a retry resumes from it
            return installed;
        }
        clearCheckpoint();
        const bool bad_bytes = done.error().code() == FirmwareErrc::kDigest ||
                               done.error().code() == FirmwareErrc::kSize;
        if (resumed == 0 || !bad_bytes) {
            return failWith(UpdateEvent::kInstallFailed, std::move(done.error()).wrap(what));
        }
        // The resumed prefix was not what it should be (a slot changed behind the checkpoint):
        // once more from byte 0 before giving up on the image.
        resumed = 0;
        slot = open();
        if (!slot) return failWith(UpdateEvent::kInstallFailed, std::move(slot.error()).wrap(what));
        if (auto again = (*slot)->writer().restart(); !again) {
            return failWith(UpdateEvent::kInstallFailed, std::move(again.error()).wrap(what));
        }
    }
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
                if (!r.image_url.empty()) {
                    if (auto streamed = installStreamed(target); !streamed) return streamed;
                    break;  // it fired InstallOk or InstallFailed
                }
                InstallOptions options;
                options.chunk_size = config_.chunk_size;
                options.read_back = config_.verify_readback;
                options.direct_io = config_.direct_io;
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
                    // No verdict (the daemon stops): Verifying stays, the next start checks again.
                    if (healthy.error().code() == FirmwareErrc::kInterrupted) return healthy;
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
