#pragma once
// Builds the BootControl the config asks for. Only a program's main.cpp (or a test) should call
// this; everything else receives a BootControl&.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "firmware/boot_control.hpp"
#include "shared/core/clock.hpp"

namespace edge::firmware {

struct BootControlConfig {
    std::string backend = "file";  // "file" | "uboot" | "grub"
    SlotPaths slots;               // image destination per slot (block devices or files)
    int max_attempts = kDefaultMaxAttempts;
    /// file: the KEY=VALUE environment; grub: the grubenv file.
    std::filesystem::path env_file;
    /// file: where the simulated bootloader records the booted slot.
    std::filesystem::path booted_file;
    /// uboot / grub: argv prefixes of the tools.
    std::vector<std::string> fw_printenv{"fw_printenv"};
    std::vector<std::string> fw_setenv{"fw_setenv"};
    std::vector<std::string> grub_editenv{"grub-editenv"};
    /// uboot / grub: the kernel command line holding rauc.slot=A|B.
    std::filesystem::path cmdline = "/proc/cmdline";
    std::chrono::milliseconds command_timeout{10'000};
};

/// kInvalidArgument for an unknown backend, missing paths the backend needs, slot paths that
/// are empty or equal, or max_attempts outside 1..100. clock must outlive the result.
[[nodiscard]] Result<std::unique_ptr<BootControl>> makeBootControl(const BootControlConfig& config,
                                                                   const Clock& clock);

}  // namespace edge::firmware
