#pragma once
// Clock seam: the only way code reads time. SystemClock is the production adapter; tests use
// tests/fakes/manual_clock.hpp. Thread-safe: now() and steady() may be called from any thread.
#include <chrono>
#include <cstdint>
#include <string>

namespace edge {

class Clock {
public:
    virtual ~Clock() = default;
    /// Wall-clock time (for expiry, timestamps that leave the process).
    [[nodiscard]] virtual std::chrono::system_clock::time_point now() const = 0;
    /// Monotonic time (for durations, deadlines, backoff).
    [[nodiscard]] virtual std::chrono::steady_clock::time_point steady() const = 0;

    /// Wall-clock seconds since the Unix epoch.
    [[nodiscard]] std::int64_t unixSeconds() const {
        return std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
    }
    /// Wall-clock milliseconds since the Unix epoch.
    [[nodiscard]] std::int64_t unixMillis() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(now().time_since_epoch()).count();
    }
};

class SystemClock final : public Clock {
public:
    [[nodiscard]] std::chrono::system_clock::time_point now() const override;
    [[nodiscard]] std::chrono::steady_clock::time_point steady() const override;
};

}  // namespace edge

namespace edge {
/// "2026-11-29T03:23:32Z" for a Unix time in seconds.
[[nodiscard]] std::string isoTime(std::int64_t unix_seconds);
}  // namespace edge
