#include "firmware/updater.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "firmware/errors.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware {
namespace {

using test::Device;
using test::readFile;
using test::TempDir;
using test::what;

test::DeviceRun settle(Device& dev, bool power_on) {
    auto run = test::runDevice(dev, power_on);
    INFO(what(run));
    REQUIRE(run);
    return *run;
}

Status start(Device& dev, const test::TestImage& img) {
    auto started = test::startUpdate(dev, img);
    INFO(what(started));
    REQUIRE(started);
    return *started;
}

// Installs img into slot B and lets the bootloader boot it once: Verifying waits for a daemon.
void installAndBoot(Device& dev, const test::TestImage& img) {
    REQUIRE(start(dev, img));
    FileBootControl bootloader(dev.env, dev.booted);
    REQUIRE(bootloader.simulateBoot() == Slot::kB);
}

// Installs an image of version into the inactive slot and commits it there.
void commit(Device& dev, const std::string& version, Slot into) {
    REQUIRE(start(dev, dev.image("BOOTS-OK", version)));
    CHECK(settle(dev, true).running == into);
    REQUIRE(test::recordOf(dev).state == UpdateState::kCommitted);
}

// The device is on its old slot, which is primary and fully armed; the target is disarmed.
void checkBackOnOldSlot(Device& dev, const test::DeviceRun& run) {
    CHECK(run.running == Slot::kA);
    const auto boot = test::bootStateOf(dev);
    CHECK(boot.primary() == Slot::kA);
    CHECK(boot.attemptsLeft(Slot::kA) == kDefaultMaxAttempts);
    CHECK(boot.attemptsLeft(Slot::kB) == 0);
    CHECK(readFile(dev.slots.a) == dev.factory.bytes);
}

}  // namespace

TEST_CASE("Updater: a healthy image is installed, booted, checked and committed", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);  // power on, daemon idle
    CHECK(test::recordOf(dev).state == UpdateState::kIdle);
    const auto img = dev.image("BOOTS-OK", "2.0");

    auto started = start(dev, img);
    INFO(what(started));
    REQUIRE(started);
    auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kRebooting);
    CHECK(rec.target_slot == Slot::kB);
    CHECK(rec.old_slot == Slot::kA);
    CHECK(readFile(dev.slots.b) == img.bytes);
    CHECK(readFile(dev.slots.a) == dev.factory.bytes);  // the active slot is untouched
    auto boot = test::bootStateOf(dev);
    CHECK(boot.primary() == Slot::kB);
    CHECK(boot.attemptsLeft(Slot::kB) == 1);

    const auto run = settle(dev, true);
    CHECK(run.running == Slot::kB);
    rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kCommitted);
    CHECK(rec.current_version == "2.0");
    CHECK(rec.reason.empty());
    CHECK(rec.transitions == 6);
    boot = test::bootStateOf(dev);
    CHECK(boot.order == std::vector{Slot::kB, Slot::kA});
    CHECK(boot.attemptsLeft(Slot::kB) == kDefaultMaxAttempts);
    CHECK(boot.attemptsLeft(Slot::kA) > 0);  // the old slot stays the fallback

    // It sticks across reboots: every boot re-arms the running slot.
    for (int i = 0; i < 5; ++i) CHECK(settle(dev, true).running == Slot::kB);
    CHECK(test::bootStateOf(dev).attemptsLeft(Slot::kB) == kDefaultMaxAttempts);

    // The next update goes to the slot that is now inactive.
    const auto next = dev.image("BOOTS-OK", "3.0");
    REQUIRE(start(dev, next));
    CHECK(test::recordOf(dev).target_slot == Slot::kA);
    CHECK(settle(dev, true).running == Slot::kA);
    CHECK(test::recordOf(dev).state == UpdateState::kCommitted);
    CHECK(readFile(dev.slots.b) == img.bytes);
}

TEST_CASE("Updater: a committed slot that stops booting later fails the update, reporting the version that runs",
          "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    commit(dev, "2.0", Slot::kB);
    commit(dev, "3.0", Slot::kA);
    auto rec = test::recordOf(dev);
    CHECK(rec.current_version == "3.0");
    CHECK(rec.previous_version == "2.0");

    // Slot A breaks (its image now panics): the bootloader uses up its attempts and falls back
    // to slot B, which runs 2.0.
    test::writeFile(dev.slots.a, "PANIC after the commit");
    const auto run = settle(dev, true);
    CHECK(run.running == Slot::kB);
    rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK(rec.current_version == "2.0");
    CHECK(rec.last_failed_version == "3.0");
    CHECK_THAT(rec.reason, Catch::Contains("slot A stopped booting after version 3.0 was committed"));
    const auto boot = test::bootStateOf(dev);
    CHECK(boot.order == std::vector{Slot::kB});  // A is out of the order: never booted again
    CHECK(boot.attemptsLeft(Slot::kB) == kDefaultMaxAttempts);
    for (int i = 0; i < 3; ++i) CHECK(settle(dev, true).running == Slot::kB);
    CHECK(test::recordOf(dev).state == UpdateState::kFailed);
}

TEST_CASE("Updater: a committed slot the bootloader skipped on its last attempt leaves the order too",
          "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    commit(dev, "2.0", Slot::kB);
    // A bootloader that could not store its count skipped B, on its last attempt, and booted A
    // uncounted (the boot scripts' rule): B still has that attempt.
    test::writeFile(dev.env, "BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=1\n");
    test::writeFile(dev.booted, "A\n");
    auto run = test::withDaemon(dev, nullptr, [&](Updater& u) { return u.afterBoot(dev.health()); });
    INFO(what(run));
    REQUIRE(run);
    CHECK(test::recordOf(dev).state == UpdateState::kFailed);
    const auto boot = test::bootStateOf(dev);
    CHECK(boot.order == std::vector{Slot::kA});  // not kept as a fallback with its one attempt
    CHECK(boot.attemptsLeft(Slot::kB) == 0);
    CHECK(boot.attemptsLeft(Slot::kA) == kDefaultMaxAttempts);
}

TEST_CASE("Updater: a health check cut short gives no verdict: the slot stays on trial, the next start checks again",
          "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    installAndBoot(dev, dev.image("BOOTS-OK", "2.0"));
    Status interrupted;
    auto stopped = test::withDaemon(dev, nullptr, [&](Updater& u) {
        interrupted = u.afterBoot([]() -> Status { return fail(FirmwareErrc::kInterrupted, "the daemon stops"); });
        return Status{};
    });
    REQUIRE(stopped);
    CHECK(*stopped == 0);  // no rollback reboot
    REQUIRE_FALSE(interrupted);
    CHECK(interrupted.error().code() == FirmwareErrc::kInterrupted);
    CHECK(test::recordOf(dev).state == UpdateState::kVerifying);
    CHECK(test::recordOf(dev).last_failed_version.empty());
    CHECK(test::bootStateOf(dev).primary() == Slot::kB);

    // The next start (no reboot between) runs the check again and commits.
    auto next = test::withDaemon(dev, nullptr, [&](Updater& u) { return u.afterBoot(dev.health()); });
    INFO(what(next));
    REQUIRE(next);
    CHECK(test::recordOf(dev).state == UpdateState::kCommitted);
    CHECK(test::recordOf(dev).current_version == "2.0");
}

TEST_CASE("Updater: a failing health check falls back to slot A and reports why", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    const auto img = dev.image("BOOTS-SICK", "2.0");
    REQUIRE(start(dev, img));
    const auto run = settle(dev, true);
    checkBackOnOldSlot(dev, run);
    CHECK(run.boots == 2);  // into B for the trial, back into A
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("health check failed") &&
                               Catch::Contains("service 'inference' crashed"));
    CHECK(rec.last_failed_version == "2.0");
}

TEST_CASE("Updater: a new slot that never boots ends Failed on the old slot", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    const auto img = dev.image("PANIC", "2.0");
    REQUIRE(start(dev, img));
    const auto run = settle(dev, true);
    checkBackOnOldSlot(dev, run);
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("slot B did not boot"));
}

TEST_CASE("Updater: a failed version is not installed again, a newer one is", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    const auto bad = dev.image("BOOTS-SICK", "2.0");
    REQUIRE(start(dev, bad));
    settle(dev, true);
    REQUIRE(test::recordOf(dev).state == UpdateState::kFailed);

    auto again = start(dev, bad);
    REQUIRE_FALSE(again);
    CHECK(again.error().code() == FirmwareErrc::kRefused);
    CHECK_THAT(again.error().what(), Catch::Contains("2.0 failed before"));
    CHECK(test::bootStateOf(dev).attemptsLeft(Slot::kB) == 0);  // nothing was touched

    const auto fixed = dev.image("BOOTS-OK", "2.1");
    REQUIRE(start(dev, fixed));
    CHECK(settle(dev, true).running == Slot::kB);
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kCommitted);
    CHECK(rec.last_failed_version.empty());

    auto same = start(dev, fixed);
    REQUIRE_FALSE(same);
    CHECK_THAT(same.error().what(), Catch::Contains("already installed"));
}

TEST_CASE("Updater: a corrupt image fails before anything boots from it", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    auto img = dev.image("BOOTS-OK", "2.0");
    img.spec.sha256 = security::sha256Hex("not this image");
    Status started;
    auto reboots = test::withDaemon(dev, nullptr, [&](Updater& u) {
        started = u.start(img.spec, img.file);
        return Status{};
    });
    REQUIRE(reboots);
    CHECK(*reboots == 0);
    REQUIRE_FALSE(started);
    CHECK(started.error().code() == FirmwareErrc::kDigest);
    CHECK_THAT(started.error().what(), Catch::Contains("install slot B"));
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("sha256"));
    const auto run = settle(dev, true);
    checkBackOnOldSlot(dev, run);
}

TEST_CASE("Updater: a refused reboot disarms the new slot and fails the update", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");
    auto store = store::LmdbStore::open(dev.db);
    REQUIRE(store);
    FileBootControl boot(dev.env, dev.booted);
    edge::test::FakeRebooter rebooter;
    rebooter.refuse = true;
    SystemClock clock;
    auto updater = Updater::open(**store, boot, rebooter, clock, dev.config());
    REQUIRE(updater);
    auto st = updater->start(img.spec, img.file);
    REQUIRE_FALSE(st);
    CHECK_THAT(st.error().what(), Catch::Contains("systemctl reboot"));
    CHECK(updater->record().state == UpdateState::kFailed);
    CHECK_THAT(updater->record().reason, Catch::Contains("refused"));
    const auto s = test::bootStateOf(dev);
    CHECK(s.primary() == Slot::kA);
    CHECK(s.attemptsLeft(Slot::kB) == 0);
}

TEST_CASE("Updater: the configured health command and its timeout decide too", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");
    REQUIRE(start(dev, img));
    FileBootControl bootloader(dev.env, dev.booted);
    REQUIRE(bootloader.simulateBoot() == Slot::kB);

    auto store = store::LmdbStore::open(dev.db);
    REQUIRE(store);
    FileBootControl boot(dev.env, dev.booted);
    edge::test::FakeRebooter rebooter;
    SystemClock clock;
    auto config = dev.config();
    config.health_command = {"sh", "-c", "sleep 30"};
    config.health_timeout = std::chrono::milliseconds(300);
    auto updater = Updater::open(**store, boot, rebooter, clock, config);
    REQUIRE(updater);
    auto st = updater->afterBoot(dev.health());  // the in-process check passes; the command hangs
    INFO(what(st));
    REQUIRE(st);
    CHECK(updater->record().state == UpdateState::kRollingBack);
    CHECK_THAT(updater->record().reason, Catch::Contains("timed out after 300 ms"));
    CHECK(rebooter.calls == 1);  // leaving the bad slot
    store->reset();
    const auto run = settle(dev, true);
    checkBackOnOldSlot(dev, run);
    CHECK(test::recordOf(dev).state == UpdateState::kFailed);
}

TEST_CASE("Updater: abort before the reboot rolls back to the old slot", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");
    REQUIRE(start(dev, img));
    auto reboots =
        test::withDaemon(dev, nullptr, [](Updater& u) { return u.abort("rollout paused"); });
    INFO(what(reboots));
    REQUIRE(reboots);
    CHECK(*reboots == 0);
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK(rec.reason == "rollout paused");
    checkBackOnOldSlot(dev, settle(dev, true));
    auto idle = test::withDaemon(dev, nullptr, [](Updater& u) { return u.abort("again"); });
    REQUIRE_FALSE(idle);
    CHECK(idle.error().code() == FirmwareErrc::kBadTransition);
}

TEST_CASE(
    "Updater: a daemon that crashes in its health check every time is stopped by the loop guard",
    "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    settle(dev, true);
    installAndBoot(dev, dev.image("BOOTS-OK", "2.0"));

    // systemd restarts the daemon; each start resumes Verifying and dies in the health check.
    int starts = 0;
    int code = 0;
    do {
        REQUIRE(++starts < 2 * UpdateMachine::kMaxTransitions);
        code = test::inChild([&] {
            auto reboots = test::withDaemon(dev, nullptr, [](Updater& u) {
                return u.afterBoot([]() -> Status { ::_exit(test::kCrashedExit); });
            });
            return reboots ? 0 : 1;
        });
        REQUIRE((code == 0 || code == test::kCrashedExit));
    } while (code == test::kCrashedExit);
    CHECK(starts > 2);
    auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kRollingBack);  // and a reboot requested to leave slot B
    CHECK_THAT(rec.reason, Catch::Contains("loop guard"));

    const auto run = settle(dev, true);
    checkBackOnOldSlot(dev, run);
    rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("loop guard"));
    CHECK(rec.transitions <= UpdateMachine::kMaxTransitions + 2);
}

}  // namespace edge::firmware

namespace edge::firmware {

TEST_CASE("Updater: no new update while still running the slot the last one failed on",
          "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    {
        auto store = store::LmdbStore::open(dev.db);
        REQUIRE(store);
        UpdateRecord failed;
        failed.state = UpdateState::kFailed;
        failed.target = {"2.0", std::string(64, 'a'), 100};
        failed.target_slot = Slot::kB;
        failed.old_slot = Slot::kA;
        failed.transitions = 18;
        failed.reason = "loop guard";
        failed.last_failed_version = "2.0";
        REQUIRE(saveUpdateRecord(**store, failed));
    }
    test::writeFile(dev.booted, "B\n");  // the rollback reboot never happened
    const auto next = dev.image("BOOTS-OK", "3.0");
    auto st = start(dev, next);
    REQUIRE_FALSE(st);
    CHECK(st.error().code() == FirmwareErrc::kRefused);
    CHECK_THAT(st.error().what(), Catch::Contains("reboot into slot A first"));
    CHECK(test::readFile(dev.slots.a) == dev.factory.bytes);
    CHECK(test::recordOf(dev).state == UpdateState::kFailed);
}

}  // namespace edge::firmware

namespace edge::firmware {

TEST_CASE("Updater: a streamed image goes straight into slot B and commits", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    dev.stream = true;
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");
    REQUIRE(start(dev, img));
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kRebooting);
    CHECK(rec.image_url == img.file.string());
    CHECK(rec.image_path.empty());
    CHECK(readFile(dev.slots.b) == img.bytes);
    CHECK(test::bootStateOf(dev).attemptsLeft(Slot::kB) == 1);
    CHECK(settle(dev, true).running == Slot::kB);
    CHECK(test::recordOf(dev).state == UpdateState::kCommitted);
}

TEST_CASE("Updater: streamed bytes that are not the image fail, and slot B is never armed", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    dev.stream = true;
    settle(dev, true);
    auto img = dev.image("BOOTS-OK", "2.0");
    img.spec.sha256 = security::sha256Hex("not this image");  // what the bundle declares
    auto started = start(dev, img);
    REQUIRE_FALSE(started);
    CHECK(started.error().code() == FirmwareErrc::kDigest);
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("sha256"));
    CHECK(test::bootStateOf(dev).attemptsLeft(Slot::kB) == 0);
    checkBackOnOldSlot(dev, settle(dev, true));

    // Too few bytes: a size failure, same outcome.
    auto short_img = dev.image("BOOTS-OK", "2.1");
    short_img.spec.size += 1;
    started = start(dev, short_img);
    REQUIRE_FALSE(started);
    CHECK(started.error().code() == FirmwareErrc::kSize);
    checkBackOnOldSlot(dev, settle(dev, true));
}

TEST_CASE("Updater: a transient streaming failure stays Installing and resumes from the checkpoint",
          "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    dev.stream = true;
    dev.direct_io = GENERATE(true, false);
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");  // 64 KiB, checkpoints every 8 KiB
    constexpr std::uint64_t kCut = 20'000;
    // Everything that arrived is kept, except that direct writes keep whole 4 KiB blocks only:
    // the partial block at the cut comes again.
    const int probe = ::open(dev.slots.b.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    const bool direct = dev.direct_io && probe >= 0;
    if (probe >= 0) ::close(probe);
    const std::uint64_t resume = direct ? kCut / 4096 * 4096 : kCut;
    INFO("direct writes: " << direct);
    std::vector<std::uint64_t> resumed_at;
    // The network breaks after kCut bytes on the first attempt only.
    const auto flaky = [&](const UpdateRecord& r, security::StreamWriter& out) -> std::expected<void, StreamFailure> {
        resumed_at.push_back(out.size());
        const auto bytes = readFile(r.image_url);
        const bool cut = resumed_at.size() == 1;
        const auto end = cut ? kCut : bytes.size();
        if (auto ok = out.append(std::string_view(bytes).substr(out.size(), end - out.size())); !ok) {
            return std::unexpected(StreamFailure{ok.error(), true});
        }
        if (cut) return std::unexpected(StreamFailure{Error(SharedErrc::kHttp, "connection reset"), true});
        return {};
    };

    SECTION("continueInstall in the same run") {
        Status first, second;
        auto reboots = test::withDaemon(dev, nullptr, [&](Updater& u) {
            u.setImageStreamer(flaky);
            first = u.startStreamed(img.spec, img.file.string());
            CHECK(u.record().state == UpdateState::kInstalling);
            second = u.continueInstall();
            return Status{};
        });
        REQUIRE(reboots);
        CHECK(*reboots == 1);
        REQUIRE_FALSE(first);
        CHECK_THAT(first.error().what(), Catch::Contains("connection reset"));
        INFO(what(second));
        CHECK(second);
        // The second attempt starts where the first stopped.
        CHECK(resumed_at == std::vector<std::uint64_t>{0, resume});
    }
    SECTION("afterBoot of the next run, from the last persisted checkpoint") {
        Status first;
        auto crashed_run = test::withDaemon(dev, nullptr, [&](Updater& u) {
            u.setImageStreamer(flaky);
            first = u.startStreamed(img.spec, img.file.string());
            return Status{};
        });
        REQUIRE(crashed_run);
        REQUIRE_FALSE(first);
        CHECK(test::recordOf(dev).state == UpdateState::kInstalling);
        CHECK(test::bootStateOf(dev).attemptsLeft(Slot::kB) == 0);  // unbootable meanwhile
        CHECK(test::bootStateOf(dev).order == std::vector{Slot::kA});
        auto next_run = test::withDaemon(dev, nullptr, [&](Updater& u) {
            u.setImageStreamer(flaky);
            if (auto st = u.afterBoot(dev.health()); !st) return st;
            // afterBoot leaves a streamed install to the plan, which may not want it any more.
            CHECK(resumed_at.size() == 1);
            CHECK(u.record().state == UpdateState::kInstalling);
            return u.continueInstall();
        });
        INFO(what(next_run));
        REQUIRE(next_run);
        CHECK(*next_run == 1);
        CHECK(resumed_at == std::vector<std::uint64_t>{0, resume});
    }
    CHECK(test::recordOf(dev).state == UpdateState::kRebooting);
    CHECK(readFile(dev.slots.b) == img.bytes);
    CHECK(settle(dev, true).running == Slot::kB);
    CHECK(test::recordOf(dev).state == UpdateState::kCommitted);
}

TEST_CASE("Updater: a restart mid-stream counts for the loop guard only when the stream got no further",
          "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    dev.stream = true;
    dev.direct_io = false;  // the durable end is exactly where the bytes stop
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");  // 64 KiB
    // Each run of the daemon streams up to `step` bytes further, then the power goes.
    std::size_t step = 0;
    const auto streamer = [&](const UpdateRecord& r, security::StreamWriter& out) -> std::expected<void, StreamFailure> {
        const auto bytes = readFile(r.image_url);
        const auto end = std::min<std::size_t>(bytes.size(), std::max<std::size_t>(out.size() + step, 4096));
        if (auto ok = out.append(std::string_view(bytes).substr(out.size(), end - out.size())); !ok) {
            return std::unexpected(StreamFailure{ok.error(), true});
        }
        if (end < bytes.size()) return std::unexpected(StreamFailure{Error(SharedErrc::kHttp, "power cut"), true});
        return {};
    };
    const auto runUntilSettled = [&] {
        int runs = 1;
        auto first = test::withDaemon(dev, nullptr, [&](Updater& u) {
            u.setImageStreamer(streamer);
            [[maybe_unused]] auto st = u.startStreamed(img.spec, img.file.string());
            return Status{};
        });
        REQUIRE(first);
        while (test::recordOf(dev).state == UpdateState::kInstalling) {
            REQUIRE(++runs < 64);
            auto run = test::withDaemon(dev, nullptr, [&](Updater& u) {
                u.setImageStreamer(streamer);
                if (auto st = u.afterBoot(dev.health()); !st) return st;
                [[maybe_unused]] auto st = u.continueInstall();
                return Status{};
            });
            INFO(what(run));
            REQUIRE(run);
        }
        return runs;
    };

    SECTION("2 KiB further each run: 32 runs, twice the guard's bound, and the update goes on") {
        step = 2048;
        CHECK(runUntilSettled() == 31);  // the first run brings 4 KiB
        CHECK(test::recordOf(dev).state == UpdateState::kRebooting);
        CHECK(test::recordOf(dev).transitions < UpdateMachine::kMaxTransitions);
        CHECK(readFile(dev.slots.b) == img.bytes);
        CHECK(settle(dev, true).running == Slot::kB);
        CHECK(test::recordOf(dev).state == UpdateState::kCommitted);
    }
    SECTION("never further than 4 KiB: the loop guard stops it, and slot A stays") {
        step = 0;
        // Start, one run that got the first 4 KiB durable, then one Resume per run to the bound.
        CHECK(runUntilSettled() == UpdateMachine::kMaxTransitions + 2);
        const auto rec = test::recordOf(dev);
        CHECK(rec.state == UpdateState::kFailed);
        CHECK_THAT(rec.reason, Catch::Contains("loop guard"));
        CHECK(test::bootStateOf(dev).attemptsLeft(Slot::kB) == 0);
        CHECK(test::bootStateOf(dev).order == std::vector{Slot::kA});
        checkBackOnOldSlot(dev, settle(dev, true));
    }
}

TEST_CASE("Updater: a slot changed behind a checkpoint is streamed again from byte 0, never booted as is",
          "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    dev.stream = true;
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");
    bool broken = false;
    auto first_run = test::withDaemon(dev, nullptr, [&](Updater& u) {
        u.setImageStreamer([&](const UpdateRecord& r, security::StreamWriter& out) -> std::expected<void, StreamFailure> {
            const auto bytes = readFile(r.image_url);
            if (auto ok = out.append(std::string_view(bytes).substr(0, 40'000)); !ok) {
                return std::unexpected(StreamFailure{ok.error(), true});
            }
            broken = true;
            return std::unexpected(StreamFailure{Error(SharedErrc::kHttp, "server went away"), true});
        });
        [[maybe_unused]] auto st = u.startStreamed(img.spec, img.file.string());
        return Status{};
    });
    REQUIRE(first_run);
    REQUIRE(broken);
    // Someone scribbles over the part already written (a bad block, a tool): the resumed hash
    // covers the slot's real bytes, so the digest fails, and the image is streamed once more
    // from byte 0 instead of arming a bad slot.
    {
        auto slot = readFile(dev.slots.b);
        slot[100] = static_cast<char>(slot[100] ^ 0x01);
        test::writeFile(dev.slots.b, slot);
    }
    CHECK(settle(dev, false).running == Slot::kB);
    CHECK(test::recordOf(dev).state == UpdateState::kCommitted);
    CHECK(readFile(dev.slots.b) == img.bytes);
}

TEST_CASE("Updater: a streamed image no bundle asks for any more is aborted, never armed", "[firmware]") {
    TempDir tmp;
    Device dev(tmp.path());
    dev.stream = true;
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");
    auto run = test::withDaemon(dev, nullptr, [&](Updater& u) {
        u.setImageStreamer([](const UpdateRecord&, security::StreamWriter&) -> std::expected<void, StreamFailure> {
            return std::unexpected(StreamFailure{Error(SharedErrc::kHttp, "no network"), true});
        });
        REQUIRE_FALSE(u.startStreamed(img.spec, img.file.string()));
        REQUIRE(u.record().state == UpdateState::kInstalling);
        return u.abort("superseded");
    });
    REQUIRE(run);
    CHECK(*run == 0);
    const auto rec = test::recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK(rec.reason == "superseded");
    checkBackOnOldSlot(dev, settle(dev, true));
}

TEST_CASE("Updater: reboots before an update moves on give the running slot back its attempts",
          "[firmware]") {
    // Found by the power-cut test: every boot takes an attempt from the slot it boots, and a
    // daemon that waits (a streamed install waits for the plan) must give it back at once, or a
    // few reboots in a row drain the running slot while the target is unbootable.
    TempDir tmp;
    Device dev(tmp.path());
    dev.stream = true;
    settle(dev, true);
    const auto img = dev.image("BOOTS-OK", "2.0");
    // The streamed install dies half-way (the child), leaving the update Installing.
    test::CrashPlan plan;
    plan.at_byte = 30'000;
    REQUIRE(test::inChild([&] { return test::startUpdate(dev, img, &plan) ? 0 : 1; }) == test::kCrashedExit);
    CHECK(test::recordOf(dev).state == UpdateState::kInstalling);
    for (int boot = 0; boot < 6; ++boot) {
        CAPTURE(boot);
        auto slot = dev.rig->boot();  // power on: the bootloader takes one of A's attempts
        INFO(what(slot));
        REQUIRE(slot);
        CHECK(*slot == Slot::kA);
        // The daemon starts; the plan has not asked for the image again yet.
        auto reboots = test::withDaemon(dev, nullptr, [&](Updater& u) { return u.afterBoot(dev.health()); });
        INFO(what(reboots));
        REQUIRE(reboots);
        const auto st = test::bootStateOf(dev);
        CHECK(st.primary() == Slot::kA);
        CHECK(st.attemptsLeft(Slot::kA) == kDefaultMaxAttempts);
        CHECK(st.attemptsLeft(Slot::kB) == 0);
    }
    CHECK(test::recordOf(dev).state == UpdateState::kInstalling);

    // The plan asks for the image again: the install goes on from its checkpoint and commits.
    settle(dev, true);
    REQUIRE(test::recordOf(dev).state == UpdateState::kCommitted);
}

}  // namespace edge::firmware
