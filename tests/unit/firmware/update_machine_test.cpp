#include "firmware/update_machine.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "firmware/errors.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware {
namespace {

using test::TempDir;
using test::what;

std::unique_ptr<store::LmdbStore> openStore(const std::filesystem::path& dir) {
    auto store = store::LmdbStore::open(dir);
    INFO(what(store));
    REQUIRE(store);
    return std::move(*store);
}

std::optional<std::string> rawRecord(const store::Store& store) {
    std::optional<std::string> out;
    REQUIRE(store.read([&](const store::ReadTxn& txn) -> Status {
        auto v = txn.get(kFirmwareDb, kUpdateKey);
        if (!v) return fail(v.error());
        out = *v;
        return {};
    }));
    return out;
}

UpdateRecord sampleRecord(UpdateState state) {
    UpdateRecord r;
    r.state = state;
    r.target = {"2.1.0", std::string(64, 'a'), 123456};
    r.target_slot = Slot::kB;
    r.old_slot = Slot::kA;
    r.image_path = "/var/lib/edged/artifacts/fw-2.1.0.img";
    r.transitions = 3;
    r.reason = state == UpdateState::kRollingBack ? "health check failed: x" : "";
    r.last_failed_version = "2.0.9";
    r.current_version = "2.0.0";
    r.previous_version = "1.9.0";
    return r;
}

constexpr std::array kAllStates = {
    UpdateState::kIdle,      UpdateState::kInstalling,  UpdateState::kInstalled,
    UpdateState::kRebooting, UpdateState::kVerifying,   UpdateState::kCommitting,
    UpdateState::kCommitted, UpdateState::kRollingBack, UpdateState::kFailed};
constexpr std::array kAllEvents = {
    UpdateEvent::kStart,           UpdateEvent::kInstallOk,    UpdateEvent::kInstallFailed,
    UpdateEvent::kRebootRequested, UpdateEvent::kBootedNew,    UpdateEvent::kBootedOld,
    UpdateEvent::kHealthOk,        UpdateEvent::kHealthFailed, UpdateEvent::kCommitDone,
    UpdateEvent::kRollbackDone,    UpdateEvent::kResume,       UpdateEvent::kAbort};
static_assert(kAllStates.size() == kUpdateStateCount);
static_assert(kAllEvents.size() == kUpdateEventCount);

}  // namespace

TEST_CASE("UpdateMachine: the table is the update's life as the issue tells it, pair by pair", "[firmware]") {
    // Written from the lifecycle (install, reboot, check, commit; a bad boot or check rolls
    // back; Resume re-runs a non-final state; Abort leaves toward the old slot), not copied from
    // kTransitions: any entry changed, added or dropped there fails here.
    const std::map<std::string, std::string> life = {
        {"idle start", "installing"},           {"committed start", "installing"},
        {"failed start", "installing"},         {"installing install_ok", "installed"},
        {"installing install_failed", "failed"}, {"installing resume", "installing"},
        {"installing abort", "failed"},         {"installed reboot_requested", "rebooting"},
        {"installed resume", "installed"},      {"installed abort", "failed"},
        {"rebooting booted_new", "verifying"},  {"rebooting booted_old", "rolling_back"},
        {"rebooting resume", "rebooting"},      {"rebooting abort", "rolling_back"},
        {"verifying health_ok", "committing"},  {"verifying health_failed", "rolling_back"},
        {"verifying booted_old", "rolling_back"}, {"verifying resume", "verifying"},
        {"verifying abort", "rolling_back"},    {"committing commit_done", "committed"},
        {"committing booted_old", "rolling_back"}, {"committing resume", "committing"},
        {"committing abort", "rolling_back"},   {"rolling_back rollback_done", "failed"},
        {"committed booted_old", "failed"},  // the committed slot stopped booting later
        {"rolling_back resume", "rolling_back"}, {"rolling_back abort", "failed"},
    };
    std::size_t allowed = 0;
    for (const auto state : kAllStates) {
        for (const auto event : kAllEvents) {
            const auto pair = std::string(stateName(state)) + " " + std::string(eventName(event));
            INFO(pair);
            const auto next = nextState(state, event);
            const auto it = life.find(pair);
            if (it == life.end()) {
                CHECK_FALSE(next.has_value());
            } else {
                ++allowed;
                REQUIRE(next.has_value());
                CHECK(stateName(*next) == it->second);
            }
        }
    }
    CHECK(allowed == life.size());
}

TEST_CASE("UpdateMachine: a (state, event) pair outside the table is refused and changes nothing",
          "[firmware]") {
    TempDir tmp;
    auto store = openStore(tmp / "db");
    int refused = 0;
    for (auto state : kAllStates) {
        for (auto event : kAllEvents) {
            if (nextState(state, event)) continue;
            CAPTURE(stateName(state), eventName(event));
            const auto before = sampleRecord(state);
            REQUIRE(saveUpdateRecord(*store, before));
            const auto raw_before = rawRecord(*store);
            int hook_calls = 0;
            auto machine = UpdateMachine::load(*store, [&](const UpdateRecord&) { ++hook_calls; });
            REQUIRE(machine);
            bool edited = false;
            auto st = machine->fire(event, [&](UpdateRecord&) { edited = true; });
            REQUIRE_FALSE(st);
            CHECK(st.error().code() == FirmwareErrc::kBadTransition);
            CHECK_THAT(st.error().what(), Catch::Contains(std::string(stateName(state))));
            CHECK(machine->record() == before);
            CHECK(rawRecord(*store) == raw_before);
            CHECK_FALSE(edited);
            CHECK(hook_calls == 0);
            ++refused;
        }
    }
    CHECK(refused == kUpdateStateCount * kUpdateEventCount - static_cast<int>(kTransitions.size()));
}

TEST_CASE("UpdateMachine: every transition in the table is taken and persisted before the hook",
          "[firmware]") {
    TempDir tmp;
    auto store = openStore(tmp / "db");
    for (const auto& t : kTransitions) {
        CAPTURE(stateName(t.from), eventName(t.event));
        REQUIRE(saveUpdateRecord(*store, sampleRecord(t.from)));
        std::optional<UpdateRecord> seen_by_hook;
        std::optional<UpdateRecord> stored_at_hook;
        auto machine = UpdateMachine::load(*store, [&](const UpdateRecord& r) {
            seen_by_hook = r;
            auto loaded = loadUpdateRecord(*store);
            REQUIRE(loaded);
            stored_at_hook = *loaded;
        });
        REQUIRE(machine);
        auto st = machine->fire(t.event);
        INFO(what(st));
        REQUIRE(st);
        CHECK(machine->state() == t.to);
        REQUIRE(seen_by_hook);
        CHECK(*seen_by_hook == machine->record());
        CHECK(stored_at_hook == machine->record());  // durable before anyone hears of it
        auto reloaded = loadUpdateRecord(*store);
        REQUIRE(reloaded);
        CHECK(*reloaded == machine->record());
    }
}

TEST_CASE("UpdateMachine: the table keeps every update finite and resumable", "[firmware]") {
    for (auto state : kAllStates) {
        CAPTURE(stateName(state));
        if (isFinal(state)) {
            // Final states only start a new update (and Committed learns that the bootloader left
            // the committed slot: Failed, final too).
            for (auto event : kAllEvents) {
                const bool fell_back = state == UpdateState::kCommitted && event == UpdateEvent::kBootedOld;
                CHECK(nextState(state, event).has_value() == (event == UpdateEvent::kStart || fell_back));
                if (fell_back) CHECK(nextState(state, event) == UpdateState::kFailed);
            }
        } else {
            // Every state in progress can be resumed after a restart and aborted.
            CHECK(nextState(state, UpdateEvent::kResume) == state);
            REQUIRE(nextState(state, UpdateEvent::kAbort));
        }
    }
    // Without Resume, following events from Installing always ends in a final state within
    // a few steps: there is no cycle to loop in.
    std::function<int(UpdateState, int)> longest = [&](UpdateState s, int depth) {
        REQUIRE(depth < 20);
        int best = 0;
        for (const auto& t : kTransitions) {
            if (t.from != s || t.event == UpdateEvent::kResume || t.event == UpdateEvent::kStart)
                continue;
            best = std::max(best, 1 + longest(t.to, depth + 1));
        }
        return best;
    };
    CHECK(longest(UpdateState::kInstalling, 0) <= 6);
}

TEST_CASE("UpdateMachine: a persisted record reloads identically", "[firmware]") {
    TempDir tmp;
    const auto original = sampleRecord(UpdateState::kRollingBack);
    {
        auto store = openStore(tmp / "db");
        REQUIRE(saveUpdateRecord(*store, original));
    }
    auto store = openStore(tmp / "db");
    auto machine = UpdateMachine::load(*store);
    REQUIRE(machine);
    CHECK(machine->record() == original);
    auto again = parseUpdateRecord(toJson(original));
    REQUIRE(again);
    CHECK(*again == original);
}

TEST_CASE("UpdateMachine: an empty store is Idle", "[firmware]") {
    TempDir tmp;
    auto store = openStore(tmp / "db");
    auto machine = UpdateMachine::load(*store);
    REQUIRE(machine);
    CHECK(machine->record() == UpdateRecord{});
    CHECK(machine->state() == UpdateState::kIdle);
}

TEST_CASE("UpdateMachine: an unknown schema or a corrupt record is refused", "[firmware]") {
    TempDir tmp;
    auto store = openStore(tmp / "db");
    auto json = nlohmann::json::parse(toJson(sampleRecord(UpdateState::kVerifying)));
    std::string text;
    std::string expect;
    SECTION("schema 2") {
        json["schema"] = 2;
        text = json.dump();
        expect = "schema 2";
    }
    SECTION("no schema") {
        json.erase("schema");
        text = json.dump();
        expect = "corrupt";
    }
    SECTION("unknown state") {
        json["state"] = "dancing";
        text = json.dump();
        expect = "dancing";
    }
    SECTION("not JSON") {
        text = "{\"schema\":1,";
        expect = "not a JSON object";
    }
    REQUIRE(
        store->write([&](store::WriteTxn& txn) { return txn.put(kFirmwareDb, kUpdateKey, text); }));
    auto machine = UpdateMachine::load(*store);
    REQUIRE_FALSE(machine);
    CHECK(machine.error().code() == FirmwareErrc::kState);
    CHECK_THAT(machine.error().what(), Catch::Contains(expect));
}

TEST_CASE("UpdateMachine: Start resets the count, Failed and Committed keep the version history",
          "[firmware]") {
    TempDir tmp;
    auto store = openStore(tmp / "db");
    REQUIRE(saveUpdateRecord(*store, sampleRecord(UpdateState::kFailed)));
    auto machine = UpdateMachine::load(*store);
    REQUIRE(machine);
    REQUIRE(machine->fire(UpdateEvent::kStart, [](UpdateRecord& r) {
        r.target = {"3.0", std::string(64, 'b'), 10};
    }));
    CHECK(machine->record().transitions == 1);
    CHECK(machine->record().reason.empty());
    CHECK(machine->record().last_failed_version == "2.0.9");

    REQUIRE(machine->fire(UpdateEvent::kInstallFailed, [](UpdateRecord& r) { r.reason = "disk"; }));
    CHECK(machine->record().last_failed_version == "3.0");
    CHECK(machine->record().current_version == "2.0.0");
    CHECK(machine->record().reason == "disk");

    REQUIRE(machine->fire(UpdateEvent::kStart, [](UpdateRecord& r) {
        r.target = {"3.1", std::string(64, 'c'), 10};
    }));
    for (auto e : {UpdateEvent::kInstallOk, UpdateEvent::kRebootRequested, UpdateEvent::kBootedNew,
                   UpdateEvent::kHealthOk, UpdateEvent::kCommitDone}) {
        REQUIRE(machine->fire(e));
    }
    CHECK(machine->state() == UpdateState::kCommitted);
    CHECK(machine->record().current_version == "3.1");
    CHECK(machine->record().previous_version == "2.0.0");
    CHECK(machine->record().last_failed_version.empty());
    CHECK(machine->record().transitions == 6);

    // Later the committed slot stops booting and the old one runs again: Failed, with the
    // previous version current again, and 3.1 not to be installed again by the same bundle.
    REQUIRE(machine->fire(UpdateEvent::kBootedOld, [](UpdateRecord& r) { r.reason = "fell back"; }));
    CHECK(machine->state() == UpdateState::kFailed);
    CHECK(machine->record().current_version == "2.0.0");
    CHECK(machine->record().previous_version.empty());
    CHECK(machine->record().last_failed_version == "3.1");
    CHECK(machine->record().reason == "fell back");
    // A record of an older build (no previous_version) still loads.
    auto old = nlohmann::json::parse(toJson(sampleRecord(UpdateState::kCommitted)));
    old.erase("previous_version");
    auto parsed = parseUpdateRecord(old.dump());
    REQUIRE(parsed);
    auto want = sampleRecord(UpdateState::kCommitted);
    want.previous_version.clear();
    CHECK(*parsed == want);
}

TEST_CASE("UpdateMachine: the loop guard refuses Resume past the bound but still allows Abort",
          "[firmware]") {
    TempDir tmp;
    auto store = openStore(tmp / "db");
    auto rec = sampleRecord(UpdateState::kVerifying);
    rec.transitions = UpdateMachine::kMaxTransitions - 1;
    REQUIRE(saveUpdateRecord(*store, rec));
    auto machine = UpdateMachine::load(*store);
    REQUIRE(machine);
    REQUIRE(machine->fire(UpdateEvent::kResume));
    auto st = machine->fire(UpdateEvent::kResume);
    REQUIRE_FALSE(st);
    CHECK(st.error().code() == FirmwareErrc::kLoopGuard);
    CHECK_THAT(st.error().what(), Catch::Contains("loop guard"));
    CHECK(machine->state() == UpdateState::kVerifying);
    REQUIRE(machine->fire(UpdateEvent::kAbort));
    CHECK(machine->state() == UpdateState::kRollingBack);
}

}  // namespace edge::firmware
