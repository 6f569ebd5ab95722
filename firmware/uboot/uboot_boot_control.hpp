#pragma once
// UBootControl: RAUC's U-Boot scheme (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT) through the
// fw_printenv / fw_setenv tools (libubootenv or u-boot-tools); the booted slot comes from
// "rauc.slot=A|B" on the kernel command line, which the boot script sets.
//
// Each variable is read with `fw_printenv -n VAR` (a non-zero exit saying "not defined" means
// unset) and written with `fw_setenv VAR VALUE`, one variable per call, in the safe order
// EnvBootControl gives (the tools make each single write power-safe with a redundant
// environment). Blocking, not thread-safe.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "firmware/env_boot_control.hpp"
#include "shared/core/clock.hpp"

namespace edge::firmware {

struct UBootConfig {
    /// argv prefixes; add e.g. "-c", "/etc/fw_env.config" to pick another environment.
    std::vector<std::string> fw_printenv{"fw_printenv"};
    std::vector<std::string> fw_setenv{"fw_setenv"};
    std::filesystem::path cmdline = "/proc/cmdline";
    int max_attempts = kDefaultMaxAttempts;
    std::chrono::milliseconds command_timeout{10'000};
};

class UBootControl final : public EnvBootControl {
public:
    /// clock must outlive this object (deadlines of the commands).
    UBootControl(UBootConfig config, const Clock& clock);

protected:
    [[nodiscard]] Result<BootVars> readVars() override;
    [[nodiscard]] Status writeVars(const BootVarChanges& changes) override;
    [[nodiscard]] Result<Slot> bootedSlot() override;

private:
    UBootConfig config_;
    const Clock& clock_;
};

}  // namespace edge::firmware
