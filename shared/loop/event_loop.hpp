#pragma once
// EventLoop: the program's single event loop (one per process, run on the main thread).
// Domain objects live on the loop; adapters whose libraries call back on their own threads
// (Paho) post() onto it. The Asio adapter is shared/loop/asio/asio_event_loop.hpp.
#include <chrono>
#include <functional>
#include <memory>

namespace edge {

/// A one-shot timer; destroying or cancelling it guarantees the callback will not run.
/// Loop thread only.
class Timer {
public:
    virtual ~Timer() = default;
    virtual void cancel() = 0;
};

class EventLoop {
public:
    virtual ~EventLoop() = default;
    /// Thread-safe: queues fn to run on the loop thread.
    virtual void post(std::function<void()> fn) = 0;
    /// Loop thread only: runs fn once after delay, unless the returned Timer is cancelled or
    /// destroyed first.
    [[nodiscard]] virtual std::unique_ptr<Timer> after(std::chrono::milliseconds delay,
                                                       std::function<void()> fn) = 0;
    /// Runs until stop(); call from the thread that owns the loop.
    virtual void run() = 0;
    /// Thread-safe: makes run() return soon.
    virtual void stop() = 0;
};

}  // namespace edge
