#pragma once
// EventLoop on a boost::asio::io_context. Adapters that need the io_context itself (the Beast
// HTTP server) take it from context(); only main.cpp files and adapters include this header.
#include <atomic>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include "shared/loop/event_loop.hpp"

namespace edge {

class AsioEventLoop final : public EventLoop {
public:
    AsioEventLoop();
    ~AsioEventLoop() override;

    void post(std::function<void()> fn) override;
    [[nodiscard]] std::unique_ptr<Timer> after(std::chrono::milliseconds delay,
                                               std::function<void()> fn) override;
    void run() override;
    void stop() override;

    boost::asio::io_context& context() { return io_; }

private:
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::atomic<bool> stop_requested_{false};
};

}  // namespace edge
