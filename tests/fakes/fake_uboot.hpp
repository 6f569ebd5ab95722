#pragma once
#include <filesystem>
#include <string>

#include "firmware/uboot/uboot_boot_control.hpp"
#include "tests/support/process.hpp"

namespace edge::test {

/// Fake fw_printenv / fw_setenv over a KEY=VALUE file in dir; fw_setenv appends each call to a
/// log, and fails while "<env>.fail" exists. For the failure cases the real tools cannot show.
struct FakeUBoot {
    explicit FakeUBoot(const std::filesystem::path& dir)
        : env(dir / "ubootenv"),
          log(dir / "fw_setenv.log"),
          printenv(dir / "fw_printenv"),
          setenv(dir / "fw_setenv"),
          cmdline(dir / "cmdline") {
        writeScript(printenv, "env='" + env.string() + "'\n" + R"(
[ "$1" = "-n" ] || { echo "usage: fw_printenv -n VAR" >&2; exit 2; }
line=$(grep "^$2=" "$env" 2>/dev/null | tail -n 1)
if [ -z "$line" ]; then echo "## Error: \"$2\" not defined" >&2; exit 1; fi
printf '%s\n' "${line#*=}"
)");
        writeScript(setenv, "env='" + env.string() + "'\nlog='" + log.string() + "'\n" + R"(
[ -f "$env.fail" ] && { echo "Cannot write environment" >&2; exit 1; }
name=$1; shift
printf '%s=%s\n' "$name" "$*" >> "$log"
{ grep -v "^$name=" "$env" 2>/dev/null; printf '%s=%s\n' "$name" "$*"; } > "$env.tmp"
mv "$env.tmp" "$env"
)");
        writeFile(cmdline, "console=ttyS0 root=/dev/mmcblk0p2 rauc.slot=A quiet\n");
    }
    firmware::UBootConfig config() const {
        firmware::UBootConfig c;
        c.fw_printenv = {printenv.string()};
        c.fw_setenv = {setenv.string()};
        c.cmdline = cmdline;
        return c;
    }
    std::filesystem::path env, log, printenv, setenv, cmdline;
};

}  // namespace edge::test
