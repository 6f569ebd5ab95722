#pragma once
// U-Boot as a test device's bootloader (test::BootRig): the daemon's side is the real
// UBootControl (Debian's fw_printenv/fw_setenv) on a NOR flash image; each boot runs Debian's
// U-Boot for QEMU's arm64 "virt" board (qemu-system-aarch64, u-boot-qemu) on that flash, and
// U-Boot sources the shipped deploy/boot/uboot/ab-select.cmd (compiled with mkimage).
//
// One thing is not U-Boot's own: QEMU's flash emulation rejects U-Boot's buffered flash
// writes ("Flash buffer write timeout", a known QEMU/U-Boot mismatch; Debian's U-Boot is built
// with CONFIG_SYS_FLASH_USE_BUFFER_WRITE), so saveenv fails inside QEMU. The board's ab_save
// (the script's store command, saveenv by default) is therefore "echo AB_SAVED", QEMU runs on
// a snapshot of the flash, and when U-Boot printed AB_SAVED the rig writes the counts the script
// changed with fw_setenv, as saveenv would have. Every decision (which slot, which count, whether
// to store) is U-Boot running the script.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "firmware/errors.hpp"
#include "firmware/uboot/uboot_boot_control.hpp"
#include "shared/core/clock.hpp"
#include "shared/core/fs.hpp"
#include "tests/support/process.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware::test {

inline const std::filesystem::path kUBootScripts =
    std::filesystem::path(EDGE_TEST_SOURCE_DIR) / "deploy/boot/uboot";
inline const std::filesystem::path kQemuArm64UBoot = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// The programs a U-Boot boot needs (Debian packages qemu-system-arm, u-boot-qemu, u-boot-tools,
/// libubootenv-tool).
struct UBootTools {
    std::string qemu, mkimage, mkenvimage, printenv, setenv;
};

inline UBootTools requireUBootTools() {
    INFO("deploy/install-deps.sh installs u-boot-qemu");
    REQUIRE(std::filesystem::exists(kQemuArm64UBoot));
    return {requireProgram("qemu-system-aarch64"), requireProgram("mkimage"), requireProgram("mkenvimage"),
            requireProgram("fw_printenv"), requireProgram("fw_setenv")};
}

class UBootRig final : public ProgramBootRig {
public:
    /// Where QEMU's loader puts the compiled scripts in the board's RAM (which starts at
    /// 0x40000000; U-Boot relocates itself to the top).
    static constexpr const char* kScriptAddr = "0x40200000";
    static constexpr const char* kHarnessAddr = "0x40400000";
    static constexpr unsigned kEnvSize = 0x40000;  // CONFIG_ENV_SIZE of qemu_arm64, at the second flash's start

    UBootRig(UBootTools tools, const std::filesystem::path& dir, int max_attempts = kDefaultMaxAttempts)
        : ProgramBootRig(dir, max_attempts), tools_(std::move(tools)) {
        check(runTool({tools_.mkimage, "-A", "arm64", "-T", "script", "-C", "none", "-d",
                       (kUBootScripts / "ab-select.cmd").string(), script().string()}));
        // The board's environment: boot at once into the harness script. ab_max_attempts is
        // firmware.max_attempts, as the board's environment would carry it.
        check(fs::writeFileAtomic(dir_ / "env.txt", fmt::format("bootdelay=0\nbootcmd=source {}\nab_max_attempts={}\nab_save=echo AB_SAVED\n",
                                                                kHarnessAddr, max_attempts)));
        check(runTool({tools_.mkenvimage, "-s", fmt::format("{:#x}", kEnvSize), "-o", flash().string(),
                       (dir_ / "env.txt").string()}));
        std::filesystem::resize_file(flash(), 64u << 20);  // QEMU's virt flash bank: 64 MiB
        check(fs::writeFileAtomic(dir_ / "fw_env.config", fmt::format("{} 0x0 {:#x}\n", flash().string(), kEnvSize)));
    }

    [[nodiscard]] std::filesystem::path flash() const { return dir_ / "flash1.img"; }
    [[nodiscard]] std::filesystem::path script() const { return dir_ / "ab-select.scr"; }
    [[nodiscard]] std::vector<std::string> printenv() const {
        return {tools_.printenv, "-c", (dir_ / "fw_env.config").string()};
    }
    [[nodiscard]] std::vector<std::string> setenv() const {
        return {tools_.setenv, "-c", (dir_ / "fw_env.config").string()};
    }
    /// `fw_printenv -n var` on the flash: the value and a newline ("\n" when unset).
    [[nodiscard]] std::string print(const std::string& var) const {
        auto argv = printenv();
        argv.insert(argv.end(), {"-n", var});
        return edge::test::runCommand(argv).out;
    }

    std::unique_ptr<BootControl> control() override {
        UBootConfig config;
        config.fw_printenv = printenv();
        config.fw_setenv = setenv();
        config.cmdline = cmdline();
        config.max_attempts = max_attempts_;
        return std::make_unique<UBootControl>(config, clock_);
    }

    /// Powers the board on with harness (U-Boot shell commands) as its boot command; the flash
    /// is a snapshot, so nothing U-Boot writes stays. Returns what U-Boot printed.
    Result<std::string> runUBoot(const std::string& harness,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        const auto text = dir_ / "harness.cmd";
        const auto image = dir_ / "harness.scr";
        if (auto st = fs::writeFileAtomic(text, harness + "poweroff\n"); !st) return fail(st.error());
        if (auto st = runTool({tools_.mkimage, "-A", "arm64", "-T", "script", "-C", "none", "-d", text.string(),
                               image.string()});
            !st) {
            return fail(st.error());
        }
        std::string out;
        auto st = runTool({tools_.qemu, "-M", "virt", "-cpu", "cortex-a57", "-m", "256", "-nographic",
                           "-no-reboot", "-nic", "none", "-bios", kQemuArm64UBoot.string(), "-drive",
                           fmt::format("if=pflash,format=raw,index=1,file={},snapshot=on", flash().string()),
                           "-device", fmt::format("loader,file={},addr={},force-raw=on", script().string(), kScriptAddr),
                           "-device", fmt::format("loader,file={},addr={},force-raw=on", image.string(), kHarnessAddr)},
                          &out, timeout);
        if (!st) return fail(st.error());
        return out;
    }

    Result<Slot> boot() override {
        // Values are printed unquoted with HUSH_NO_EVAL=1, so U-Boot prints them as stored.
        auto out = runUBoot(fmt::format("source {}\nHUSH_NO_EVAL=1\n"
                                        "echo AB_BOOT=${{ab_slot}} A=[${{BOOT_A_LEFT}}] B=[${{BOOT_B_LEFT}}]\n",
                                        kScriptAddr));
        if (!out) return fail(std::move(out.error()));
        output = *out;
        const auto at = output.rfind("AB_BOOT=");  // the last: the script's messages quote values
        if (at == std::string::npos) return fail(FirmwareErrc::kNotBootable, "U-Boot printed no slot: " + output);
        auto line = output.substr(at, output.find('\n', at) - at);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        auto slot = parseSlot(line.substr(8, 1));
        if (!slot) return fail(FirmwareErrc::kNotBootable, "U-Boot chose no slot: " + line);
        if (output.find("AB_SAVED") != std::string::npos) {
            // What saveenv would have stored (see the header): the counts the script changed,
            // the one it took and, after a reset, the other. Printed as A=[..] B=[..].
            const auto a_at = line.find(" A=[");
            const auto b_at = line.rfind("] B=[");
            if (a_at == std::string::npos || b_at == std::string::npos || b_at < a_at || line.back() != ']') {
                return fail(FirmwareErrc::kBootControl, "U-Boot printed no counts: " + line);
            }
            const std::pair<Slot, std::string> counts[] = {
                {Slot::kA, line.substr(a_at + 4, b_at - a_at - 4)},
                {Slot::kB, line.substr(b_at + 5, line.size() - b_at - 6)}};
            for (const auto& [s, value] : counts) {
                const auto var = attemptsVar(s);
                if (print(var) == value + "\n") continue;
                auto set = setenv();
                set.push_back(var);
                if (!value.empty()) set.push_back(value);  // empty: unset, as U-Boot holds it
                if (auto st = runTool(set); !st) return fail(st.error());
            }
        }
        if (auto st = booted(*slot); !st) return fail(st.error());
        return *slot;
    }

private:
    UBootTools tools_;
};

}  // namespace edge::firmware::test
