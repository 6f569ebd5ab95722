#pragma once
// An event loop run on a background thread for a test rig (servers on loopback ports).
#include <functional>
#include <future>
#include <thread>

#include "shared/loop/event_loop.hpp"

namespace edge::test {

class LoopThread {
public:
    explicit LoopThread(EventLoop& loop) : loop_(loop) {}
    ~LoopThread() { stop(); }
    LoopThread(const LoopThread&) = delete;
    LoopThread& operator=(const LoopThread&) = delete;

    /// Runs the loop on its thread; returns once it runs (AsioEventLoop::run() restarts the
    /// io_context, so a stop() that came before it would be lost).
    void start() {
        thread_ = std::thread([this] { loop_.run(); });
        std::promise<void> running;
        loop_.post([&] { running.set_value(); });
        running.get_future().wait();
    }
    /// The loop thread's id (handlers must run there).
    [[nodiscard]] std::thread::id id() const { return thread_.get_id(); }
    /// Runs before (e.g. server.stop()) on the loop thread, then stops the loop and joins.
    void stop(const std::function<void()>& before = {}) {
        if (!thread_.joinable()) return;
        if (before) loop_.post(before);
        loop_.stop();
        thread_.join();
    }

private:
    EventLoop& loop_;
    std::thread thread_;
};

}  // namespace edge::test
