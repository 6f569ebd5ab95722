#pragma once
// The firmware section of a program's config file (keys under "firmware."):
//
//   firmware.backend          file | uboot | grub            (default file)
//   firmware.slot_a           path of slot A's device or file (required)
//   firmware.slot_b           path of slot B's device or file (required)
//   firmware.max_attempts     boot attempts of a good slot    (default 3)
//   firmware.env_file         file: KEY=VALUE env; grub: grubenv (required for both)
//   firmware.booted_file      file: booted slot record        (required for file)
//   firmware.fw_printenv      uboot: argv list                (default [fw_printenv])
//   firmware.fw_setenv        uboot: argv list                (default [fw_setenv])
//   firmware.grub_editenv     grub: argv list                 (default [grub-editenv])
//   firmware.cmdline          uboot/grub: kernel command line (default /proc/cmdline)
//   firmware.command_timeout  per boot-environment command    (default 10s)
//   firmware.reboot_command   argv list                       (default [systemctl, reboot])
//   firmware.health_command   argv list, optional
//   firmware.state_command    argv list, optional: run after every persisted transition with
//                             the new state's name appended (like Mender's state scripts)
//   firmware.health_timeout   (default 60s)
//   firmware.health_broker_timeout  after booting a new slot, the MQTT broker must be reached
//                             within this long, else the slot rolls back (default 0: not
//                             asked; a site that is offline on purpose keeps its new slot)
//   firmware.chunk_size       bytes per write                 (default 1048576)
//   firmware.verify_readback  re-read the slot after the fsync  (default false)
//   firmware.direct_io        write the slot past the page cache (O_DIRECT, where the file
//                             system has it)                   (default true)
//   firmware.download         stream | cache                  (default stream)
//                             stream: the image goes from the artifact store straight into
//                             the inactive slot (one pass, hashed on the way, checked before
//                             the slot is armed); cache: downloaded and verified into the
//                             downloads directory first, then installed from there. A zstd
//                             image is always cached (it is decompressed before the install).
//   firmware.checkpoint_bytes stream: every this many bytes the slot is synced and the offset
//                             persisted, where a restart resumes   (default 67108864)
#include <chrono>
#include <string>
#include <vector>

#include "firmware/boot_control_factory.hpp"
#include "shared/core/config.hpp"

namespace edge::firmware {

struct FirmwareConfig {
    BootControlConfig boot;
    std::vector<std::string> reboot_command{"systemctl", "reboot"};
    std::vector<std::string> health_command;
    std::chrono::milliseconds health_timeout{60'000};
    std::chrono::milliseconds health_broker_timeout{0};
    std::vector<std::string> state_command;
    std::size_t chunk_size = 1u << 20;
    bool verify_readback = false;
    bool direct_io = true;
    bool stream = true;
    std::uint64_t checkpoint_bytes = 64u << 20;
};

/// Reads the keys above (marking them known to cfg). Errors name the key; backend-specific
/// requirements are checked by makeBootControl.
[[nodiscard]] Result<FirmwareConfig> loadFirmwareConfig(config::ConfigFile& cfg);

}  // namespace edge::firmware
