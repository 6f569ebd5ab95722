#pragma once
// BootControl: the A/B boot decision, in the model RAUC uses for U-Boot and GRUB — a boot order
// and, per slot, how many boot attempts are left.
//
// The bootloader, on every boot, walks the order and boots the first slot with attempts left,
// after decrementing that slot's count. The running system resets the count of its slot
// (markGood) once it knows it is healthy. A slot that keeps crashing before that runs out of
// attempts, and the bootloader moves on to the next slot in the order. When every slot of the
// order is at 0 (power cuts during boot, before the system could mark its slot good), the
// bootloader gives them all their attempts back and boots the first (RAUC's reset). A slot
// left out of the order is disabled, never booted, reset or not: fallBack takes a bad or
// half-written slot out, tryOnce puts it back.
//
// Adapters: firmware/file/ (a key=value file, for development and tests, with a simulated
// bootloader), firmware/uboot/ (fw_printenv/fw_setenv), firmware/grub/ (grub-editenv).
// firmware/boot_control_factory.hpp builds one from config.
//
// Threading: implementations are not thread-safe and block (file I/O, commands); call them from
// one worker thread, never from the event loop.
#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "shared/core/error.hpp"

namespace edge::firmware {

enum class Slot : std::uint8_t { kA = 0, kB = 1 };

/// "A" / "B": the names used in boot environments and on the kernel command line.
[[nodiscard]] std::string_view slotName(Slot slot);
/// Inverse of slotName; kInvalidArgument otherwise.
[[nodiscard]] Result<Slot> parseSlot(std::string_view name);
[[nodiscard]] constexpr Slot otherSlot(Slot slot) { return slot == Slot::kA ? Slot::kB : Slot::kA; }
[[nodiscard]] constexpr std::size_t slotIndex(Slot slot) { return static_cast<std::size_t>(slot); }

/// Where each slot's image lives: a block device on hardware, a plain file in development.
struct SlotPaths {
    std::filesystem::path a;
    std::filesystem::path b;
    [[nodiscard]] const std::filesystem::path& of(Slot slot) const {
        return slot == Slot::kA ? a : b;
    }
};

/// Attempts a slot gets when marked good (RAUC's default for BOOT_x_LEFT).
inline constexpr int kDefaultMaxAttempts = 3;

/// What the bootloader will do and what it did.
struct BootState {
    /// The slot the running system was booted from.
    Slot booted = Slot::kA;
    /// Boot order, tried first to last. Slots not listed are never booted.
    std::vector<Slot> order;
    /// Attempts left per slot, indexed by slotIndex(); 0 = the bootloader skips it.
    std::array<int, 2> attempts_left{0, 0};

    [[nodiscard]] int attemptsLeft(Slot slot) const { return attempts_left[slotIndex(slot)]; }
    /// The first slot in the order (nullopt when the order is empty).
    [[nodiscard]] std::optional<Slot> primary() const;
    /// The slot the next boot picks: the first in order with attempts left.
    [[nodiscard]] std::optional<Slot> nextBoot() const;
    bool operator==(const BootState&) const = default;
};

class BootControl {
public:
    virtual ~BootControl() = default;

    /// Reads the boot environment and the booted slot. kBootControl when either is unreadable or
    /// invalid (an unknown slot name in the order, a negative count).
    [[nodiscard]] virtual Result<BootState> state() = 0;

    /// Arms slot for one trial boot: slot first in the order with 1 attempt; the other slot keeps
    /// its place behind it and its attempts, so the bootloader falls back to it if the trial
    /// boot never calls markGood. Idempotent.
    [[nodiscard]] virtual Status tryOnce(Slot slot) = 0;

    /// The (booted, healthy) slot becomes primary with the full attempts. The other slot keeps
    /// its attempts and stays behind it as the fallback when it is in the order with attempts
    /// left; at 0 it leaves the order (it failed its boots). Idempotent.
    [[nodiscard]] virtual Status markGood(Slot slot) = 0;

    /// The bad slot gets 0 attempts and leaves the order; the other slot becomes the only one in
    /// it, with the full attempts: the caller asserts the other slot holds a good system. Also
    /// used to make a slot unbootable before it is overwritten. Idempotent.
    [[nodiscard]] virtual Status fallBack(Slot bad) = 0;
};

}  // namespace edge::firmware
