#include "firmware/firmware_config.hpp"

#include <fmt/format.h>

namespace edge::firmware {
namespace {

Status optionalPath(config::ConfigFile& cfg, std::string_view key, std::filesystem::path& out) {
    if (!cfg.has(key)) return {};
    auto value = cfg.path(key);
    if (!value) return fail(std::move(value.error()));
    out = std::move(*value);
    return {};
}

Status optionalArgv(config::ConfigFile& cfg, std::string_view key, std::vector<std::string>& out) {
    if (!cfg.has(key)) return {};
    auto value = cfg.strings(key);
    if (!value) return fail(std::move(value.error()));
    out = std::move(*value);
    return {};
}

}  // namespace

Result<FirmwareConfig> loadFirmwareConfig(config::ConfigFile& cfg) {
    FirmwareConfig out;
    auto& boot = out.boot;
    auto backend = cfg.string("firmware.backend", "file");
    if (!backend) return fail(std::move(backend.error()));
    boot.backend = *backend;
    auto slot_a = cfg.path("firmware.slot_a");
    if (!slot_a) return fail(std::move(slot_a.error()));
    auto slot_b = cfg.path("firmware.slot_b");
    if (!slot_b) return fail(std::move(slot_b.error()));
    boot.slots = {*slot_a, *slot_b};
    auto attempts = cfg.integer("firmware.max_attempts", kDefaultMaxAttempts, 1, 100);
    if (!attempts) return fail(std::move(attempts.error()));
    boot.max_attempts = static_cast<int>(*attempts);
    for (auto [key, path] : {std::pair{"firmware.env_file", &boot.env_file},
                             std::pair{"firmware.booted_file", &boot.booted_file},
                             std::pair{"firmware.cmdline", &boot.cmdline}}) {
        if (auto st = optionalPath(cfg, key, *path); !st) return fail(std::move(st.error()));
    }
    for (auto [key, argv] : {std::pair{"firmware.fw_printenv", &boot.fw_printenv},
                             std::pair{"firmware.fw_setenv", &boot.fw_setenv},
                             std::pair{"firmware.grub_editenv", &boot.grub_editenv},
                             std::pair{"firmware.reboot_command", &out.reboot_command},
                             std::pair{"firmware.health_command", &out.health_command},
                             std::pair{"firmware.state_command", &out.state_command}}) {
        if (auto st = optionalArgv(cfg, key, *argv); !st) return fail(std::move(st.error()));
    }
    auto command_timeout = cfg.duration("firmware.command_timeout", boot.command_timeout);
    if (!command_timeout) return fail(std::move(command_timeout.error()));
    boot.command_timeout = *command_timeout;
    auto health_timeout = cfg.duration("firmware.health_timeout", out.health_timeout);
    if (!health_timeout) return fail(std::move(health_timeout.error()));
    out.health_timeout = *health_timeout;
    auto broker_timeout = cfg.duration("firmware.health_broker_timeout", out.health_broker_timeout);
    if (!broker_timeout) return fail(std::move(broker_timeout.error()));
    out.health_broker_timeout = *broker_timeout;
    auto chunk = cfg.integer("firmware.chunk_size", static_cast<std::int64_t>(out.chunk_size), 4096,
                             64 << 20);
    if (!chunk) return fail(std::move(chunk.error()));
    out.chunk_size = static_cast<std::size_t>(*chunk);
    auto readback = cfg.boolean("firmware.verify_readback", out.verify_readback);
    if (!readback) return fail(std::move(readback.error()));
    out.verify_readback = *readback;
    auto direct = cfg.boolean("firmware.direct_io", out.direct_io);
    if (!direct) return fail(std::move(direct.error()));
    out.direct_io = *direct;
    auto download = cfg.string("firmware.download", out.stream ? "stream" : "cache");
    if (!download) return fail(std::move(download.error()));
    if (*download != "stream" && *download != "cache") {
        return fail(SharedErrc::kConfig,
                    fmt::format("key 'firmware.download': '{}' is not stream or cache", *download));
    }
    out.stream = *download == "stream";
    auto checkpoint = cfg.integer("firmware.checkpoint_bytes",
                                  static_cast<std::int64_t>(out.checkpoint_bytes), 1 << 20,
                                  std::int64_t{1} << 40);
    if (!checkpoint) return fail(std::move(checkpoint.error()));
    out.checkpoint_bytes = static_cast<std::uint64_t>(*checkpoint);
    return out;
}

}  // namespace edge::firmware
