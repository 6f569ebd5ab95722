#pragma once
// Logging: one process-wide logger writing to stderr (spdlog behind log.cpp).
// Never log secrets: keys, tokens and bundle payloads stay out of messages.
#include <string_view>

#include <fmt/format.h>

#include "shared/core/error.hpp"

namespace edge::log {

enum class Level { kDebug, kInfo, kWarn, kError };

/// Sets the threshold and the program name shown on every line. Call once at start.
void init(std::string_view program, Level level);
[[nodiscard]] Result<Level> parseLevel(std::string_view name);
void write(Level level, std::string_view message);

template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::kDebug, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::kWarn, fmt::format(f, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::kError, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace edge::log
