#include "firmware/uboot/uboot_boot_control.hpp"

#include <fmt/format.h>

#include "firmware/command.hpp"
#include "firmware/errors.hpp"

namespace edge::firmware {
namespace {

std::string chomp(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

}  // namespace

UBootControl::UBootControl(UBootConfig config, const Clock& clock)
    : EnvBootControl(config.max_attempts), config_(std::move(config)), clock_(clock) {}

Result<BootVars> UBootControl::readVars() {
    const CommandOptions options{config_.command_timeout, 64 * 1024};
    BootVars vars;
    for (const std::string& name :
         {std::string(kBootOrderVar), attemptsVar(Slot::kA), attemptsVar(Slot::kB)}) {
        auto argv = config_.fw_printenv;
        argv.insert(argv.end(), {"-n", name});
        auto run = runCommand(clock_, argv, options);
        if (!run) return fail(FirmwareErrc::kBootControl, run.error().what());
        if (run->exit_code == 0) {
            // libubootenv (Debian's fw_printenv) prints an empty line for an unset variable and
            // exits 0; none of these variables is ever set to "": unset, the default applies.
            auto value = chomp(std::move(run->out));
            if (!value.empty()) vars[name] = std::move(value);
        } else if (run->err.find("not defined") == std::string::npos) {  // U-Boot's own tool
            return fail(FirmwareErrc::kBootControl,
                        fmt::format("'{}' exited with status {}: {}", describeCommand(argv),
                                    run->exit_code, chomp(run->err)));
        }  // else: unset, the boot script's default applies
    }
    return vars;
}

Status UBootControl::writeVars(const BootVarChanges& changes) {
    const CommandOptions options{config_.command_timeout, 64 * 1024};
    for (const auto& [name, value] : changes) {
        auto argv = config_.fw_setenv;
        argv.insert(argv.end(), {name, value});
        if (auto run = runChecked(clock_, argv, options); !run) {
            return fail(FirmwareErrc::kBootControl, run.error().what());
        }
    }
    return {};
}

Result<Slot> UBootControl::bootedSlot() { return readCmdlineSlot(config_.cmdline); }

}  // namespace edge::firmware
