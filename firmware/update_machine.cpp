#include "firmware/update_machine.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "firmware/errors.hpp"
#include "shared/core/text.hpp"

namespace edge::firmware {
namespace {

constexpr std::array<std::string_view, kUpdateStateCount> kStateNames = {
    "idle",       "installing", "installed",    "rebooting", "verifying",
    "committing", "committed",  "rolling_back", "failed"};
constexpr std::array<std::string_view, kUpdateEventCount> kEventNames = {
    "start",     "install_ok",    "install_failed", "reboot_requested", "booted_new", "booted_old",
    "health_ok", "health_failed", "commit_done",    "rollback_done",    "resume",     "abort"};

// Every table entry names real states and events, and no pair appears twice: the table is a
// function of (state, event).
constexpr bool tableIsAFunction() {
    for (std::size_t i = 0; i < kTransitions.size(); ++i) {
        for (std::size_t j = i + 1; j < kTransitions.size(); ++j) {
            if (kTransitions[i].from == kTransitions[j].from &&
                kTransitions[i].event == kTransitions[j].event) {
                return false;
            }
        }
    }
    return true;
}
static_assert(tableIsAFunction(), "kTransitions lists a (state, event) pair twice");
static_assert(!nextState(UpdateState::kCommitted, UpdateEvent::kResume),
              "final states never resume");
static_assert(nextState(UpdateState::kCommitted, UpdateEvent::kBootedOld) == UpdateState::kFailed,
              "a committed slot the bootloader left fails the update");

}  // namespace

std::string_view stateName(UpdateState s) { return kStateNames.at(static_cast<std::size_t>(s)); }

std::string_view eventName(UpdateEvent e) { return kEventNames.at(static_cast<std::size_t>(e)); }

Result<UpdateState> parseState(std::string_view name) {
    for (std::size_t i = 0; i < kStateNames.size(); ++i) {
        if (kStateNames[i] == name) return static_cast<UpdateState>(i);
    }
    return fail(FirmwareErrc::kState, fmt::format("unknown update state '{}'", name));
}

std::string toJson(const UpdateRecord& r) {
    const nlohmann::json j = {
        {"schema", UpdateRecord::kSchema},
        {"state", stateName(r.state)},
        {"target",
         {{"version", r.target.version}, {"sha256", r.target.sha256}, {"size", r.target.size}}},
        {"target_slot", slotName(r.target_slot)},
        {"old_slot", slotName(r.old_slot)},
        {"image_path", r.image_path},
        {"image_url", r.image_url},
        {"transitions", r.transitions},
        {"reason", r.reason},
        {"last_failed_version", r.last_failed_version},
        {"current_version", r.current_version},
        {"previous_version", r.previous_version},
    };
    return jsonText(j);
}

Result<UpdateRecord> parseUpdateRecord(std::string_view text) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return fail(FirmwareErrc::kState, "update record is not a JSON object");
    }
    try {
        const int schema = j.at("schema").get<int>();
        if (schema != UpdateRecord::kSchema) {
            return fail(FirmwareErrc::kState,
                        fmt::format("update record has schema {}; this build reads schema {}",
                                    schema, UpdateRecord::kSchema));
        }
        UpdateRecord r;
        auto state = parseState(j.at("state").get<std::string>());
        if (!state) return fail(std::move(state.error()));
        r.state = *state;
        const auto& t = j.at("target");
        r.target.version = t.at("version").get<std::string>();
        r.target.sha256 = t.at("sha256").get<std::string>();
        r.target.size = t.at("size").get<std::uint64_t>();
        auto target_slot = parseSlot(j.at("target_slot").get<std::string>());
        auto old_slot = parseSlot(j.at("old_slot").get<std::string>());
        if (!target_slot || !old_slot)
            return fail(FirmwareErrc::kState, "update record: bad slot name");
        r.target_slot = *target_slot;
        r.old_slot = *old_slot;
        r.image_path = j.at("image_path").get<std::string>();
        r.image_url = j.value("image_url", std::string());  // absent in records of older builds
        r.transitions = j.at("transitions").get<int>();
        r.reason = j.at("reason").get<std::string>();
        r.last_failed_version = j.at("last_failed_version").get<std::string>();
        r.current_version = j.at("current_version").get<std::string>();
        r.previous_version = j.value("previous_version", std::string());  // absent before
        if (r.transitions < 0)
            return fail(FirmwareErrc::kState, "update record: negative transitions");
        return r;
    } catch (const nlohmann::json::exception& e) {
        return fail(FirmwareErrc::kState, fmt::format("update record is corrupt: {}", e.what()));
    }
}

Result<UpdateRecord> loadUpdateRecord(const store::Store& store) {
    std::optional<std::string> text;
    auto st = store.read([&](const store::ReadTxn& txn) -> Status {
        auto value = txn.get(kFirmwareDb, kUpdateKey);
        if (!value) return fail(value.error());
        text = std::move(*value);
        return {};
    });
    if (!st) return fail(std::move(st.error()).wrap("load firmware update record"));
    if (!text) return UpdateRecord{};
    auto record = parseUpdateRecord(*text);
    if (!record) return fail(std::move(record.error()).wrap("load firmware update record"));
    return record;
}

Status saveUpdateRecord(store::Store& store, const UpdateRecord& record) {
    const auto json = toJson(record);
    auto st = store.write(
        [&](store::WriteTxn& txn) -> Status { return txn.put(kFirmwareDb, kUpdateKey, json); });
    if (!st) return fail(std::move(st.error()).wrap("persist firmware update record"));
    return {};
}

Result<UpdateMachine> UpdateMachine::load(store::Store& store, PersistHook on_persisted) {
    auto record = loadUpdateRecord(store);
    if (!record) return fail(std::move(record.error()));
    return UpdateMachine(store, std::move(*record), std::move(on_persisted));
}

Status UpdateMachine::fire(UpdateEvent event, const std::function<void(UpdateRecord&)>& edit) {
    const auto to = nextState(record_.state, event);
    if (!to) {
        return fail(FirmwareErrc::kBadTransition,
                    fmt::format("firmware update: event '{}' is not allowed in state '{}'",
                                eventName(event), stateName(record_.state)));
    }
    if (event == UpdateEvent::kResume && record_.transitions >= kMaxTransitions) {
        return fail(FirmwareErrc::kLoopGuard,
                    fmt::format("firmware update: loop guard: {} transitions in state '{}'",
                                record_.transitions, stateName(record_.state)));
    }
    UpdateRecord next = record_;
    if (event == UpdateEvent::kStart) {
        next.transitions = 0;
        next.reason.clear();
    }
    if (edit) edit(next);
    next.state = *to;
    next.transitions += 1;
    if (*to == UpdateState::kFailed) next.last_failed_version = next.target.version;
    if (*to == UpdateState::kCommitted) {
        next.previous_version = next.current_version;
        next.current_version = next.target.version;
        next.last_failed_version.clear();
    }
    if (record_.state == UpdateState::kCommitted && *to == UpdateState::kFailed) {
        next.current_version = next.previous_version;  // what the old slot runs
        next.previous_version.clear();
    }
    if (auto st = saveUpdateRecord(*store_, next); !st) return st;
    record_ = std::move(next);
    if (hook_) hook_(record_);
    return {};
}

}  // namespace edge::firmware
