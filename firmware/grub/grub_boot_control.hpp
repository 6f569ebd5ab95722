#pragma once
// GrubBootControl: RAUC's GRUB scheme (BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT in the grubenv
// block) through `grub-editenv FILE list` and `grub-editenv FILE set K=V...`; the booted slot
// comes from "rauc.slot=A|B" on the kernel command line, which grub.cfg sets.
//
// All changes go in one `set` call (grub-editenv rewrites its 1 KiB block in place). The
// environment file must exist (`grub-editenv FILE create` at provisioning); a missing one is
// an error (a wrong path or an unmounted /boot), not a silent default — grub-editenv itself
// would create it where the bootloader never looks. Blocking, not thread-safe.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "firmware/env_boot_control.hpp"
#include "shared/core/clock.hpp"

namespace edge::firmware {

struct GrubConfig {
    std::vector<std::string> grub_editenv{"grub-editenv"};  // argv prefix
    std::filesystem::path env_file = "/boot/grub/grubenv";
    std::filesystem::path cmdline = "/proc/cmdline";
    int max_attempts = kDefaultMaxAttempts;
    std::chrono::milliseconds command_timeout{10'000};
};

class GrubBootControl final : public EnvBootControl {
public:
    /// clock must outlive this object (deadlines of the commands).
    GrubBootControl(GrubConfig config, const Clock& clock);

protected:
    [[nodiscard]] Result<BootVars> readVars() override;
    [[nodiscard]] Status writeVars(const BootVarChanges& changes) override;
    [[nodiscard]] Result<Slot> bootedSlot() override;

private:
    GrubConfig config_;
    const Clock& clock_;
};

}  // namespace edge::firmware
