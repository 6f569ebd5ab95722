#pragma once
// GRUB as a test device's bootloader (test::BootRig): the daemon's side is the real
// GrubBootControl (grub-editenv); each boot runs GRUB itself (grub-emu) on the shipped
// deploy/boot/grub/ab-select.cfg. Used by grub_script_test.cpp, update_crash_test.cpp and
// tests/integration/ota_test.cpp.
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "firmware/errors.hpp"
#include "firmware/grub/grub_boot_control.hpp"
#include "shared/core/fs.hpp"
#include "tests/support/process.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware::test {

inline const std::filesystem::path kGrubScripts = std::filesystem::path(EDGE_TEST_SOURCE_DIR) / "deploy/boot/grub";

/// The programs a GRUB boot needs (Debian packages grub-common, grub-emu, e2fsprogs).
struct GrubTools {
    std::string editenv, emu, mke2fs, debugfs, script_check;
};

inline GrubTools requireGrubTools() {
    return {requireProgram("grub-editenv"), requireProgram("grub-emu"), requireProgram("mke2fs"),
            requireProgram("debugfs"), requireProgram("grub-script-check")};
}

/// GRUB as the device's bootloader. The environment block lives in dir/grubenv (the daemon's
/// firmware.env_file); each boot copies it into a fresh ext2 image with grub/ab-select.cfg (the
/// shipped one) and a grub.cfg that sources it, prints "AB_BOOT=<slot>" and halts; runs
/// grub-emu on the image; copies the block GRUB saved back out; and writes the kernel command
/// line (rauc.slot=) the daemon reads. Errors, not Catch assertions (forked children use it).
class GrubBootRig final : public ProgramBootRig {
public:
    GrubBootRig(GrubTools tools, const std::filesystem::path& dir, int max_attempts = kDefaultMaxAttempts)
        : ProgramBootRig(dir, max_attempts), tools_(std::move(tools)), image_dir_(dir / "disk") {
        std::filesystem::create_directories(image_dir_ / "grub");
        std::filesystem::copy_file(kGrubScripts / "ab-select.cfg", image_dir_ / "grub/ab-select.cfg");
        check(fs::writeFileAtomic(dir_ / "device.map", fmt::format("(hd0) {}\n", (dir_ / "disk.img").string())));
        check(runTool({tools_.editenv, envFile().string(), "create"}));
    }

    [[nodiscard]] std::filesystem::path envFile() const { return dir_ / "grubenv"; }

    /// When set, GRUB reads the block through its host file system driver, which cannot save
    /// (save_env: "sparse file not allowed"): a block GRUB cannot write.
    bool unsaveable = false;

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
        // grub.cfg as the example in deploy/boot/grub sets it up, then print the choice and halt.
        const auto env = unsaveable ? fmt::format("(host){}", (image_dir_ / "grub/grubenv").string())
                                    : std::string("$prefix/grubenv");
        if (auto st = fs::writeFileAtomic(image_dir_ / "grub/grub.cfg",
                                          fmt::format("set ab_max_attempts={}\nset ab_env=\"{}\"\n"
                                                      "source \"$prefix/ab-select.cfg\"\n"
                                                      "echo \"AB_BOOT=$ab_slot\"\nhalt\n",
                                                      max_attempts_, env));
            !st) {
            return fail(st.error());
        }
        std::filesystem::remove(disk);
        if (auto st = runTool({tools_.mke2fs, "-q", "-F", "-t", "ext2", "-d", image_dir_.string(), disk.string(), "4M"});
            !st) {
            return fail(st.error());
        }
        if (auto st = runTool({tools_.emu, "-m", (dir_ / "device.map").string(), "-r", "hd0", "-d", "/grub"}, &output);
            !st) {
            return fail(st.error());
        }
        const auto at = output.rfind("AB_BOOT=");  // the last: the script's messages quote values
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
        if (auto st = booted(*slot); !st) return fail(st.error());
        return *slot;
    }

private:
    GrubTools tools_;
    std::filesystem::path image_dir_;
};

}  // namespace edge::firmware::test
