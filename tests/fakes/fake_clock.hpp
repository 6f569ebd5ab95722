#pragma once
#include <chrono>

#include "shared/core/clock.hpp"

namespace edge::test {

/// A clock that moves only when told.
class FakeClock final : public Clock {
public:
    explicit FakeClock(std::int64_t unix_seconds = 1'790'000'000)
        : wall_(std::chrono::seconds(unix_seconds)) {}
    std::chrono::system_clock::time_point now() const override { return wall_; }
    std::chrono::steady_clock::time_point steady() const override { return steady_; }
    void advance(std::chrono::milliseconds d) {
        wall_ += d;
        steady_ += d;
    }

private:
    std::chrono::system_clock::time_point wall_;
    std::chrono::steady_clock::time_point steady_{};
};

}  // namespace edge::test
