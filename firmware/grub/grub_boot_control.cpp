#include "firmware/grub/grub_boot_control.hpp"

#include <fmt/format.h>

#include <sstream>

#include "firmware/command.hpp"
#include "firmware/errors.hpp"

namespace edge::firmware {

GrubBootControl::GrubBootControl(GrubConfig config, const Clock& clock)
    : EnvBootControl(config.max_attempts), config_(std::move(config)), clock_(clock) {}

Result<BootVars> GrubBootControl::readVars() {
    // grub-editenv quietly creates a missing file; a missing grubenv means a wrong path or an
    // unmounted /boot, where our writes would never reach the bootloader.
    std::error_code ec;
    if (!std::filesystem::is_regular_file(config_.env_file, ec)) {
        return fail(FirmwareErrc::kBootControl,
                    fmt::format("GRUB environment '{}' does not exist (provision it with "
                                "'grub-editenv {} create')",
                                config_.env_file.string(), config_.env_file.string()));
    }
    auto argv = config_.grub_editenv;
    argv.insert(argv.end(), {config_.env_file.string(), "list"});
    auto out = runChecked(clock_, argv, {config_.command_timeout, 64 * 1024});
    if (!out) return fail(FirmwareErrc::kBootControl, out.error().what());
    BootVars vars;
    std::istringstream in(*out);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto eq = line.find('=');
        if (eq == std::string::npos || eq == 0) continue;  // grub-editenv prints only K=V lines
        vars[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return vars;
}

Status GrubBootControl::writeVars(const BootVarChanges& changes) {
    auto argv = config_.grub_editenv;
    argv.insert(argv.end(), {config_.env_file.string(), "set"});
    for (const auto& [name, value] : changes) argv.push_back(name + "=" + value);
    if (auto out = runChecked(clock_, argv, {config_.command_timeout, 64 * 1024}); !out) {
        return fail(FirmwareErrc::kBootControl, out.error().what());
    }
    return {};
}

Result<Slot> GrubBootControl::bootedSlot() { return readCmdlineSlot(config_.cmdline); }

}  // namespace edge::firmware
