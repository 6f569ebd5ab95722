#pragma once
// Helpers for the firmware tests: a simulated device (two slot files, a file-backed boot
// environment, an LMDB state dir) and a loop that plays power-on, bootloader and daemon start.
// The device functions report problems as errors instead of Catch assertions, so a forked child
// can use them too (Catch must not run in a child).
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "firmware/errors.hpp"
#include "firmware/file/file_boot_control.hpp"
#include "firmware/rebooter.hpp"
#include "firmware/updater.hpp"
#include "security/crypto.hpp"
#include "shared/core/clock.hpp"
#include "shared/core/fs.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/fakes/fake_rebooter.hpp"

namespace edge::firmware::test {

using edge::test::inChild;
using edge::test::readFile;
using edge::test::TempDir;
using edge::test::writeFile;

inline std::string what(const Status& st) { return st ? std::string() : st.error().what(); }
template <class T>
std::string what(const Result<T>& r) {
    return r ? std::string() : r.error().what();
}

/// An image file: content starts with a marker that decides how the simulated device treats it
/// ("BOOTS-OK" boots and is healthy, "BOOTS-SICK" boots but fails its health check, "PANIC"
/// never gets as far as the daemon).
struct TestImage {
    FirmwareImage spec;
    std::filesystem::path file;
    std::string bytes;
};

inline std::string imageBytes(const std::string& marker, const std::string& version,
                              std::size_t size) {
    std::string out = marker + ":" + version + ":";
    std::uint32_t x = 2463534242u ^ static_cast<std::uint32_t>(std::hash<std::string>{}(version));
    while (out.size() < size) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push_back(static_cast<char>(x & 0xff));
    }
    out.resize(size);
    return out;
}

inline TestImage makeImage(const std::filesystem::path& dir, const std::string& marker,
                           const std::string& version, std::size_t size = 64 * 1024) {
    TestImage img;
    img.bytes = imageBytes(marker, version, size);
    img.file = dir / ("image-" + version + ".img");
    writeFile(img.file, img.bytes);
    img.spec = {version, security::sha256Hex(img.bytes), img.bytes.size()};
    return img;
}

/// Runs a tool; an error carrying its output when it exits non-zero.
inline Status runTool(const std::vector<std::string>& argv, std::string* out = nullptr,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    const auto r = edge::test::runCommand(argv, timeout);
    if (out != nullptr) *out = r.out + r.err;
    if (r.exit_code != 0) {
        return fail(FirmwareErrc::kBootControl,
                    fmt::format("{} exited {}: {}{}", argv.at(0), r.exit_code, r.out, r.err));
    }
    return {};
}

/// The program's path (findProgram); fails the test when it is missing: deploy/install-deps.sh
/// installs every tool the firmware tests run, and a skipped test would prove nothing.
inline std::string requireProgram(const std::string& name) {
    auto path = edge::test::findProgram(name);
    INFO(name << " is missing: deploy/install-deps.sh installs it");
    REQUIRE_FALSE(path.empty());
    return path;
}

/// RAUC's three boot variables as a test writes them before a boot; nullopt = not set.
struct BootEnv {
    std::optional<std::string> order, a_left, b_left;

    /// "BOOT_ORDER=..." for each variable that is set.
    [[nodiscard]] std::vector<std::string> assignments() const {
        std::vector<std::string> out;
        if (order) out.push_back("BOOT_ORDER=" + *order);
        if (a_left) out.push_back("BOOT_A_LEFT=" + *a_left);
        if (b_left) out.push_back("BOOT_B_LEFT=" + *b_left);
        return out;
    }
    [[nodiscard]] std::string describe() const {
        const auto show = [](const std::optional<std::string>& v) { return v ? "'" + *v + "'" : std::string("unset"); };
        return fmt::format("BOOT_ORDER={} BOOT_A_LEFT={} BOOT_B_LEFT={}", show(order), show(a_left), show(b_left));
    }
};

/// The environments a bootloader script is compared on with the simulated bootloader: orders
/// unset, "A B", "B A", "B" times counts unset, 0, 1, 3 for each slot (64).
inline std::vector<BootEnv> bootEnvMatrix() {
    const std::optional<std::string> orders[] = {std::nullopt, "A B", "B A", "B"};
    const std::optional<std::string> counts[] = {std::nullopt, "0", "1", "3"};
    std::vector<BootEnv> envs;
    for (const auto& order : orders) {
        for (const auto& a : counts) {
            for (const auto& b : counts) envs.push_back({order, a, b});
        }
    }
    return envs;
}

/// The file backend's environment holding env (what FileBootRig boots from).
inline void writeFileEnv(const std::filesystem::path& file, const BootEnv& env) {
    std::string text;
    for (const auto& line : env.assignments()) text += line + "\n";
    writeFile(file, text);
}

/// The state a BootControl reads, as a Catch assertion.
inline BootState stateOf(BootControl& control) {
    auto st = control.state();
    INFO(what(st));
    REQUIRE(st);
    return *st;
}

/// Crash injection for forked children: exit right after the n-th event of each kind (0 = never).
struct CrashPlan {
    int after_transition = 0;   // persisted transitions (UpdateMachine hook)
    int after_boot_write = 0;   // tryOnce / markGood / fallBack calls by the updater
    std::uint64_t at_byte = 0;  // bytes written into the slot
    int transitions_seen = 0;
    int boot_writes_seen = 0;
};
inline constexpr int kCrashedExit = 42;

/// Wraps the updater's BootControl to crash the process after its n-th write.
class CrashingBootControl final : public BootControl {
public:
    CrashingBootControl(BootControl& inner, CrashPlan* plan) : inner_(inner), plan_(plan) {}
    Result<BootState> state() override { return inner_.state(); }
    Status tryOnce(Slot s) override { return after(inner_.tryOnce(s)); }
    Status markGood(Slot s) override { return after(inner_.markGood(s)); }
    Status fallBack(Slot s) override { return after(inner_.fallBack(s)); }

private:
    Status after(Status st) {
        if (plan_ != nullptr && plan_->after_boot_write > 0 &&
            ++plan_->boot_writes_seen == plan_->after_boot_write) {
            ::_exit(kCrashedExit);
        }
        return st;
    }
    BootControl& inner_;
    CrashPlan* plan_;
};

/// The device's boot environment and its bootloader. The default is the file backend with its
/// simulated bootloader; grub_rig.hpp plays GRUB (grub-editenv and grub-emu running
/// deploy/boot/grub/ab-select.cfg), uboot_rig.hpp U-Boot (QEMU running ab-select.cmd). Errors, not Catch assertions: forked children use it.
struct BootRig {
    virtual ~BootRig() = default;
    /// The BootControl the daemon uses on this environment.
    [[nodiscard]] virtual std::unique_ptr<BootControl> control() = 0;
    /// Plays the bootloader at power-on: picks the slot, counts the attempt, records the booted
    /// slot where control() reads it, and returns it.
    [[nodiscard]] virtual Result<Slot> boot() = 0;
};

/// A real bootloader run as a program in a test (GRUB in grub_rig.hpp, U-Boot in uboot_rig.hpp):
/// its files live in dir; after each boot it leaves the kernel command line (rauc.slot=) where
/// the daemon's BootControl reads it, and what it printed in output.
class ProgramBootRig : public BootRig {
public:
    [[nodiscard]] std::filesystem::path cmdline() const { return dir_ / "cmdline"; }
    /// What the bootloader printed on its last boot.
    std::string output;

protected:
    ProgramBootRig(std::filesystem::path dir, int max_attempts) : dir_(std::move(dir)), max_attempts_(max_attempts) {
        std::filesystem::create_directories(dir_);
        check(booted(Slot::kA));
    }
    /// For constructors (in the test's own process): a failed step throws.
    static void check(const Status& st) {
        if (!st) throw std::runtime_error(st.error().what());
    }
    /// The kernel the bootloader started was given rauc.slot=slot.
    [[nodiscard]] Status booted(Slot slot) const {
        return fs::writeFileAtomic(cmdline(), fmt::format("BOOT_IMAGE=/boot/vmlinuz ro rauc.slot={}\n", slotName(slot)));
    }

    std::filesystem::path dir_;
    int max_attempts_;
    SystemClock clock_;
};

struct FileBootRig final : BootRig {
    FileBootRig(std::filesystem::path env, std::filesystem::path booted)
        : env(std::move(env)), booted(std::move(booted)) {}
    std::unique_ptr<BootControl> control() override {
        return std::make_unique<FileBootControl>(env, booted);
    }
    Result<Slot> boot() override { return FileBootControl(env, booted).simulateBoot(); }
    std::filesystem::path env, booted;
};

/// A device with two slot files. Slot A holds the factory image (1.0); slot B holds junk and is
/// provisioned unbootable, as an installer would leave it.
struct Device {
    /// rig: the boot environment and bootloader (default: the file backend's, in root).
    explicit Device(const std::filesystem::path& root, std::size_t chunk = 4096,
                    std::shared_ptr<BootRig> boot_rig = {})
        : dir(root), chunk_size(chunk) {
        slots = {root / "slot-a.img", root / "slot-b.img"};
        env = root / "bootenv";
        booted = root / "booted";
        db = root / "state";
        images = root / "images";
        rig = boot_rig ? std::move(boot_rig) : std::make_shared<FileBootRig>(env, booted);
        std::filesystem::create_directories(images);
        factory = makeImage(images, "BOOTS-OK", "1.0");
        writeFile(slots.a, factory.bytes);
        writeFile(slots.b, "junk left by the factory");
        bootable.push_back(factory.bytes);
        REQUIRE(rig->control()->fallBack(Slot::kB));
    }

    /// Adds an image the device may boot (unless its marker says otherwise).
    TestImage image(const std::string& marker, const std::string& version) {
        auto img = makeImage(images, marker, version);
        if (marker.starts_with("BOOTS")) bootable.push_back(img.bytes);
        return img;
    }

    [[nodiscard]] UpdaterConfig config() const {
        UpdaterConfig c;
        c.slots = slots;
        c.chunk_size = chunk_size;
        c.checkpoint_bytes = checkpoint_bytes;
        c.direct_io = direct_io;
        return c;
    }

    [[nodiscard]] bool boots(Slot slot) const {
        const auto content = readFile(slots.of(slot));
        for (const auto& b : bootable) {
            if (b == content) return true;
        }
        return false;
    }

    /// The daemon's health check: the running image must not be a "sick" one.
    [[nodiscard]] HealthCheck health() const {
        return [this]() -> Status {
            auto st = rig->control()->state();
            if (!st) return fail(st.error());
            if (readFile(slots.of(st->booted)).starts_with("BOOTS-SICK")) {
                return fail(FirmwareErrc::kHealth, "service 'inference' crashed 3 times");
            }
            return {};
        };
    }

    std::filesystem::path dir;
    std::size_t chunk_size;
    /// Updates are streamed (Updater::startStreamed) from the image file by streamerFor().
    bool stream = false;
    std::uint64_t checkpoint_bytes = 8192;
    bool direct_io = true;  // where the test folder's file system has O_DIRECT
    SlotPaths slots;
    /// The file backend's environment and booted-slot files (used by the default rig).
    std::filesystem::path env, booted, db, images;
    std::shared_ptr<BootRig> rig;
    TestImage factory;
    std::vector<std::string> bootable;
};

/// What the device did: the slot it ended on and how often it booted.
struct DeviceRun {
    Slot running = Slot::kA;
    int boots = 0;
};

inline UpdaterHooks hooksFor(CrashPlan* plan) {
    UpdaterHooks hooks;
    if (plan == nullptr) return hooks;
    hooks.on_transition = [plan](const UpdateRecord&) {
        if (plan->after_transition > 0 && ++plan->transitions_seen == plan->after_transition) {
            ::_exit(kCrashedExit);
        }
    };
    hooks.progress = [plan](std::uint64_t written, std::uint64_t) {
        if (plan->at_byte > 0 && written >= plan->at_byte) ::_exit(kCrashedExit);
    };
    return hooks;
}

/// The ImageStreamer of a test device: the record's image_url is the image file's path; its
/// bytes after out.size() are appended in chunks (crashing at plan->at_byte).
inline ImageStreamer streamerFor(const Device& dev, CrashPlan* plan) {
    return [chunk = dev.chunk_size, plan](const UpdateRecord& r, security::StreamWriter& out)
               -> std::expected<void, StreamFailure> {
        const auto bytes = readFile(r.image_url);
        if (out.size() > bytes.size()) {
            return std::unexpected(StreamFailure{Error(FirmwareErrc::kSize, "resumed past the end"), false});
        }
        for (std::size_t at = out.size(); at < bytes.size(); at += chunk) {
            const auto piece = std::string_view(bytes).substr(at, chunk);
            if (plan != nullptr && plan->at_byte > 0 && at + piece.size() >= plan->at_byte) {
                ::_exit(kCrashedExit);
            }
            if (auto ok = out.append(piece); !ok) return std::unexpected(StreamFailure{ok.error(), true});
        }
        return {};
    };
}

/// One daemon start: opens the store, runs fn with an Updater, closes everything.
/// Returns how many reboots the daemon requested.
inline Result<int> withDaemon(Device& dev, CrashPlan* plan,
                              const std::function<Status(Updater&)>& fn) {
    auto store = store::LmdbStore::open(dev.db);
    if (!store) return fail(std::move(store.error()));
    auto control = dev.rig->control();
    CrashingBootControl boot(*control, plan);
    edge::test::FakeRebooter rebooter;
    SystemClock clock;
    auto updater = Updater::open(**store, boot, rebooter, clock, dev.config(), hooksFor(plan));
    if (!updater) return fail(std::move(updater.error()));
    updater->setImageStreamer(streamerFor(dev, plan));
    if (auto st = fn(*updater); !st) return fail(std::move(st.error()));
    return rebooter.calls;
}

/// Plays the device from now until the daemon stops asking for reboots: when power_on, the
/// bootloader boots first; a slot whose image does not boot dies before the daemon starts (the
/// next boot follows); otherwise the daemon starts and runs afterBoot(). Fails after max_boots
/// boots: the device would loop.
inline Result<DeviceRun> runDevice(Device& dev, bool power_on, CrashPlan* plan = nullptr,
                                   int max_boots = 8) {
    DeviceRun run;
    bool boot_next = power_on;
    while (true) {
        if (boot_next) {
            if (++run.boots > max_boots) {
                return fail(FirmwareErrc::kLoopGuard, "device keeps rebooting");
            }
            auto slot = dev.rig->boot();
            if (!slot) return fail(std::move(slot.error()));
            if (!dev.boots(*slot)) continue;  // kernel panic: the board resets
        }
        auto reboots = withDaemon(dev, plan, [&](Updater& u) {
            if (auto st = u.afterBoot(dev.health()); !st) return st;
            // As edged's plan does when the bundle still asks for the image being streamed.
            if (u.record().state == UpdateState::kInstalling && !u.record().image_url.empty()) {
                auto st = u.continueInstall();
                if (!st && u.record().state == UpdateState::kInstalling) return st;
            }
            return Status{};
        });
        if (!reboots) return fail(std::move(reboots.error()));
        if (*reboots == 0) break;
        boot_next = true;
    }
    auto st = dev.rig->control()->state();
    if (!st) return fail(std::move(st.error()));
    run.running = st->booted;
    return run;
}

/// Starts an update in a daemon; returns the start() status (failed updates are results).
inline Result<Status> startUpdate(Device& dev, const TestImage& img, CrashPlan* plan = nullptr) {
    Status started;
    auto reboots = withDaemon(dev, plan, [&](Updater& u) {
        started = dev.stream ? u.startStreamed(img.spec, img.file.string()) : u.start(img.spec, img.file);
        return Status{};
    });
    if (!reboots) return fail(std::move(reboots.error()));
    return started;
}

inline UpdateRecord recordOf(const Device& dev) {
    auto store = store::LmdbStore::open(dev.db);
    REQUIRE(store);
    auto rec = loadUpdateRecord(**store);
    INFO(what(rec));
    REQUIRE(rec);
    return *rec;
}

inline BootState bootStateOf(const Device& dev) { return stateOf(*dev.rig->control()); }

/// Three updates through a real bootloader (rig): a healthy image is committed, one whose
/// health check fails and one that panics before the daemon runs end on the committed slot,
/// with the reason. armed runs after the first update armed its trial boot (checks of the
/// rig's own environment); said gives what the bootloader printed last, for failures.
inline void checkUpdatesThroughBootloader(Device& dev, const std::function<std::string()>& said,
                                          const std::function<void()>& armed) {
    const auto settle = [&] {
        auto run = runDevice(dev, true);
        INFO("the bootloader said: " << said());
        INFO(what(run));
        REQUIRE(run);
        return *run;
    };
    const auto start = [&](const TestImage& img) {
        auto started = startUpdate(dev, img);
        REQUIRE(started);
        INFO(what(*started));
        REQUIRE(*started);
    };
    CHECK(settle().running == Slot::kA);

    // A healthy image: the bootloader takes B's one try, the daemon commits, B stays.
    const auto good = dev.image("BOOTS-OK", "2.0");
    start(good);
    armed();
    auto run = settle();
    CHECK(run.running == Slot::kB);
    CHECK(run.boots == 1);
    auto rec = recordOf(dev);
    CHECK(rec.state == UpdateState::kCommitted);
    CHECK(rec.current_version == "2.0");
    auto boot = bootStateOf(dev);
    CHECK(boot.order == std::vector{Slot::kB, Slot::kA});
    CHECK(boot.attemptsLeft(Slot::kB) == kDefaultMaxAttempts);
    for (int i = 0; i < 3; ++i) CHECK(settle().running == Slot::kB);

    // An image whose health check fails: back on B (now the old slot), reason kept.
    start(dev.image("BOOTS-SICK", "3.0"));
    CHECK(settle().running == Slot::kB);
    rec = recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("inference"));
    boot = bootStateOf(dev);
    CHECK(boot.primary() == Slot::kB);
    CHECK(boot.attemptsLeft(Slot::kA) == 0);

    // An image that panics before the daemon runs: A's one try is spent, then B boots.
    start(dev.image("PANIC", "4.0"));
    run = settle();
    CHECK(run.running == Slot::kB);
    CHECK(run.boots == 2);
    rec = recordOf(dev);
    CHECK(rec.state == UpdateState::kFailed);
    CHECK_THAT(rec.reason, Catch::Contains("did not boot"));
    boot = bootStateOf(dev);
    CHECK(boot.primary() == Slot::kB);
    CHECK(boot.attemptsLeft(Slot::kB) == kDefaultMaxAttempts);
    CHECK(boot.attemptsLeft(Slot::kA) == 0);
    CHECK(readFile(dev.slots.b) == good.bytes);
}

}  // namespace edge::firmware::test
