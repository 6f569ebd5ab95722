#pragma once
// FileBootControl: the boot variables in a KEY=VALUE file, for development and tests, plus
// simulateBoot(), which plays the bootloader's part so tests can run whole A/B updates.
//
// - env_file holds BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT (other lines are kept). A missing
//   file reads as the defaults (order "A B", max_attempts each). Every write replaces the file
//   atomically (tmp, fsync, rename, fsync of the directory): a crash leaves the old or the new
//   environment, never a mix.
// - booted_file holds the name of the slot the last simulateBoot() chose ("A" or "B"); on a
//   real device this is the kernel command line. state() fails while it is missing.
// Not thread-safe; one process at a time (like a real bootloader environment).
#include <filesystem>

#include "firmware/env_boot_control.hpp"

namespace edge::firmware {

class FileBootControl final : public EnvBootControl {
public:
    FileBootControl(std::filesystem::path env_file, std::filesystem::path booted_file,
                    int max_attempts = kDefaultMaxAttempts);

    /// What a bootloader does at power-on: picks the first slot in the order with attempts
    /// left, decrements its count (persisted first), records it as booted and returns it. When
    /// every slot of the order is at 0, all of them get max_attempts back (RAUC's reset) and the
    /// first boots; a slot left out of the order is never booted (an empty order reads as
    /// unset, "A B"). reset, when given, says whether the counts were reset.
    [[nodiscard]] Result<Slot> simulateBoot(bool* reset = nullptr);

protected:
    [[nodiscard]] Result<BootVars> readVars() override;
    [[nodiscard]] Status writeVars(const BootVarChanges& changes) override;
    [[nodiscard]] Result<Slot> bootedSlot() override;

private:
    std::filesystem::path env_file_;
    std::filesystem::path booted_file_;
};

}  // namespace edge::firmware
