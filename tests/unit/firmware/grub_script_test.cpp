// The shipped GRUB script (deploy/boot/grub/ab-select.cfg) run by GRUB itself: grub-emu boots a
// disk image holding the script, a grub.cfg that sources it and prints the slot, and the
// environment block, which GRUB's save_env writes through its own ext2 driver. The daemon's side
// is the real GrubBootControl (grub-editenv) on the same block. Checked: the script picks and
// counts down exactly as the simulated bootloader the other firmware tests use; values edged
// never writes do not take it anywhere unsafe; whole updates (commit, health check failing, a
// slot that never boots) end on a good slot. update_crash_test.cpp crashes
// the device with GRUB as its bootloader too.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "firmware/errors.hpp"
#include "firmware/updater.hpp"
#include "tests/unit/firmware/grub_rig.hpp"

namespace edge::firmware {
namespace {

using test::Device;
using test::GrubBootRig;
using test::GrubTools;
using test::TempDir;
using test::BootEnv;
using test::stateOf;
using test::what;

void setGrubEnv(const GrubTools& tools, const GrubBootRig& rig, const test::BootEnv& env,
                const std::vector<std::string>& extra = {}) {
    std::filesystem::remove(rig.envFile());
    REQUIRE(test::runTool({tools.editenv, rig.envFile().string(), "create"}));
    auto args = env.assignments();
    args.insert(args.end(), extra.begin(), extra.end());
    if (args.empty()) return;
    std::vector<std::string> argv{tools.editenv, rig.envFile().string(), "set"};
    argv.insert(argv.end(), args.begin(), args.end());
    REQUIRE(test::runTool(argv));
}

std::string grubList(const GrubTools& tools, const GrubBootRig& rig) {
    return edge::test::runCommand({tools.editenv, rig.envFile().string(), "list"}).out;
}

}  // namespace

TEST_CASE("GRUB scripts: the shipped grub.cfg and ab-select.cfg pass grub-script-check", "[firmware][grub]") {
    const auto tools = test::requireGrubTools();
    for (const char* name : {"ab-select.cfg", "grub.cfg"}) {
        CAPTURE(name);
        std::string out;
        const auto st = test::runTool({tools.script_check, (test::kGrubScripts / name).string()}, &out);
        INFO(what(st));
        CHECK(st);
    }
}

TEST_CASE("GRUB script: ab-select.cfg picks and counts down as the simulated bootloader does",
          "[firmware][grub]") {
    const auto tools = test::requireGrubTools();
    TempDir tmp;
    GrubBootRig grub(tools, tmp / "grub");
    test::FileBootRig file(tmp / "bootenv", tmp / "booted");
    int boots = 0, resets = 0;
    for (const auto& env : test::bootEnvMatrix()) {
        CAPTURE(env.describe());
        setGrubEnv(tools, grub, env);
        test::writeFileEnv(file.env, env);
        auto grub_before = stateOf(*grub.control());

        auto expected = file.boot();
        INFO(what(expected));
        REQUIRE(expected);  // every order of the matrix names a slot
        auto got = grub.boot();
        INFO("GRUB said: " << grub.output);
        INFO(what(got));
        REQUIRE(got);
        ++boots;
        // The same slot, and the same environment afterwards (as the daemon reads it); a slot
        // left out of the order is never booted.
        CHECK(*got == *expected);
        CHECK(std::ranges::find(grub_before.order, *got) != grub_before.order.end());
        auto want = stateOf(*file.control());
        auto have = stateOf(*grub.control());
        CHECK(have == want);
        if (grub_before.nextBoot()) {
            CHECK(have.attemptsLeft(*got) == grub_before.attemptsLeft(*got) - 1);
        } else {
            // Every slot of the order used up: they all get their attempts back, and the
            // first boots, counted.
            CHECK_THAT(grub.output, Catch::Contains("no slot has boot attempts left"));
            CHECK(*got == grub_before.order.front());
            for (Slot s : grub_before.order) {
                CHECK(have.attemptsLeft(s) == kDefaultMaxAttempts - (s == *got ? 1 : 0));
            }
            ++resets;
        }
    }
    CHECK(boots == 64);
    CHECK(resets > 0);
}

TEST_CASE("GRUB script: values edged never writes do not take ab-select.cfg anywhere unsafe",
          "[firmware][grub]") {
    const auto tools = test::requireGrubTools();
    TempDir tmp;
    GrubBootRig grub(tools, tmp / "grub");
    const auto boot = [&] {
        auto slot = grub.boot();
        INFO("GRUB said: " << grub.output);
        INFO(what(slot));
        REQUIRE(slot);
        return *slot;
    };

    SECTION("a name in BOOT_ORDER that is not a slot is skipped") {
        setGrubEnv(tools, grub, {"X B", "3", "100"});
        CHECK(boot() == Slot::kB);
        CHECK_THAT(grub.output, Catch::Contains("BOOT_ORDER names 'X', not a slot"));
        CHECK_THAT(grubList(tools, grub), Catch::Contains("BOOT_B_LEFT=99"));
    }
    SECTION("a count that is not one edged writes is no attempt left") {
        for (const char* bad : {"junk", "101", "-1", "2x", "03", "1 2", "x' -o '1' = '1"}) {
            CAPTURE(bad);
            setGrubEnv(tools, grub, {"A B", bad, "2"});
            CHECK(boot() == Slot::kB);
            CHECK_THAT(grub.output, Catch::Contains("slot A skipped"));
            const auto listed = grubList(tools, grub);
            CHECK_THAT(listed, Catch::Contains(std::string("BOOT_A_LEFT=") + bad));
            CHECK_THAT(listed, Catch::Contains("BOOT_B_LEFT=1"));
        }
    }
    SECTION("only the three variables are loaded; others in the block stay as they are") {
        // A block that names the chosen slot, the attempts or the file to save to must not steer
        // the script (BOOT_A_LEFT is unset: ab_max_attempts from the block would set it);
        // save_env writes only the count it changed.
        setGrubEnv(tools, grub, {"A B", std::nullopt, "0"},
                   {"ab_slot=B", "ab_max_attempts=50", "ab_env=(hd0)/elsewhere", "saved_entry=1"});
        CHECK(boot() == Slot::kA);
        const auto listed = grubList(tools, grub);
        CHECK_THAT(listed, Catch::Contains("BOOT_A_LEFT=2"));
        CHECK_THAT(listed, Catch::Contains("BOOT_B_LEFT=0"));
        CHECK_THAT(listed, Catch::Contains("BOOT_ORDER=A B"));
        CHECK_THAT(listed, Catch::Contains("ab_env=(hd0)/elsewhere"));
        CHECK_THAT(listed, Catch::Contains("ab_max_attempts=50"));
        CHECK_THAT(listed, Catch::Contains("saved_entry=1"));
    }
    SECTION("a block GRUB cannot save: a slot on its last attempt is skipped, another boots uncounted") {
        grub.unsaveable = true;
        setGrubEnv(tools, grub, {"B A", "3", "1"});  // B on trial
        CHECK(boot() == Slot::kA);
        CHECK_THAT(grub.output, Catch::Contains("slot B was on its last attempt, skipped"));
        CHECK_THAT(grub.output, Catch::Contains("booting slot A uncounted"));
        auto listed = grubList(tools, grub);
        CHECK_THAT(listed, Catch::Contains("BOOT_A_LEFT=3"));
        CHECK_THAT(listed, Catch::Contains("BOOT_B_LEFT=1"));
        // B spent its try; A, on its last attempt, is still the one to boot, never B.
        setGrubEnv(tools, grub, {"B A", "1", "0"});
        CHECK(boot() == Slot::kA);
        CHECK_THAT(grub.output, Catch::Contains("booting slot A, on its last attempt"));
        // Both on their last attempt (max_attempts 1): the first of them, uncounted.
        setGrubEnv(tools, grub, {"B A", "1", "1"});
        CHECK(boot() == Slot::kB);
        CHECK_THAT(grub.output, Catch::Contains("no slot can be counted"));
        listed = grubList(tools, grub);
        CHECK_THAT(listed, Catch::Contains("BOOT_A_LEFT=1"));
        CHECK_THAT(listed, Catch::Contains("BOOT_B_LEFT=1"));
        // Nothing left, and the reset cannot be saved: the first of the order, uncounted.
        setGrubEnv(tools, grub, {"A B", "0", "0"});
        CHECK(boot() == Slot::kA);
        CHECK_THAT(grub.output, Catch::Contains("no slot has boot attempts left"));
        CHECK_THAT(grub.output, Catch::Contains("booting slot A uncounted"));
        listed = grubList(tools, grub);
        CHECK_THAT(listed, Catch::Contains("BOOT_A_LEFT=0"));
        CHECK_THAT(listed, Catch::Contains("BOOT_B_LEFT=0"));
    }
    SECTION("a slot on trial that never comes up is left after its one attempt") {
        setGrubEnv(tools, grub, {});
        auto control = grub.control();
        REQUIRE(control->fallBack(Slot::kB));  // as provisioned: B empty
        REQUIRE(control->tryOnce(Slot::kB));
        CHECK(boot() == Slot::kB);
        CHECK(boot() == Slot::kA);  // B crashed before the daemon marked it good
        CHECK(boot() == Slot::kA);
        const auto st = stateOf(*control);
        CHECK(st.booted == Slot::kA);
        CHECK(st.attemptsLeft(Slot::kB) == 0);
        CHECK(st.attemptsLeft(Slot::kA) == kDefaultMaxAttempts - 2);
    }
}

TEST_CASE("GRUB script: ab_max_attempts gives unset counts their default, up to 100", "[firmware][grub]") {
    const auto tools = test::requireGrubTools();
    TempDir tmp;
    GrubBootRig grub(tools, tmp / "grub", 100);
    setGrubEnv(tools, grub, {});
    auto slot = grub.boot();
    INFO(grub.output);
    REQUIRE(slot);
    CHECK(*slot == Slot::kA);
    CHECK_THAT(grubList(tools, grub), Catch::Contains("BOOT_A_LEFT=99"));
}

TEST_CASE("Updater with the grub backend and GRUB running ab-select.cfg: commit, failed health check, slot that never boots",
          "[firmware][grub]") {
    const auto tools = test::requireGrubTools();
    TempDir tmp;
    auto grub = std::make_shared<GrubBootRig>(tools, tmp / "grub");
    Device dev(tmp / "device", 4096, grub);
    test::checkUpdatesThroughBootloader(
        dev, [&] { return grub->output; },
        [&] {
            const auto listed = grubList(tools, *grub);
            CHECK_THAT(listed, Catch::Contains("BOOT_ORDER=B A"));
            CHECK_THAT(listed, Catch::Contains("BOOT_B_LEFT=1"));
        });
}

TEST_CASE("Updater with GRUB that cannot save its block: the trial slot is never booted, the update fails on the old slot",
          "[firmware][grub]") {
    const auto tools = test::requireGrubTools();
    TempDir tmp;
    auto grub = std::make_shared<GrubBootRig>(tools, tmp / "grub");
    Device dev(tmp / "device", 4096, grub);
    REQUIRE(test::runDevice(dev, true));
    auto started = test::startUpdate(dev, dev.image("BOOTS-OK", "2.0"));
    REQUIRE(started);
    REQUIRE(*started);
    // From now on GRUB cannot store its counts: it skips B on its one try and boots A uncounted;
    // edged asks for the reboot again until its loop guard fails the update.
    grub->unsaveable = true;
    auto run = test::runDevice(dev, true, nullptr, 40);
    INFO("GRUB said: " << grub->output);
    INFO(what(run));
    REQUIRE(run);
    CHECK(run->running == Slot::kA);
    // Start, InstallOk, RebootRequested, then one Resume per boot until the guard's 16
    // transitions: 14 boots.
    CHECK(run->boots == 14);
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("loop guard"));
    const auto boot = test::bootStateOf(dev);
    CHECK(boot.order == std::vector{Slot::kA});
    CHECK(boot.attemptsLeft(Slot::kB) == 0);
}

TEST_CASE("GRUB script: an ab_max_attempts that is not a count resets nothing", "[firmware][grub]") {
    const auto tools = test::requireGrubTools();
    TempDir tmp;
    GrubBootRig grub(tools, tmp / "grub", 0);
    setGrubEnv(tools, grub, {"B A", "0", "0"});
    auto slot = grub.boot();
    INFO(grub.output);
    REQUIRE(slot);
    CHECK(*slot == Slot::kB);  // the first of the order, uncounted
    CHECK_THAT(grub.output, Catch::Contains("no slot has boot attempts left"));
    CHECK_THAT(grub.output, Catch::Contains("no reset"));  // (GRUB wraps its console at 80 columns)
    const auto listed = grubList(tools, grub);
    CHECK_THAT(listed, Catch::Contains("BOOT_A_LEFT=0"));
    CHECK_THAT(listed, Catch::Contains("BOOT_B_LEFT=0"));
}

}  // namespace edge::firmware
