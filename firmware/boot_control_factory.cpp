#include "firmware/boot_control_factory.hpp"

#include <fmt/format.h>

#include "firmware/errors.hpp"
#include "firmware/file/file_boot_control.hpp"
#include "firmware/grub/grub_boot_control.hpp"
#include "firmware/uboot/uboot_boot_control.hpp"

namespace edge::firmware {
namespace {

std::unexpected<Error> bad(std::string message) {
    return fail(FirmwareErrc::kInvalidArgument, "boot control config: " + std::move(message));
}

}  // namespace

Result<std::unique_ptr<BootControl>> makeBootControl(const BootControlConfig& config,
                                                     const Clock& clock) {
    if (config.slots.a.empty() || config.slots.b.empty())
        return bad("slot_a and slot_b are required");
    if (config.slots.a.lexically_normal() == config.slots.b.lexically_normal()) {
        return bad(
            fmt::format("slot_a and slot_b are the same path '{}'", config.slots.a.string()));
    }
    if (config.max_attempts < 1 || config.max_attempts > 100) {
        return bad(fmt::format("max_attempts {} is outside 1..100", config.max_attempts));
    }
    if (config.backend == "file") {
        if (config.env_file.empty() || config.booted_file.empty()) {
            return bad("backend 'file' needs env_file and booted_file");
        }
        return std::make_unique<FileBootControl>(config.env_file, config.booted_file,
                                                 config.max_attempts);
    }
    if (config.backend == "uboot") {
        if (config.fw_printenv.empty() || config.fw_setenv.empty()) {
            return bad("backend 'uboot' needs fw_printenv and fw_setenv");
        }
        return std::make_unique<UBootControl>(
            UBootConfig{config.fw_printenv, config.fw_setenv, config.cmdline, config.max_attempts,
                        config.command_timeout},
            clock);
    }
    if (config.backend == "grub") {
        if (config.grub_editenv.empty() || config.env_file.empty()) {
            return bad("backend 'grub' needs grub_editenv and env_file");
        }
        return std::make_unique<GrubBootControl>(
            GrubConfig{config.grub_editenv, config.env_file, config.cmdline, config.max_attempts,
                       config.command_timeout},
            clock);
    }
    return bad(fmt::format("unknown backend '{}' (file, uboot or grub)", config.backend));
}

}  // namespace edge::firmware
