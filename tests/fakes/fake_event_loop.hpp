#pragma once
#include <deque>
#include <functional>
#include <memory>

#include "shared/loop/event_loop.hpp"

namespace edge::test {

/// Runs posted work when drained; timers fire only through fireTimers().
class FakeEventLoop final : public EventLoop {
public:
    void post(std::function<void()> fn) override { queue_.push_back(std::move(fn)); }
    std::unique_ptr<Timer> after(std::chrono::milliseconds, std::function<void()> fn) override {
        auto slot = std::make_shared<std::function<void()>>(std::move(fn));
        timers_.push_back(slot);
        return std::make_unique<FakeTimer>(slot);
    }
    void run() override { drain(); }
    void stop() override {}
    void drain() {
        while (!queue_.empty()) {
            auto fn = std::move(queue_.front());
            queue_.pop_front();
            fn();
        }
    }
    void fireTimers() {
        auto timers = std::move(timers_);
        timers_.clear();
        for (auto& t : timers) {
            if (*t) {
                auto fn = std::move(*t);
                *t = nullptr;
                fn();
            }
        }
    }

private:
    class FakeTimer final : public Timer {
    public:
        explicit FakeTimer(std::shared_ptr<std::function<void()>> slot) : slot_(std::move(slot)) {}
        ~FakeTimer() override { cancel(); }
        void cancel() override { *slot_ = nullptr; }

    private:
        std::shared_ptr<std::function<void()>> slot_;
    };
    std::deque<std::function<void()>> queue_;
    std::vector<std::shared_ptr<std::function<void()>>> timers_;
};

}  // namespace edge::test
