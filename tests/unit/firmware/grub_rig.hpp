#pragma once
// GRUB as a test device's bootloader (test::BootRig): the daemon's side is the real
// GrubBootControl (grub-editenv); each boot runs GRUB itself (grub-emu) on the shipped
// deploy/boot/grub/ab-select.cfg. Used by grub_script_test.cpp and update_crash_test.cpp.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "firmware/errors.hpp"
#include "firmware/grub/grub_boot_control.hpp"
#include "shared/core/clock.hpp"
#include "shared/core/fs.hpp"
#include "tests/support/process.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware::test {

inline const std::filesystem::path kGrubScripts = std::filesystem::path(EDGE_TEST_SOURCE_DIR) / "deploy/boot/grub";

struct GrubTools {
    std::string editenv = edge::test::findProgram("grub-editenv");
    std::string emu = edge::test::findProgram("grub-emu");
    std::string mke2fs = edge::test::findProgram("mke2fs");
    std::string debugfs = edge::test::findProgram("debugfs");
    std::string script_check = edge::test::findProgram("grub-script-check");
};

/// Fails the test when a tool is missing: deploy/install-deps.sh installs them (grub-common,
/// grub-emu, e2fsprogs), and a skipped test would prove nothing.
inline GrubTools requireGrubTools() {
    GrubTools tools;
    INFO("deploy/install-deps.sh installs grub-common, grub-emu and e2fsprogs");
    REQUIRE_FALSE(tools.editenv.empty());
    REQUIRE_FALSE(tools.emu.empty());
    REQUIRE_FALSE(tools.mke2fs.empty());
    REQUIRE_FALSE(tools.debugfs.empty());
    REQUIRE_FALSE(tools.script_check.empty());
    return tools;
}

/// Runs a tool; an error carrying its output when it exits non-zero.
inline Status runTool(const std::vector<std::string>& argv, std::string* out = nullptr) {
    const auto r = edge::test::runCommand(argv, std::chrono::seconds(20));
    if (out != nullptr) *out = r.out + r.err;
    if (r.exit_code != 0) {
        return fail(FirmwareErrc::kBootControl,
                    fmt::format("{} exited {}: {}{}", argv.at(0), r.exit_code, r.out, r.err));
    }
    return {};
}

/// GRUB as the device's bootloader. The environment block lives in dir/grubenv (the daemon's
/// firmware.env_file); each boot copies it into a fresh ext2 image with grub/ab-select.cfg (the
/// shipped one) and a grub.cfg that sources it, prints "AB_BOOT=<slot>" and halts; runs
/// grub-emu on the image; copies the block GRUB saved back out; and writes the kernel command
/// line (rauc.slot=) the daemon reads. Errors, not Catch assertions (forked children use it).
class GrubBootRig final : public BootRig {
public:
    GrubBootRig(GrubTools tools, const std::filesystem::path& dir, int max_attempts = kDefaultMaxAttempts)
        : tools_(std::move(tools)), dir_(dir), image_dir_(dir / "disk"), max_attempts_(max_attempts) {
        std::filesystem::create_directories(image_dir_ / "grub");
        std::filesystem::copy_file(kGrubScripts / "ab-select.cfg", image_dir_ / "grub/ab-select.cfg");
        check(fs::writeFileAtomic(image_dir_ / "grub/grub.cfg",
                                  fmt::format("set ab_max_attempts={}\n"
                                              "source \"$prefix/ab-select.cfg\"\n"
                                              "echo \"AB_BOOT=$ab_slot\"\n"
                                              "halt\n",
                                              max_attempts)));
        check(fs::writeFileAtomic(dir_ / "device.map", fmt::format("(hd0) {}\n", (dir_ / "disk.img").string())));
        check(runTool({tools_.editenv, envFile().string(), "create"}));
        check(fs::writeFileAtomic(cmdline(), "BOOT_IMAGE=/boot/vmlinuz ro rauc.slot=A\n"));
    }

    [[nodiscard]] std::filesystem::path envFile() const { return dir_ / "grubenv"; }
    [[nodiscard]] std::filesystem::path cmdline() const { return dir_ / "cmdline"; }

    std::unique_ptr<BootControl> control() override {
        GrubConfig config;
        config.grub_editenv = {tools_.editenv};
        config.env_file = envFile();
        config.cmdline = cmdline();
        config.max_attempts = max_attempts_;
        return std::make_unique<GrubBootControl>(config, clock_);
    }

    Result<Slot> boot() override {
        const auto disk = dir_ / "disk.img";
        auto block = fs::readFile(envFile());
        if (!block) return fail(std::move(block.error()));
        if (auto st = fs::writeFileAtomic(image_dir_ / "grub/grubenv", *block); !st) return fail(st.error());
        std::filesystem::remove(disk);
        if (auto st = runTool({tools_.mke2fs, "-q", "-F", "-t", "ext2", "-d", image_dir_.string(), disk.string(), "4M"});
            !st) {
            return fail(st.error());
        }
        if (auto st = runTool({tools_.emu, "-m", (dir_ / "device.map").string(), "-r", "hd0", "-d", "/grub"}, &output);
            !st) {
            return fail(st.error());
        }
        const auto at = output.find("AB_BOOT=");
        if (at == std::string::npos || at + 8 >= output.size()) {
            return fail(FirmwareErrc::kNotBootable, "GRUB printed no slot: " + output);
        }
        auto slot = parseSlot(output.substr(at + 8, 1));
        if (!slot) return fail(FirmwareErrc::kNotBootable, "GRUB chose no slot: " + output);
        const auto saved = dir_ / "grubenv.saved";
        std::filesystem::remove(saved);
        if (auto st = runTool({tools_.debugfs, "-R", "dump /grub/grubenv " + saved.string(), disk.string()}); !st) {
            return fail(st.error());
        }
        auto after = fs::readFile(saved);
        if (!after || after->size() != 1024) {
            return fail(FirmwareErrc::kBootControl, "no 1 KiB environment block in the disk image after the boot");
        }
        if (auto st = fs::writeFileAtomic(envFile(), *after); !st) return fail(st.error());
        if (auto st = fs::writeFileAtomic(cmdline(), fmt::format("BOOT_IMAGE=/boot/vmlinuz ro rauc.slot={}\n",
                                                                 slotName(*slot)));
            !st) {
            return fail(st.error());
        }
        return *slot;
    }

    /// What GRUB printed on its last boot.
    std::string output;

private:
    static void check(const Status& st) {
        if (!st) throw std::runtime_error(st.error().what());
    }

    GrubTools tools_;
    std::filesystem::path dir_;
    std::filesystem::path image_dir_;
    int max_attempts_;
    SystemClock clock_;
};

}  // namespace edge::firmware::test
