#pragma once
// EnvBootControl: BootControl over RAUC's boot variables, shared by the file, U-Boot and GRUB
// adapters, which only say how to read and write variables and how to find the booted slot.
//
//   BOOT_ORDER="A B"   slots in boot order, separated by spaces
//   BOOT_A_LEFT=3      attempts left for slot A
//   BOOT_B_LEFT=3      attempts left for slot B
//
// An absent variable (or an empty order) reads as what RAUC's boot scripts set when it is
// missing: order "A B", max_attempts per slot. Each change writes only the variables that
// differ, ordered so that a power cut between two writes never leaves no bootable slot: raised
// counts first, then lowered counts, then the order. A slot left out of the order is disabled.
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "firmware/boot_control.hpp"

namespace edge::firmware {

inline constexpr std::string_view kBootOrderVar = "BOOT_ORDER";
/// "BOOT_A_LEFT" / "BOOT_B_LEFT".
[[nodiscard]] std::string attemptsVar(Slot slot);

using BootVars = std::map<std::string, std::string, std::less<>>;
using BootVarChanges = std::vector<std::pair<std::string, std::string>>;

/// Finds "rauc.slot=A" among the whitespace-separated words of a kernel command line.
[[nodiscard]] Result<Slot> slotFromCmdline(std::string_view cmdline);
/// Reads the command line file (normally /proc/cmdline) and finds the booted slot in it.
[[nodiscard]] Result<Slot> readCmdlineSlot(const std::filesystem::path& cmdline_file);

class EnvBootControl : public BootControl {
public:
    [[nodiscard]] Result<BootState> state() override;
    [[nodiscard]] Status tryOnce(Slot slot) override;
    [[nodiscard]] Status markGood(Slot slot) override;
    [[nodiscard]] Status fallBack(Slot bad) override;

protected:
    explicit EnvBootControl(int max_attempts) : max_attempts_(max_attempts) {}

    /// The boot variables (at least BOOT_ORDER, BOOT_A_LEFT, BOOT_B_LEFT when set); an unset one
    /// is simply missing from the map.
    [[nodiscard]] virtual Result<BootVars> readVars() = 0;
    /// Writes changes in the order given (see above why the order matters).
    [[nodiscard]] virtual Status writeVars(const BootVarChanges& changes) = 0;
    [[nodiscard]] virtual Result<Slot> bootedSlot() = 0;

    /// Order and attempts from variables, with RAUC's defaults for missing ones.
    [[nodiscard]] Result<BootState> decode(const BootVars& vars) const;

    int max_attempts_;

private:
    /// Reads the environment once, lets edit change order and attempts, and writes what differs.
    [[nodiscard]] Status change(const std::function<void(BootState&)>& edit, std::string_view what);
};

}  // namespace edge::firmware
