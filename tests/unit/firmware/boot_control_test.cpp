#include <catch2/catch.hpp>

#include "firmware/boot_control_factory.hpp"
#include "firmware/env_boot_control.hpp"
#include "firmware/errors.hpp"
#include "firmware/file/file_boot_control.hpp"
#include "firmware/firmware_config.hpp"
#include "firmware/grub/grub_boot_control.hpp"
#include "firmware/uboot/uboot_boot_control.hpp"
#include "tests/fakes/fake_uboot.hpp"
#include "tests/unit/firmware/firmware_test_support.hpp"

namespace edge::firmware {
namespace {

using test::readFile;
using test::stateOf;
using test::TempDir;
using test::what;
using test::writeFile;
using edge::test::writeScript;
using edge::test::FakeUBoot;

Slot boot(FileBootControl& control) {
    auto slot = control.simulateBoot();
    INFO(what(slot));
    REQUIRE(slot);
    return *slot;
}

// Running slot B after its trial boot: markGood makes it primary with all its attempts;
// fallBack then disarms it again.
void markGoodThenFallBack(BootControl& control) {
    REQUIRE(control.markGood(Slot::kB));
    const auto s = stateOf(control);
    CHECK(s.booted == Slot::kB);
    CHECK(s.primary() == Slot::kB);
    CHECK(s.attemptsLeft(Slot::kB) == 3);
    REQUIRE(control.fallBack(Slot::kB));
}

}  // namespace

TEST_CASE("FileBootControl: a missing environment reads as RAUC's defaults", "[firmware]") {
    TempDir tmp;
    FileBootControl control(tmp / "env", tmp / "booted");
    auto st = control.state();
    REQUIRE_FALSE(st);  // nothing has booted yet
    CHECK_THAT(st.error().what(), Catch::Contains("booted"));
    CHECK(boot(control) == Slot::kA);
    const auto s = stateOf(control);
    CHECK(s.booted == Slot::kA);
    CHECK(s.order == std::vector{Slot::kA, Slot::kB});
    CHECK(s.attemptsLeft(Slot::kA) == 2);  // the bootloader decremented before booting
    CHECK(s.attemptsLeft(Slot::kB) == 3);
}

TEST_CASE("BootControl: a slot tried once and not marked good falls back to the old slot",
          "[firmware]") {
    TempDir tmp;
    FileBootControl control(tmp / "env", tmp / "booted");
    REQUIRE(control.markGood(Slot::kA));
    REQUIRE(boot(control) == Slot::kA);
    REQUIRE(control.markGood(Slot::kA));

    REQUIRE(control.tryOnce(Slot::kB));
    auto s = stateOf(control);
    CHECK(s.primary() == Slot::kB);
    CHECK(s.attemptsLeft(Slot::kB) == 1);
    CHECK(s.attemptsLeft(Slot::kA) == 3);

    CHECK(boot(control) == Slot::kB);  // the trial boot
    CHECK(stateOf(control).attemptsLeft(Slot::kB) == 0);
    // The new system never calls markGood: the next boot is the old slot.
    CHECK(boot(control) == Slot::kA);
    CHECK(boot(control) == Slot::kA);
}

TEST_CASE("BootControl: markGood after the trial boot makes the new slot stick", "[firmware]") {
    TempDir tmp;
    FileBootControl control(tmp / "env", tmp / "booted");
    REQUIRE(boot(control) == Slot::kA);
    REQUIRE(control.tryOnce(Slot::kB));
    REQUIRE(boot(control) == Slot::kB);
    REQUIRE(control.markGood(Slot::kB));
    for (int i = 0; i < 5; ++i) {
        CHECK(boot(control) == Slot::kB);
        REQUIRE(control.markGood(Slot::kB));  // what the running system does on every boot
    }
    const auto s = stateOf(control);
    CHECK(s.order == std::vector{Slot::kB, Slot::kA});
    CHECK(s.attemptsLeft(Slot::kB) == 3);
    CHECK(s.attemptsLeft(Slot::kA) > 0);  // still the fallback
}

TEST_CASE("BootControl: a slot that keeps failing runs out of attempts", "[firmware]") {
    TempDir tmp;
    FileBootControl control(tmp / "env", tmp / "booted");
    REQUIRE(control.markGood(Slot::kB));
    // B crashes before its system can mark it good, every time.
    CHECK(boot(control) == Slot::kB);
    CHECK(boot(control) == Slot::kB);
    CHECK(boot(control) == Slot::kB);
    CHECK(boot(control) == Slot::kA);
    CHECK(stateOf(control).attemptsLeft(Slot::kB) == 0);
    // And if A keeps failing too (power cuts during boot, before the system could mark its slot
    // good), every slot of the order gets its attempts back, and the first boots: RAUC's reset.
    CHECK(boot(control) == Slot::kA);
    CHECK(boot(control) == Slot::kA);
    auto s = stateOf(control);
    CHECK(s.attemptsLeft(Slot::kA) == 0);
    CHECK(s.attemptsLeft(Slot::kB) == 0);
    CHECK(boot(control) == Slot::kB);
    s = stateOf(control);
    CHECK(s.order == std::vector{Slot::kB, Slot::kA});
    CHECK(s.attemptsLeft(Slot::kB) == 2);
    CHECK(s.attemptsLeft(Slot::kA) == 3);
}

TEST_CASE("BootControl: a slot left out of the order is never booted, not even by the reset",
          "[firmware]") {
    TempDir tmp;
    FileBootControl control(tmp / "env", tmp / "booted");
    REQUIRE(boot(control) == Slot::kA);
    REQUIRE(control.fallBack(Slot::kB));  // B is being written
    for (int i = 0; i < 10; ++i) CHECK(boot(control) == Slot::kA);  // A never marks itself good
    auto s = stateOf(control);
    CHECK(s.order == std::vector{Slot::kA});
    CHECK(s.attemptsLeft(Slot::kB) == 0);

    // An empty order reads as unset ("A B"), as both boot scripts read it.
    writeFile(tmp / "env", "BOOT_ORDER=\nBOOT_A_LEFT=0\nBOOT_B_LEFT=2\n");
    CHECK(stateOf(control).order == std::vector{Slot::kA, Slot::kB});
    CHECK(boot(control) == Slot::kB);
}

TEST_CASE("BootControl: markGood keeps the other slot as fallback only while it has attempts",
          "[firmware]") {
    TempDir tmp;
    FileBootControl control(tmp / "env", tmp / "booted");
    SECTION("a fallback with attempts stays") {
        writeFile(tmp / "env", "BOOT_ORDER=A B\nBOOT_A_LEFT=2\nBOOT_B_LEFT=3\n");
        REQUIRE(boot(control) == Slot::kA);
        REQUIRE(control.markGood(Slot::kA));
        CHECK(stateOf(control).order == std::vector{Slot::kA, Slot::kB});
    }
    SECTION("a slot at 0 (failed its boots, or disabled by an older edged) leaves the order") {
        writeFile(tmp / "env", "BOOT_ORDER=B A\nBOOT_A_LEFT=3\nBOOT_B_LEFT=0\n");
        REQUIRE(boot(control) == Slot::kA);
        REQUIRE(control.markGood(Slot::kA));
        const auto s = stateOf(control);
        CHECK(s.order == std::vector{Slot::kA});
        CHECK(s.attemptsLeft(Slot::kA) == 3);
        // ... so used-up counts on A never bring B back.
        for (int i = 0; i < 7; ++i) CHECK(boot(control) == Slot::kA);
    }
    SECTION("a slot out of the order stays out") {
        writeFile(tmp / "env", "BOOT_ORDER=A\nBOOT_A_LEFT=1\nBOOT_B_LEFT=3\n");
        REQUIRE(boot(control) == Slot::kA);
        REQUIRE(control.markGood(Slot::kA));
        CHECK(stateOf(control).order == std::vector{Slot::kA});
    }
}

TEST_CASE("BootControl: fallBack disarms the bad slot and re-arms the other", "[firmware]") {
    TempDir tmp;
    FileBootControl control(tmp / "env", tmp / "booted");
    REQUIRE(boot(control) == Slot::kA);
    REQUIRE(control.tryOnce(Slot::kB));
    REQUIRE(boot(control) == Slot::kB);
    REQUIRE(control.fallBack(Slot::kB));
    auto s = stateOf(control);
    CHECK(s.order == std::vector{Slot::kA});
    CHECK(s.attemptsLeft(Slot::kA) == 3);
    CHECK(s.attemptsLeft(Slot::kB) == 0);
    REQUIRE(control.fallBack(Slot::kB));  // idempotent
    CHECK(stateOf(control) == s);
    CHECK(boot(control) == Slot::kA);
}

TEST_CASE("FileBootControl: the environment file keeps other keys and rejects garbage",
          "[firmware]") {
    TempDir tmp;
    writeFile(tmp / "booted", "A\n");
    FileBootControl control(tmp / "env", tmp / "booted");
    SECTION("other keys survive a change") {
        writeFile(tmp / "env", "# provisioned\nserial=1234\nBOOT_ORDER=B A\n");
        REQUIRE(control.tryOnce(Slot::kA));
        const auto text = readFile(tmp / "env");
        CHECK_THAT(text, Catch::Contains("serial=1234"));
        CHECK_THAT(text, Catch::Contains("BOOT_ORDER=A B"));
        CHECK_THAT(text, Catch::Contains("BOOT_A_LEFT=1"));
    }
    SECTION("an unknown slot in the order") {
        writeFile(tmp / "env", "BOOT_ORDER=A C\n");
        auto st = control.state();
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == FirmwareErrc::kBootControl);
        CHECK_THAT(st.error().what(), Catch::Contains("'C'"));
    }
    SECTION("a count that is not a number") {
        writeFile(tmp / "env", "BOOT_B_LEFT=-1\n");
        auto st = control.markGood(Slot::kA);
        REQUIRE_FALSE(st);
        CHECK_THAT(st.error().what(), Catch::Contains("BOOT_B_LEFT='-1'"));
        CHECK(readFile(tmp / "env") == "BOOT_B_LEFT=-1\n");
    }
    SECTION("a line without '='") {
        writeFile(tmp / "env", "BOOT_ORDER\n");
        auto st = control.state();
        REQUIRE_FALSE(st);
        CHECK_THAT(st.error().what(), Catch::Contains((tmp / "env").string()));
    }
}

TEST_CASE("BootControl: the booted slot comes from rauc.slot on the kernel command line",
          "[firmware]") {
    CHECK(slotFromCmdline("console=ttyS0 rauc.slot=B quiet\n") == Slot::kB);
    CHECK(slotFromCmdline("rauc.slot=A") == Slot::kA);
    auto missing = slotFromCmdline("console=ttyS0 rauc.slotx=A");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == FirmwareErrc::kBootControl);
    REQUIRE_FALSE(slotFromCmdline("rauc.slot=C"));
    TempDir tmp;
    auto unreadable = readCmdlineSlot(tmp / "nope");
    REQUIRE_FALSE(unreadable);
    CHECK_THAT(unreadable.error().what(), Catch::Contains((tmp / "nope").string()));
}

TEST_CASE("UBootControl: reads and writes RAUC's variables with fw_printenv and fw_setenv",
          "[firmware]") {
    TempDir tmp;
    FakeUBoot fake(tmp.path());
    SystemClock clock;
    UBootControl control(fake.config(), clock);

    // Unset variables are the boot script's defaults.
    auto s = stateOf(control);
    CHECK(s.booted == Slot::kA);
    CHECK(s.order == std::vector{Slot::kA, Slot::kB});
    CHECK(s.attemptsLeft(Slot::kA) == 3);

    REQUIRE(control.tryOnce(Slot::kB));
    // Raised (here: made explicit) counts first, lowered next, the order last.
    CHECK(readFile(fake.log) == "BOOT_A_LEFT=3\nBOOT_B_LEFT=1\nBOOT_ORDER=B A\n");
    s = stateOf(control);
    CHECK(s.order == std::vector{Slot::kB, Slot::kA});
    CHECK(s.attemptsLeft(Slot::kB) == 1);

    // The trial boot: U-Boot's script decrements, Linux gets rauc.slot=B.
    writeFile(fake.env, "BOOT_ORDER=B A\nBOOT_A_LEFT=2\nBOOT_B_LEFT=0\n");
    writeFile(fake.cmdline, "rauc.slot=B\n");
    writeFile(fake.log, "");
    REQUIRE(control.fallBack(Slot::kB));
    CHECK(readFile(fake.log) == "BOOT_A_LEFT=3\nBOOT_ORDER=A\n");
    s = stateOf(control);
    CHECK(s.booted == Slot::kB);
    CHECK(s.order == std::vector{Slot::kA});
    CHECK(s.attemptsLeft(Slot::kA) == 3);
    CHECK(s.attemptsLeft(Slot::kB) == 0);

    writeFile(fake.log, "");
    REQUIRE(control.fallBack(Slot::kB));  // nothing to change, nothing written
    CHECK(readFile(fake.log).empty());

    SECTION("a failing fw_setenv is an error naming the command") {
        writeFile(fake.env.string() + ".fail", "");
        auto st = control.markGood(Slot::kB);
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == FirmwareErrc::kBootControl);
        CHECK_THAT(st.error().what(), Catch::Contains("fw_setenv") &&
                                          Catch::Contains("Cannot write environment") &&
                                          Catch::Contains("mark slot B good"));
    }
    SECTION("a broken fw_printenv is an error, not a default") {
        writeScript(fake.printenv, "echo 'Cannot read environment' >&2\nexit 1\n");
        auto st = control.state();
        REQUIRE_FALSE(st);
        CHECK_THAT(st.error().what(), Catch::Contains("Cannot read environment"));
    }
}

TEST_CASE("UBootControl: works with Debian's fw_printenv and fw_setenv (libubootenv) on an environment block",
          "[firmware]") {
    const auto printenv = edge::test::findProgram("fw_printenv");
    const auto setenv = edge::test::findProgram("fw_setenv");
    // deploy/install-deps.sh installs libubootenv-tool.
    REQUIRE_FALSE(printenv.empty());
    REQUIRE_FALSE(setenv.empty());
    TempDir tmp;
    // The block as mkenvimage writes it: CRC-32 (little endian) of the rest, then NUL-separated
    // KEY=VALUE entries, an empty one ending the list, zero padding to the size.
    constexpr std::size_t kSize = 0x4000;
    std::string data = std::string("BOOT_ORDER=A B") + '\0' + "BOOT_A_LEFT=3" + '\0' + "bootcmd=run rauc_ab" + '\0';
    data.resize(kSize - 4, '\0');
    std::uint32_t crc = 0xffffffffu;
    for (const char c : data) {
        crc ^= static_cast<unsigned char>(c);
        for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
    }
    crc = ~crc;
    std::string block(4, '\0');
    for (int i = 0; i < 4; ++i) block[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
    writeFile(tmp / "uboot.env", block + data);
    writeFile(tmp / "fw_env.config", (tmp / "uboot.env").string() + " 0x0 0x4000\n");
    writeFile(tmp / "cmdline", "console=ttyS0 rauc.slot=A\n");
    UBootConfig config;
    config.fw_printenv = {printenv, "-c", (tmp / "fw_env.config").string()};
    config.fw_setenv = {setenv, "-c", (tmp / "fw_env.config").string()};
    config.cmdline = tmp / "cmdline";
    SystemClock clock;
    UBootControl control(config, clock);
    const auto print = [&](const std::string& name) {
        return edge::test::runCommand({printenv, "-c", (tmp / "fw_env.config").string(), "-n", name}).out;
    };

    // BOOT_B_LEFT is not in the block: the boot script's default applies.
    auto s = stateOf(control);
    CHECK(s.booted == Slot::kA);
    CHECK(s.order == std::vector{Slot::kA, Slot::kB});
    CHECK(s.attemptsLeft(Slot::kB) == 3);

    REQUIRE(control.tryOnce(Slot::kB));
    CHECK(print("BOOT_ORDER") == "B A\n");
    CHECK(print("BOOT_B_LEFT") == "1\n");
    CHECK(print("bootcmd") == "run rauc_ab\n");  // other variables are kept

    // The board's script takes the try and boots B, which marks itself good.
    REQUIRE(edge::test::runCommand({setenv, "-c", (tmp / "fw_env.config").string(), "BOOT_B_LEFT", "0"}).exit_code == 0);
    writeFile(tmp / "cmdline", "console=ttyS0 rauc.slot=B\n");
    markGoodThenFallBack(control);
    CHECK(print("BOOT_ORDER") == "A\n");
    CHECK(print("BOOT_B_LEFT") == "0\n");

    // A damaged block is an error, not the defaults.
    auto damaged = readFile(tmp / "uboot.env");
    damaged[100] = static_cast<char>(damaged[100] ^ 0x20);
    writeFile(tmp / "uboot.env", damaged);
    auto broken = control.state();
    REQUIRE_FALSE(broken);
    CHECK(broken.error().code() == FirmwareErrc::kBootControl);
}

TEST_CASE("GrubBootControl: reads and writes RAUC's variables with grub-editenv", "[firmware]") {
    TempDir tmp;
    SystemClock clock;
    GrubConfig config;
    config.env_file = tmp / "grubenv";
    config.cmdline = tmp / "cmdline";
    writeFile(config.cmdline, "BOOT_IMAGE=/vmlinuz rauc.slot=A ro\n");
    std::string editenv = edge::test::findProgram("grub-editenv");
    if (editenv.empty()) {
        // No GRUB tools here: a fake with grub-editenv's list/set/create behaviour.
        editenv = (tmp / "grub-editenv").string();
        writeScript(editenv, R"(
file=$1; cmd=$2; shift 2
case $cmd in
  create) printf '# GRUB Environment Block\n' > "$file" ;;
  list) [ -f "$file" ] || { echo "grub-editenv: error: cannot open $file" >&2; exit 1; }
        grep -v '^#' "$file" || true ;;
  set) [ -f "$file" ] || { echo "grub-editenv: error: cannot open $file" >&2; exit 1; }
       for kv in "$@"; do
         k=${kv%%=*}
         { grep -v "^$k=" "$file"; printf '%s\n' "$kv"; } > "$file.tmp"; mv "$file.tmp" "$file"
       done ;;
  *) exit 2 ;;
esac
)");
    }
    INFO("grub-editenv: " << editenv);
    config.grub_editenv = {editenv};
    GrubBootControl control(config, clock);

    auto missing = control.state();
    REQUIRE_FALSE(missing);  // the environment block must be provisioned
    CHECK_THAT(missing.error().what(), Catch::Contains("grubenv"));

    REQUIRE(edge::test::runCommand({editenv, config.env_file.string(), "create"}).exit_code == 0);
    auto s = stateOf(control);
    CHECK(s.order == std::vector{Slot::kA, Slot::kB});
    REQUIRE(control.tryOnce(Slot::kB));
    s = stateOf(control);
    CHECK(s.booted == Slot::kA);
    CHECK(s.order == std::vector{Slot::kB, Slot::kA});
    CHECK(s.attemptsLeft(Slot::kB) == 1);
    CHECK(s.attemptsLeft(Slot::kA) == 3);
    const auto listed = edge::test::runCommand({editenv, config.env_file.string(), "list"});
    CHECK_THAT(listed.out, Catch::Contains("BOOT_ORDER=B A"));

    writeFile(config.cmdline, "rauc.slot=B\n");
    markGoodThenFallBack(control);
    s = stateOf(control);
    CHECK(s.order == std::vector{Slot::kA});
    CHECK(s.attemptsLeft(Slot::kB) == 0);
}

TEST_CASE("makeBootControl: builds the configured backend and refuses bad configs", "[firmware]") {
    TempDir tmp;
    SystemClock clock;
    BootControlConfig config;
    config.slots = {tmp / "a.img", tmp / "b.img"};
    config.env_file = tmp / "env";
    config.booted_file = tmp / "booted";
    SECTION("file") {
        writeFile(tmp / "booted", "B\n");
        auto boot = makeBootControl(config, clock);
        INFO(what(boot));
        REQUIRE(boot);
        auto s = (*boot)->state();
        REQUIRE(s);
        CHECK(s->booted == Slot::kB);
    }
    SECTION("uboot") {
        FakeUBoot fake(tmp.path());
        config.backend = "uboot";
        config.fw_printenv = {fake.printenv.string()};
        config.fw_setenv = {fake.setenv.string()};
        config.cmdline = fake.cmdline;
        auto boot = makeBootControl(config, clock);
        REQUIRE(boot);
        REQUIRE((*boot)->markGood(Slot::kA));
        CHECK_THAT(readFile(fake.env), Catch::Contains("BOOT_ORDER=A B"));
    }
    SECTION("grub") {
        config.backend = "grub";
        REQUIRE(makeBootControl(config, clock));
    }
    SECTION("unknown backend") {
        config.backend = "lilo";
        auto boot = makeBootControl(config, clock);
        REQUIRE_FALSE(boot);
        CHECK(boot.error().code() == FirmwareErrc::kInvalidArgument);
        CHECK_THAT(boot.error().what(), Catch::Contains("lilo"));
    }
    SECTION("one path for both slots") {
        config.slots.b = tmp / "." / "a.img";
        REQUIRE_FALSE(makeBootControl(config, clock));
    }
    SECTION("file backend without its files") {
        config.booted_file.clear();
        REQUIRE_FALSE(makeBootControl(config, clock));
    }
}

TEST_CASE("loadFirmwareConfig: reads the firmware section of a config file", "[firmware]") {
    TempDir tmp;
    auto cfg = config::ConfigFile::parse(R"(
firmware:
  backend: uboot
  slot_a: /dev/mmcblk0p2
  slot_b: /dev/mmcblk0p3
  fw_printenv: [fw_printenv, -c, /etc/fw_env.config]
  fw_setenv: [fw_setenv, -c, /etc/fw_env.config]
  reboot_command: [systemctl, reboot, --no-wall]
  health_command: [/usr/libexec/edge/health]
  health_timeout: 90s
  command_timeout: 5s
)",
                                         "test.yaml", tmp.path());
    INFO(what(cfg));
    REQUIRE(cfg);
    auto fw = loadFirmwareConfig(*cfg);
    INFO(what(fw));
    REQUIRE(fw);
    REQUIRE(cfg->finish());
    CHECK(fw->boot.backend == "uboot");
    CHECK(fw->boot.slots.of(Slot::kB) == "/dev/mmcblk0p3");
    CHECK(fw->boot.fw_printenv ==
          std::vector<std::string>{"fw_printenv", "-c", "/etc/fw_env.config"});
    CHECK(fw->boot.cmdline == "/proc/cmdline");
    CHECK(fw->boot.command_timeout == std::chrono::seconds(5));
    CHECK(fw->reboot_command == std::vector<std::string>{"systemctl", "reboot", "--no-wall"});
    CHECK(fw->health_command == std::vector<std::string>{"/usr/libexec/edge/health"});
    CHECK(fw->health_timeout == std::chrono::seconds(90));
    SystemClock clock;
    CHECK(makeBootControl(fw->boot, clock));
    CHECK(fw->stream);  // the default: straight into the slot
    CHECK(fw->checkpoint_bytes == 64u << 20);
    CHECK(fw->direct_io);  // the default: slots written past the page cache
}

TEST_CASE("loadFirmwareConfig: the download mode and checkpoint interval, and clear errors", "[firmware]") {
    TempDir tmp;
    const auto load = [&](const std::string& extra) {
        auto cfg = config::ConfigFile::parse("firmware:\n  slot_a: /a\n  slot_b: /b\n" + extra, "test.yaml", tmp.path());
        REQUIRE(cfg);
        return loadFirmwareConfig(*cfg);
    };
    auto cached = load("  download: cache\n  checkpoint_bytes: 8388608\n  direct_io: false\n");
    REQUIRE(cached);
    CHECK_FALSE(cached->stream);
    CHECK_FALSE(cached->direct_io);
    auto bad_direct = load("  direct_io: maybe\n");
    REQUIRE_FALSE(bad_direct);
    CHECK_THAT(bad_direct.error().what(), Catch::Contains("firmware.direct_io"));
    CHECK(cached->checkpoint_bytes == 8u << 20);
    auto bad_mode = load("  download: torrent\n");
    REQUIRE_FALSE(bad_mode);
    CHECK_THAT(bad_mode.error().what(), Catch::Contains("firmware.download") && Catch::Contains("torrent"));
    auto tiny = load("  checkpoint_bytes: 1000\n");
    REQUIRE_FALSE(tiny);
    CHECK_THAT(tiny.error().what(), Catch::Contains("firmware.checkpoint_bytes"));
}

}  // namespace edge::firmware
