// Crash tests in the Mender style: a forked child runs the daemon through a whole update (start,
// reboots played by the simulated bootloader or by GRUB, afterBoot) and exits abruptly right after the k-th
// persisted transition, after the m-th boot-control write, or at a byte offset of the slot
// write; each both for an image installed from a file and for one streamed into the slot. The parent then restarts the device — either just the daemon, or a power cycle through
// the bootloader — and checks where it ends: on a bootable, good, fully armed slot, in a final
// state that tells the truth about it, after a bounded number of boots, never with both slots bad.
#include <catch2/catch.hpp>

#include "firmware/errors.hpp"
#include "firmware/updater.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"
#include "tests/unit/firmware/grub_rig.hpp"

namespace edge::firmware {
namespace {

using test::CrashPlan;
using test::Device;
using test::TempDir;
using test::what;

constexpr int kCompletedExit = 3;
constexpr int kChildFailedExit = 4;

// The child: power on, start the update, play the device until it settles. Exits through the
// crash plan, or kCompletedExit when the plan never fired.
int runChild(Device& dev, const test::TestImage& img, CrashPlan plan) {
    if (!test::runDevice(dev, true, &plan)) return kChildFailedExit;
    auto started = test::startUpdate(dev, img, &plan);
    if (!started) return kChildFailedExit;
    if (!test::runDevice(dev, true, &plan)) return kChildFailedExit;
    return kCompletedExit;
}

enum class Expect { kCommit, kHealthFails, kNeverBoots };

// What must hold once the device settled after the crash.
void checkSettled(Device& dev, const test::TestImage& img, Expect expect, bool power_cycle) {
    auto run = test::runDevice(dev, power_cycle);
    INFO(what(run));
    REQUIRE(run);
    const auto rec = test::recordOf(dev);
    const auto boot = test::bootStateOf(dev);
    INFO("state " << stateName(rec.state) << ", reason '" << rec.reason << "', running "
                  << slotName(run->running));

    // Never stuck mid-way, never looping.
    REQUIRE((rec.state == UpdateState::kCommitted || rec.state == UpdateState::kFailed ||
             rec.state == UpdateState::kIdle));
    if (rec.state == UpdateState::kIdle) {
        // The crash came before the update started (the boot-time re-arm of slot A): nothing
        // changed, edged starts the update again.
        CHECK(run->running == Slot::kA);
        CHECK(boot.primary() == Slot::kA);
        CHECK(boot.attemptsLeft(Slot::kA) == kDefaultMaxAttempts);
        CHECK(boot.attemptsLeft(Slot::kB) == 0);
        CHECK(boot.order == std::vector{Slot::kA});  // B, empty, is disabled
        return;
    }
    CHECK(rec.transitions <= UpdateMachine::kMaxTransitions);
    CHECK(rec.target.version == img.spec.version);

    // The running slot holds a complete, bootable image and is primary with all its attempts.
    CHECK(dev.boots(run->running));
    CHECK(boot.primary() == run->running);
    CHECK(boot.attemptsLeft(run->running) == kDefaultMaxAttempts);

    if (rec.state == UpdateState::kCommitted) {
        CHECK(expect == Expect::kCommit);
        CHECK(run->running == Slot::kB);
        CHECK(test::readFile(dev.slots.b) == img.bytes);
        CHECK(rec.current_version == img.spec.version);
        // The old slot remains a bootable fallback: never two bad slots.
        CHECK(dev.boots(Slot::kA));
        CHECK(boot.attemptsLeft(Slot::kA) > 0);
        CHECK(boot.order == std::vector{Slot::kB, Slot::kA});
    } else {
        CHECK(run->running == Slot::kA);
        CHECK(test::readFile(dev.slots.a) == dev.factory.bytes);
        CHECK(boot.attemptsLeft(Slot::kB) == 0);
        CHECK(boot.order == std::vector{Slot::kA});  // the bad slot is out of the order
        CHECK(rec.last_failed_version == img.spec.version);
        CHECK_FALSE(rec.reason.empty());
        if (expect == Expect::kCommit) {
            // Only a power cut that consumed the trial boot before the commit may fail a good
            // image (like RAUC, the trial boot is not retried).
            CHECK(power_cycle);
            CHECK_THAT(rec.reason, Catch::Contains("before slot B was committed"));
        }
        if (expect == Expect::kHealthFails && !power_cycle) {
            CHECK_THAT(rec.reason, Catch::Contains("health check failed"));
        }
    }
    // Stable: the next power cycle boots the same slot and changes nothing.
    auto again = test::runDevice(dev, true);
    REQUIRE(again);
    CHECK(again->running == run->running);
    CHECK(again->boots == 1);
    CHECK(test::recordOf(dev).state == rec.state);
}

// One crash: fresh device, child crashes per plan, parent restarts. Returns false when the
// plan never fired (the whole update ran without reaching the crash point).
/// grub: GRUB running the shipped ab-select.cfg is the bootloader (else the simulated one).
bool crashAndRecover(const std::string& marker, Expect expect, CrashPlan plan, bool power_cycle,
                     bool stream, const test::GrubTools* grub = nullptr) {
    TempDir tmp;
    std::shared_ptr<test::BootRig> rig;
    if (grub != nullptr) rig = std::make_shared<test::GrubBootRig>(*grub, tmp / "grub");
    Device dev(tmp / "device", 4096, rig);
    dev.stream = stream;
    const auto img = dev.image(marker, "2.0");
    const int code = test::inChild([&] { return runChild(dev, img, plan); });
    if (code == kCompletedExit) return false;
    REQUIRE(code == test::kCrashedExit);
    checkSettled(dev, img, expect, power_cycle);
    return true;
}

struct Scenario {
    const char* marker;
    Expect expect;
};

constexpr Scenario kScenarios[] = {
    {"BOOTS-OK", Expect::kCommit},
    {"BOOTS-SICK", Expect::kHealthFails},
    {"PANIC", Expect::kNeverBoots},
};

}  // namespace

TEST_CASE("Update crash: killed after every persisted transition, the device ends on a good slot",
          "[firmware][crash]") {
    for (const bool stream : {false, true}) {
        for (const auto& scenario : kScenarios) {
            for (bool power_cycle : {false, true}) {
                int crashes = 0;
                for (int k = 1; k < 40; ++k) {
                    CAPTURE(stream, scenario.marker, power_cycle, k);
                    CrashPlan plan;
                    plan.after_transition = k;
                    if (!crashAndRecover(scenario.marker, scenario.expect, plan, power_cycle, stream)) break;
                    ++crashes;
                }
                CAPTURE(stream, scenario.marker, power_cycle);
                CHECK(crashes >= 5);  // every transition of the update was a crash point
            }
        }
    }
}

TEST_CASE("Update crash: killed after every boot-control write, the device ends on a good slot",
          "[firmware][crash]") {
    for (const bool stream : {false, true}) {
        for (const auto& scenario : kScenarios) {
            for (bool power_cycle : {false, true}) {
                int crashes = 0;
                for (int m = 1; m < 40; ++m) {
                    CAPTURE(stream, scenario.marker, power_cycle, m);
                    CrashPlan plan;
                    plan.after_boot_write = m;
                    if (!crashAndRecover(scenario.marker, scenario.expect, plan, power_cycle, stream)) break;
                    ++crashes;
                }
                CAPTURE(stream, scenario.marker, power_cycle);
                CHECK(crashes >= 3);
            }
        }
    }
}

TEST_CASE("Update crash with GRUB running ab-select.cfg: killed after every boot-environment write or transition, the device boots a good slot",
          "[firmware][crash][grub]") {
    // The boot-environment writes are where the bootloader and the daemon meet: each crash is
    // followed by a power cycle through GRUB itself (grub-emu), and by a daemon restart alone.
    const auto grub = test::requireGrubTools();
    for (const auto& scenario : kScenarios) {
        for (const bool power_cycle : {true, false}) {
            int crashes = 0;
            for (int m = 1; m < 40; ++m) {
                CAPTURE(scenario.marker, power_cycle, m);
                CrashPlan plan;
                plan.after_boot_write = m;
                if (!crashAndRecover(scenario.marker, scenario.expect, plan, power_cycle, false, &grub)) break;
                ++crashes;
            }
            CAPTURE(scenario.marker, power_cycle);
            CHECK(crashes >= 3);
        }
        int crashes = 0;
        for (int k = 1; k < 40; ++k) {
            CAPTURE(scenario.marker, k);
            CrashPlan plan;
            plan.after_transition = k;
            if (!crashAndRecover(scenario.marker, scenario.expect, plan, true, false, &grub)) break;
            ++crashes;
        }
        CAPTURE(scenario.marker);
        CHECK(crashes >= 5);
    }
}

TEST_CASE("Update crash: killed during the slot write, the half-written slot is never booted",
          "[firmware][crash]") {
    // The image is 64 KiB written in 4 KiB chunks: first chunk, middle, last chunk (before the
    // fsync and the read-back). Streamed, the slot is checkpointed every 8 KiB: a restart goes on
    // from the last checkpoint, re-hashing what the slot holds.
    for (const bool stream : {false, true}) {
        for (std::uint64_t offset : {4096u, 30'000u, 65'536u}) {
            for (bool power_cycle : {false, true}) {
                CAPTURE(stream, offset, power_cycle);
                CrashPlan plan;
                plan.at_byte = offset;
                CHECK(crashAndRecover("BOOTS-OK", Expect::kCommit, plan, power_cycle, stream));
            }
        }
    }
}

}  // namespace edge::firmware
