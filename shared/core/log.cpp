#include "shared/core/log.hpp"

#include <memory>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace edge::log {
namespace {

spdlog::level::level_enum toSpd(Level level) {
    switch (level) {
        case Level::kDebug: return spdlog::level::debug;
        case Level::kInfo: return spdlog::level::info;
        case Level::kWarn: return spdlog::level::warn;
        case Level::kError: return spdlog::level::err;
    }
    return spdlog::level::info;
}

std::shared_ptr<spdlog::logger>& logger() {
    static std::shared_ptr<spdlog::logger> instance = [] {
        auto l = std::make_shared<spdlog::logger>(
            "edge", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        l->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
        return l;
    }();
    return instance;
}

}  // namespace

void init(std::string_view program, Level level) {
    logger()->set_pattern(fmt::format("%Y-%m-%dT%H:%M:%S.%e {} %^%l%$ %v", program));
    logger()->set_level(toSpd(level));
    logger()->flush_on(spdlog::level::debug);
}

Result<Level> parseLevel(std::string_view name) {
    if (name == "debug") return Level::kDebug;
    if (name == "info") return Level::kInfo;
    if (name == "warn") return Level::kWarn;
    if (name == "error") return Level::kError;
    return fail(SharedErrc::kInvalidArgument,
                fmt::format("unknown log level '{}' (debug, info, warn, error)", name));
}

void write(Level level, std::string_view message) { logger()->log(toSpd(level), message); }

}  // namespace edge::log
