#include "shared/loop/asio/asio_event_loop.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace edge {
namespace {

class AsioTimer final : public Timer {
public:
    AsioTimer(boost::asio::io_context& io, std::chrono::milliseconds delay,
              std::function<void()> fn)
        : state_(std::make_shared<State>(io)) {
        state_->fn = std::move(fn);
        state_->timer.expires_after(delay);
        // The handler holds the state alive; cancel() clears fn so a handler already queued
        // does nothing.
        state_->timer.async_wait([state = state_](const boost::system::error_code& ec) {
            if (ec || !state->fn) return;
            auto fn = std::move(state->fn);
            state->fn = nullptr;
            fn();
        });
    }
    ~AsioTimer() override { cancel(); }
    void cancel() override {
        state_->fn = nullptr;
        state_->timer.cancel();
    }

private:
    struct State {
        explicit State(boost::asio::io_context& io) : timer(io) {}
        boost::asio::steady_timer timer;
        std::function<void()> fn;
    };
    std::shared_ptr<State> state_;
};

}  // namespace

AsioEventLoop::AsioEventLoop() : work_(boost::asio::make_work_guard(io_)) {}
AsioEventLoop::~AsioEventLoop() = default;

void AsioEventLoop::post(std::function<void()> fn) { boost::asio::post(io_, std::move(fn)); }

std::unique_ptr<Timer> AsioEventLoop::after(std::chrono::milliseconds delay,
                                            std::function<void()> fn) {
    return std::make_unique<AsioTimer>(io_, delay, std::move(fn));
}

void AsioEventLoop::run() {
    // A stop() that came before this run() (e.g. from another thread racing the start) ends it
    // at once instead of being forgotten by restart().
    if (stop_requested_.exchange(false)) return;
    io_.restart();
    io_.run();
    stop_requested_ = false;
}

void AsioEventLoop::stop() {
    stop_requested_ = true;
    io_.stop();
}

}  // namespace edge
