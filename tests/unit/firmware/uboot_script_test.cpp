// The shipped U-Boot script (deploy/boot/uboot/ab-select.cmd) run by U-Boot itself: Debian's
// U-Boot for QEMU's arm64 virt board sources it (uboot_rig.hpp). The daemon's side is the real
// UBootControl with Debian's fw_printenv/fw_setenv on the same flash. Checked: the script picks
// and counts down exactly as the simulated bootloader the other firmware tests use, values
// edged never writes do not take it anywhere unsafe, and whole updates (commit, failed health
// check, a slot that never boots) end on a good slot.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "firmware/errors.hpp"
#include "firmware/updater.hpp"
#include "tests/unit/firmware/uboot_rig.hpp"

namespace edge::firmware {
namespace {

using test::Device;
using test::TempDir;
using test::UBootRig;
using test::BootEnv;
using test::what;

/// U-Boot shell lines that set env (setenv with no value deletes a variable).
std::string setEnvLines(const BootEnv& env) {
    const auto line = [](const char* name, const std::optional<std::string>& v) {
        return v ? fmt::format("setenv {} \"{}\"\n", name, *v) : fmt::format("setenv {}\n", name);
    };
    return line("BOOT_ORDER", env.order) + line("BOOT_A_LEFT", env.a_left) + line("BOOT_B_LEFT", env.b_left);
}

struct UBootResult {
    Slot slot;
    std::string a_left, b_left;  // as U-Boot's environment holds them after the script ("" = unset)
    std::string messages;        // the script's own lines
    bool stored = false;         // the script ran its store command (ab_save)
};

/// Runs ab-select.cmd in U-Boot once per environment, all in one power-on (the script starts
/// from its "none" markers each time; every environment variable it reads is set or deleted
/// before). prelude: U-Boot commands run first (board settings).
std::vector<UBootResult> runCases(UBootRig& rig, const std::vector<BootEnv>& envs, const std::string& prelude = {}) {
    std::string harness = prelude;
    for (std::size_t i = 0; i < envs.size(); ++i) {
        harness += setEnvLines(envs[i]);
        harness += fmt::format("echo CASE {} START\nsource {}\n", i, UBootRig::kScriptAddr);
        harness += fmt::format("HUSH_NO_EVAL=1\necho CASE {} AB_BOOT=${{ab_slot}} A=[${{BOOT_A_LEFT}}] B=[${{BOOT_B_LEFT}}]\n"
                               "HUSH_NO_EVAL=0\n",
                               i);
    }
    auto out = rig.runUBoot(harness, std::chrono::seconds(120));
    INFO(what(out));
    REQUIRE(out);
    std::vector<UBootResult> results;
    for (std::size_t i = 0; i < envs.size(); ++i) {
        CAPTURE(i, envs[i].describe());
        const auto start = out->find(fmt::format("CASE {} START", i));
        const auto tag = fmt::format("CASE {} AB_BOOT=", i);
        const auto at = out->find(tag);
        INFO(*out);
        REQUIRE(start != std::string::npos);
        REQUIRE(at != std::string::npos);
        const auto line = out->substr(at + tag.size(), out->find('\n', at) - at - tag.size());
        auto slot = parseSlot(line.substr(0, 1));
        INFO("U-Boot said: " << line);
        REQUIRE(slot);
        const auto field = [&](const std::string& key) {
            const auto from = line.find(key + "=[");
            REQUIRE(from != std::string::npos);
            const auto to = line.find(']', from);
            REQUIRE(to != std::string::npos);
            return line.substr(from + key.size() + 2, to - from - key.size() - 2);
        };
        std::string messages;
        const auto block = out->substr(start, at - start);
        for (std::size_t p = block.find("ab-select: "); p != std::string::npos; p = block.find("ab-select: ", p + 1)) {
            messages += block.substr(p, block.find('\n', p) - p) + "\n";
        }
        results.push_back({*slot, field("A"), field("B"), messages, block.find("AB_SAVED") != std::string::npos});
    }
    return results;
}

std::string fileValue(const std::filesystem::path& env_file, const std::string& var) {
    const auto text = test::readFile(env_file);
    const auto at = text.find(var + "=");
    if (at == std::string::npos) return {};
    const auto from = at + var.size() + 1;
    return text.substr(from, text.find('\n', from) - from);
}

}  // namespace

TEST_CASE("U-Boot script: ab-select.cmd picks and counts down as the simulated bootloader does",
          "[firmware][uboot]") {
    const auto tools = test::requireUBootTools();
    TempDir tmp;
    UBootRig uboot(tools, tmp / "uboot");
    test::FileBootRig file(tmp / "bootenv", tmp / "booted");
    const auto envs = test::bootEnvMatrix();
    const auto results = runCases(uboot, envs);
    REQUIRE(results.size() == 64);
    int resets = 0;
    for (std::size_t i = 0; i < envs.size(); ++i) {
        const auto& env = envs[i];
        const auto& got = results[i];
        CAPTURE(env.describe(), got.messages);
        test::writeFileEnv(file.env, env);
        auto expected = file.boot();
        INFO(what(expected));
        REQUIRE(expected);  // every order of the matrix names a slot
        CHECK(got.slot == *expected);
        CHECK(got.a_left == fileValue(file.env, "BOOT_A_LEFT"));
        CHECK(got.b_left == fileValue(file.env, "BOOT_B_LEFT"));
        CHECK(got.stored);  // the count is stored before the kernel starts
        if (got.messages.find("no slot has boot attempts left") != std::string::npos) ++resets;
    }
    CHECK(resets > 0);  // (the simulated bootloader's reset is checked in boot_control_test)
}

TEST_CASE("U-Boot script: values edged never writes do not take ab-select.cmd anywhere unsafe",
          "[firmware][uboot]") {
    const auto tools = test::requireUBootTools();
    TempDir tmp;
    UBootRig uboot(tools, tmp / "uboot");
    const std::vector<BootEnv> envs{
        {"X B", "3", "100"},              // 0: not a slot name
        {"A;echo INJECTED B", "0", "2"},  // 1: shell syntax in the order is only words
        {"A B", "junk", "2"},             // 2..6: not counts edged writes
        {"A B", "101", "2"},
        {"A B", "-1", "2"},
        {"A B", "1 2", "2"},
        {"A B", "03", "2"},
        {"A B", "10", "0"},               // 7: two digits
        {"B A", "none", "0"},             // 8: the script's own marker is no count
    };
    const auto r = runCases(uboot, envs);
    CHECK(r[0].slot == Slot::kB);
    CHECK(r[0].b_left == "99");
    CHECK_THAT(r[0].messages, Catch::Contains("BOOT_ORDER names X, not a slot"));
    CHECK(r[1].slot == Slot::kB);
    CHECK(r[1].b_left == "1");
    CHECK_THAT(r[1].messages, Catch::Contains("BOOT_ORDER names A;echo, not a slot"));
    CHECK_THAT(r[1].messages, Catch::Contains("BOOT_ORDER names INJECTED, not a slot"));
    for (std::size_t i = 2; i <= 6; ++i) {
        CAPTURE(i, r[i].messages);
        CHECK(r[i].slot == Slot::kB);
        CHECK(r[i].a_left == *envs[i].a_left);
        CHECK(r[i].b_left == "1");
        CHECK_THAT(r[i].messages, Catch::Contains("BOOT_A_LEFT is not a count"));
    }
    CHECK(r[7].slot == Slot::kA);
    CHECK(r[7].a_left == "9");
    // Nothing left: every slot of the order gets its attempts back (a value that is no count
    // too), and the first boots, counted.
    CHECK(r[8].slot == Slot::kB);
    CHECK(r[8].a_left == "3");
    CHECK(r[8].b_left == "2");
    CHECK_THAT(r[8].messages, Catch::Contains("no slot has boot attempts left"));
    CHECK(r[8].stored);

    // Values stored with quotes, as only fw_setenv can store them: U-Boot's shell re-parses
    // expanded commands, and quotes must not split the script's comparisons.
    const auto bootWith = [&](const std::vector<std::pair<std::string, std::string>>& vars) {
        for (const auto* name : {"BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"}) {
            auto unset = uboot.setenv();
            unset.push_back(name);
            REQUIRE(test::runTool(unset));
        }
        for (const auto& [name, value] : vars) {
            auto set = uboot.setenv();
            set.insert(set.end(), {name, value});
            REQUIRE(test::runTool(set));
        }
        auto slot = uboot.boot();
        INFO("U-Boot said: " << uboot.output);
        REQUIRE(slot);
        return *slot;
    };
    const auto print = [&](const std::string& var) { return uboot.print(var); };
    for (const char* hostile : {"x -o 1 = 1", "0 -o x", "x' -o '1' = '1", "0' -o 'x", "1\" -o \"1"}) {
        CAPTURE(hostile);
        CHECK(bootWith({{"BOOT_ORDER", "A B"}, {"BOOT_A_LEFT", hostile}, {"BOOT_B_LEFT", "2"}}) == Slot::kB);
        CHECK_THAT(uboot.output, Catch::Contains("BOOT_A_LEFT is not a count"));
        CHECK(print("BOOT_A_LEFT") == std::string(hostile) + "\n");
        CHECK(print("BOOT_B_LEFT") == "1\n");
    }

    // Environment variables with the helpers' names do not steer the script (U-Boot's shell
    // reads the environment before its own variables).
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"ab_slot", "B"}, {"ab_first", "B"}, {"ab_s", "B"}, {"ab_known", "yes"}, {"ab_left", "3"},
             {"ab_less", "5"}, {"ab_prev", "7"}, {"ab_n", "2"}, {"ab_tens", "1"}, {"ab_units", "0"},
             {"ab_order", "B"}, {"ab_max", "9"}, {"ab_unstored", "B"}, {"ab_stored", "yes"},
             {"ab_pass", "2"}, {"ab_reset", "yes"}, {"ab_o", "B"}}) {
        auto set = uboot.setenv();
        set.insert(set.end(), {name, value});
        REQUIRE(test::runTool(set));
    }
    CHECK(bootWith({{"BOOT_ORDER", "A B"}, {"BOOT_A_LEFT", "2"}, {"BOOT_B_LEFT", "0"}}) == Slot::kA);
    CHECK(print("BOOT_A_LEFT") == "1\n");
    CHECK(print("BOOT_B_LEFT") == "0\n");
    CHECK(bootWith({{"BOOT_ORDER", "A B"}, {"BOOT_A_LEFT", "0"}, {"BOOT_B_LEFT", "0"}}) == Slot::kA);
    CHECK_THAT(uboot.output, Catch::Contains("no slot has boot attempts left"));
    CHECK(print("BOOT_A_LEFT") == "2\n");
    CHECK(print("BOOT_B_LEFT") == "3\n");
}

TEST_CASE("U-Boot script: when the environment cannot be stored, a slot on its last attempt is skipped",
          "[firmware][uboot]") {
    const auto tools = test::requireUBootTools();
    TempDir tmp;
    UBootRig uboot(tools, tmp / "uboot");
    // ab_save fails (a store error on the board).
    const std::vector<BootEnv> envs{
        {"B A", "3", "1"},  // 0: B on trial is skipped, A boots uncounted
        {"A B", "3", "0"},  // 1: A has attempts to spare: uncounted
        {"B A", "1", "0"},  // 2: B spent its try; A on its last attempt is still the one to boot
        {"B A", "1", "1"},  // 3: both on their last attempt (max_attempts 1): the first, uncounted
        {"A B", "0", "0"},  // 4: nothing left: the reset cannot be stored, the first boots uncounted
    };
    const auto r = runCases(uboot, envs, "setenv ab_save false\n");
    CHECK_THAT(r[0].messages, Catch::Contains("slot B was on its last attempt, skipped"));
    CHECK_THAT(r[0].messages, Catch::Contains("booting slot A uncounted"));
    // B keeps its try; A's count went down in memory only (nothing was stored).
    CHECK(r[0].slot == Slot::kA);
    CHECK(r[0].a_left == "2");
    CHECK(r[0].b_left == "1");
    CHECK_THAT(r[1].messages, Catch::Contains("booting slot A uncounted"));
    CHECK(r[1].slot == Slot::kA);
    CHECK_THAT(r[2].messages, Catch::Contains("slot A was on its last attempt, skipped"));
    CHECK_THAT(r[2].messages, Catch::Contains("booting slot A, on its last attempt"));
    CHECK(r[2].slot == Slot::kA);
    CHECK(r[2].a_left == "1");
    CHECK(r[2].b_left == "0");
    CHECK_THAT(r[3].messages, Catch::Contains("no slot can be counted"));
    CHECK(r[3].slot == Slot::kB);
    CHECK_THAT(r[4].messages, Catch::Contains("no slot has boot attempts left"));
    CHECK_THAT(r[4].messages, Catch::Contains("booting slot A uncounted"));
    CHECK(r[4].slot == Slot::kA);
}

TEST_CASE("Updater with the uboot backend and U-Boot running ab-select.cmd: commit, failed health check, slot that never boots",
          "[firmware][uboot]") {
    const auto tools = test::requireUBootTools();
    TempDir tmp;
    auto uboot = std::make_shared<UBootRig>(tools, tmp / "uboot");
    Device dev(tmp / "device", 4096, uboot);
    const auto print = [&](const std::string& var) { return uboot->print(var); };
    test::checkUpdatesThroughBootloader(dev, [&] { return uboot->output; }, [&] {
        CHECK(print("BOOT_ORDER") == "B A\n");
        CHECK(print("BOOT_B_LEFT") == "1\n");
    });
}

TEST_CASE("U-Boot script: an ab_max_attempts that is not a count resets nothing", "[firmware][uboot]") {
    const auto tools = test::requireUBootTools();
    TempDir tmp;
    UBootRig uboot(tools, tmp / "uboot");
    const std::vector<BootEnv> envs{{"A B", "0", "0"}, {"B A", "0", "0"}};
    for (const char* max : {"junk", "0", "2x", "101"}) {
        CAPTURE(max);
        const auto r = runCases(uboot, envs, fmt::format("setenv ab_max_attempts {}\n", max));
        for (std::size_t i = 0; i < r.size(); ++i) {
            CAPTURE(i, r[i].messages);
            CHECK(r[i].slot == parseSlot(envs[i].order->substr(0, 1)).value());  // the first, uncounted
            CHECK(r[i].a_left == "0");
            CHECK(r[i].b_left == "0");
            CHECK_FALSE(r[i].stored);
            CHECK_THAT(r[i].messages, Catch::Contains("no reset"));
        }
    }
}

}  // namespace edge::firmware
