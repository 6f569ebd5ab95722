#include "firmware/env_boot_control.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "firmware/errors.hpp"
#include "shared/core/fs.hpp"

namespace edge::firmware {
namespace {

std::string orderText(const std::vector<Slot>& order) {
    std::string out;
    for (Slot s : order) {
        if (!out.empty()) out += ' ';
        out += slotName(s);
    }
    return out;
}

std::vector<std::string_view> words(std::string_view text) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
        std::size_t j = i;
        while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
        if (j > i) out.push_back(text.substr(i, j - i));
        i = j;
    }
    return out;
}

}  // namespace

std::string_view slotName(Slot slot) { return slot == Slot::kA ? "A" : "B"; }

Result<Slot> parseSlot(std::string_view name) {
    if (name == "A") return Slot::kA;
    if (name == "B") return Slot::kB;
    return fail(FirmwareErrc::kInvalidArgument, fmt::format("unknown slot '{}' (A or B)", name));
}

std::optional<Slot> BootState::primary() const {
    if (order.empty()) return std::nullopt;
    return order.front();
}

std::optional<Slot> BootState::nextBoot() const {
    for (Slot s : order) {
        if (attemptsLeft(s) > 0) return s;
    }
    return std::nullopt;
}

std::string attemptsVar(Slot slot) { return fmt::format("BOOT_{}_LEFT", slotName(slot)); }

Result<Slot> slotFromCmdline(std::string_view cmdline) {
    constexpr std::string_view kKey = "rauc.slot=";
    for (auto word : words(cmdline)) {
        if (!word.starts_with(kKey)) continue;
        auto slot = parseSlot(word.substr(kKey.size()));
        if (!slot)
            return fail(FirmwareErrc::kBootControl, "kernel command line: " + slot.error().what());
        return *slot;
    }
    return fail(FirmwareErrc::kBootControl, "kernel command line has no rauc.slot=A|B");
}

Result<Slot> readCmdlineSlot(const std::filesystem::path& cmdline_file) {
    auto text = fs::readFile(cmdline_file, 64 * 1024);
    if (!text) {
        return fail(FirmwareErrc::kBootControl,
                    fmt::format("booted slot: {}", text.error().what()));
    }
    auto slot = slotFromCmdline(*text);
    if (!slot) return fail(std::move(slot.error()).wrap(cmdline_file.string()));
    return *slot;
}

Result<BootState> EnvBootControl::decode(const BootVars& vars) const {
    BootState st;
    st.order = {Slot::kA, Slot::kB};
    st.attempts_left = {max_attempts_, max_attempts_};
    // An empty order reads as unset, as both boot scripts read it (GRUB tests -z; U-Boot keeps
    // no empty variable).
    if (auto it = vars.find(kBootOrderVar); it != vars.end() && !words(it->second).empty()) {
        st.order.clear();
        for (auto word : words(it->second)) {
            auto slot = parseSlot(word);
            if (!slot) {
                return fail(FirmwareErrc::kBootControl,
                            fmt::format("BOOT_ORDER '{}': {}", it->second, slot.error().message()));
            }
            for (Slot seen : st.order) {
                if (seen == *slot) {
                    return fail(
                        FirmwareErrc::kBootControl,
                        fmt::format("BOOT_ORDER '{}' lists slot {} twice", it->second, word));
                }
            }
            st.order.push_back(*slot);
        }
    }
    for (Slot s : {Slot::kA, Slot::kB}) {
        const auto it = vars.find(attemptsVar(s));
        if (it == vars.end()) continue;
        const std::string& text = it->second;
        int n = -1;
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (ec != std::errc{} || p != text.data() + text.size() || n < 0) {
            return fail(FirmwareErrc::kBootControl,
                        fmt::format("{}='{}' is not a count", attemptsVar(s), text));
        }
        st.attempts_left[slotIndex(s)] = n;
    }
    return st;
}

Result<BootState> EnvBootControl::state() {
    auto vars = readVars();
    if (!vars) return fail(std::move(vars.error()).wrap("read boot environment"));
    auto st = decode(*vars);
    if (!st) return st;
    auto booted = bootedSlot();
    if (!booted) return fail(std::move(booted.error()));
    st->booted = *booted;
    return st;
}

Status EnvBootControl::change(const std::function<void(BootState&)>& edit, std::string_view what) {
    auto vars = readVars();
    if (!vars) return fail(std::move(vars.error()).wrap("read boot environment").wrap(what));
    auto have = decode(*vars);
    if (!have) return fail(std::move(have.error()).wrap(what));
    BootState want = *have;
    edit(want);

    // Raised counts first, lowered counts next, the order last: at every cut the environment
    // is one the bootloader can boot from (see the header). Missing variables are written too,
    // so the environment states the scheme explicitly after the first change.
    BootVarChanges changes;
    for (bool raise : {true, false}) {
        for (Slot s : {Slot::kA, Slot::kB}) {
            const int from = have->attemptsLeft(s);
            const int to = want.attemptsLeft(s);
            const bool missing = !vars->contains(attemptsVar(s));
            if ((raise && (to > from || (to == from && missing))) || (!raise && to < from)) {
                changes.emplace_back(attemptsVar(s), std::to_string(to));
            }
        }
    }
    if (have->order != want.order || !vars->contains(kBootOrderVar)) {
        changes.emplace_back(std::string(kBootOrderVar), orderText(want.order));
    }
    if (changes.empty()) return {};
    auto st = writeVars(changes);
    if (!st) return fail(std::move(st.error()).wrap(what));
    return {};
}

Status EnvBootControl::tryOnce(Slot slot) {
    return change(
        [&](BootState& want) {
            want.order = {slot, otherSlot(slot)};
            want.attempts_left[slotIndex(slot)] = 1;
        },
        fmt::format("try slot {} once", slotName(slot)));
}

Status EnvBootControl::markGood(Slot slot) {
    return change(
        [&](BootState& want) {
            // The other slot stays the fallback only while it is one: in the order, with attempts
            // left. At 0 it failed its boots (or an older edged disabled it that way), and it
            // leaves the order, so that the bootloader's reset never brings it back.
            const Slot other = otherSlot(slot);
            const bool fallback = std::ranges::find(want.order, other) != want.order.end() &&
                                  want.attemptsLeft(other) > 0;
            want.order = fallback ? std::vector{slot, other} : std::vector{slot};
            want.attempts_left[slotIndex(slot)] = max_attempts_;
        },
        fmt::format("mark slot {} good", slotName(slot)));
}

Status EnvBootControl::fallBack(Slot bad) {
    const Slot good = otherSlot(bad);
    return change(
        [&](BootState& want) {
            want.order = {good};
            want.attempts_left[slotIndex(good)] = max_attempts_;
            want.attempts_left[slotIndex(bad)] = 0;
        },
        fmt::format("fall back from slot {} to slot {}", slotName(bad), slotName(good)));
}

}  // namespace edge::firmware
