#include "firmware/file/file_boot_control.hpp"

#include <fmt/format.h>

#include <sstream>

#include "firmware/errors.hpp"
#include "shared/core/fs.hpp"

namespace edge::firmware {
namespace {

constexpr std::size_t kMaxEnvBytes = 64 * 1024;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' '))
        s.remove_suffix(1);
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    return s;
}

}  // namespace

FileBootControl::FileBootControl(std::filesystem::path env_file, std::filesystem::path booted_file,
                                 int max_attempts)
    : EnvBootControl(max_attempts),
      env_file_(std::move(env_file)),
      booted_file_(std::move(booted_file)) {}

Result<BootVars> FileBootControl::readVars() {
    BootVars vars;
    std::error_code ec;
    if (!std::filesystem::exists(env_file_, ec)) return vars;  // defaults
    auto text = fs::readFile(env_file_, kMaxEnvBytes);
    if (!text) return fail(FirmwareErrc::kBootControl, text.error().what());
    std::istringstream in(*text);
    int line_no = 0;
    for (std::string line; std::getline(in, line);) {
        ++line_no;
        const auto body = trim(line);
        if (body.empty() || body.front() == '#') continue;
        const auto eq = body.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            return fail(FirmwareErrc::kBootControl, fmt::format("'{}' line {}: expected KEY=VALUE",
                                                                env_file_.string(), line_no));
        }
        vars[std::string(body.substr(0, eq))] = std::string(body.substr(eq + 1));
    }
    return vars;
}

Status FileBootControl::writeVars(const BootVarChanges& changes) {
    auto vars = readVars();
    if (!vars) return fail(std::move(vars.error()));
    for (const auto& [key, value] : changes) (*vars)[key] = value;
    std::string text;
    for (const auto& [key, value] : *vars) text += fmt::format("{}={}\n", key, value);
    if (auto st = fs::writeFileAtomic(env_file_, text); !st) {
        return fail(FirmwareErrc::kBootControl, st.error().what());
    }
    return {};
}

Result<Slot> FileBootControl::bootedSlot() {
    auto text = fs::readFile(booted_file_, 64);
    if (!text) {
        return fail(FirmwareErrc::kBootControl,
                    fmt::format("booted slot: {}", text.error().what()));
    }
    auto slot = parseSlot(trim(*text));
    if (!slot) {
        return fail(
            FirmwareErrc::kBootControl,
            fmt::format("booted slot '{}': {}", booted_file_.string(), slot.error().message()));
    }
    return *slot;
}

Result<Slot> FileBootControl::simulateBoot(bool* reset) {
    auto vars = readVars();
    if (!vars) return fail(std::move(vars.error()).wrap("simulated boot"));
    auto st = decode(*vars);
    if (!st) return fail(std::move(st.error()).wrap("simulated boot"));
    if (st->order.empty()) {  // decode() never gives one; defensive
        return fail(FirmwareErrc::kNotBootable, "simulated boot: the boot order names no slot");
    }
    BootVarChanges writes;
    auto slot = st->nextBoot();
    if (!slot) {
        // Every slot of the order used up its attempts (a slot left out of the order is
        // disabled and stays so): all of them get their attempts back, and the first boots.
        for (Slot s : st->order) {
            st->attempts_left[slotIndex(s)] = max_attempts_;
            writes.emplace_back(attemptsVar(s), std::to_string(max_attempts_));
        }
        slot = st->order.front();
    }
    if (reset != nullptr) *reset = !writes.empty();
    // Like RAUC's boot script: decrement before booting, so a crash during boot still counts.
    // The file is replaced at once, so a reset and the count land together.
    writes.emplace_back(attemptsVar(*slot), std::to_string(st->attemptsLeft(*slot) - 1));
    if (auto w = writeVars(writes); !w) {
        return fail(std::move(w.error()).wrap("simulated boot"));
    }
    if (auto w = fs::writeFileAtomic(booted_file_, std::string(slotName(*slot)) + "\n"); !w) {
        return fail(FirmwareErrc::kBootControl, "simulated boot: " + w.error().what());
    }
    return *slot;
}

}  // namespace edge::firmware
