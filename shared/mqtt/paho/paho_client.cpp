#include "shared/mqtt/paho/paho_client.hpp"

#include <mqtt/async_client.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <random>
#include <utility>
#include <vector>

namespace edge::mqtt {
namespace {

constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kDisconnectGrace = std::chrono::milliseconds(1000);  // in-flight work may finish
constexpr auto kDisconnectWait = std::chrono::milliseconds(2000);   // bound on stop()

void* contextOf(std::uintptr_t attempt) { return reinterpret_cast<void*>(attempt); }
std::uintptr_t attemptOf(const ::mqtt::token& tok) {
    return reinterpret_cast<std::uintptr_t>(tok.get_user_context());
}

}  // namespace

class PahoMqttClient::Session {
public:
    Session(EventLoop& loop, const Clock& clock, Options options);
    ~Session() { stop(); }

    void start();
    void stop();
    void subscribe(const std::string& filter, int qos);
    Status publish(const Message& message);
    bool connected() const { return state_ == State::kConnected; }
    void onMessage(std::function<void(const Message&)> h) { on_message_ = std::move(h); }
    void onConnectionChange(std::function<void(bool)> h) { on_connection_ = std::move(h); }

    // Entry points of the Bridge; loop thread, only while started. Each calls a user handler
    // as its very last step, so a handler may stop or destroy the client.
    void handleConnected(std::uintptr_t attempt);
    void handleConnectFailed(std::uintptr_t attempt);
    void handleSubscribed(std::uintptr_t attempt);
    void handleLost();
    void handleMessage(const Message& message);

private:
    enum class State { kStopped, kConnecting, kSubscribing, kConnected, kWaiting };
    class Bridge;

    bool createClient();
    void connect();
    void sendSubscribe(const std::string& filter, int qos);
    void scheduleRetry();
    void retry();
    void reportUp();

    EventLoop& loop_;
    Options options_;
    std::mt19937 rng_;
    std::function<void(const Message&)> on_message_;
    std::function<void(bool)> on_connection_;
    std::vector<std::pair<std::string, int>> filters_;
    std::atomic<State> state_{State::kStopped};  // written on the loop; connected() from any thread
    std::uintptr_t attempt_ = 0;  // tags Paho callbacks so stale ones are ignored
    int pending_subacks_ = 0;
    std::chrono::milliseconds next_delay_;
    std::unique_ptr<Timer> retry_timer_;
    std::shared_ptr<Bridge> bridge_;
    std::unique_ptr<::mqtt::async_client> client_;  // destroyed before bridge_
};

// What Paho holds: its callbacks run on Paho threads and only post onto the loop. After close()
// nothing more is posted, and what was posted before finds no session and does nothing.
class PahoMqttClient::Session::Bridge final : public ::mqtt::iaction_listener,
                                              public std::enable_shared_from_this<Bridge> {
public:
    Bridge(EventLoop& loop, Session* session) : loop_(loop), session_(session) {}

    /// Loop thread.
    void close() {
        std::lock_guard lock(mutex_);
        open_ = false;
        session_ = nullptr;
    }

    /// Any thread.
    void post(std::function<void(Session&)> fn) {
        std::lock_guard lock(mutex_);
        if (!open_) return;
        // session_ is read and cleared only on the loop thread, so the posted check is exact.
        loop_.post([self = shared_from_this(), fn = std::move(fn)] {
            if (self->session_ != nullptr) fn(*self->session_);
        });
    }

    void on_success(const ::mqtt::token& tok) override {
        const auto attempt = attemptOf(tok);
        if (tok.get_type() == ::mqtt::token::Type::CONNECT) {
            post([attempt](Session& s) { s.handleConnected(attempt); });
        } else if (tok.get_type() == ::mqtt::token::Type::SUBSCRIBE) {
            post([attempt](Session& s) { s.handleSubscribed(attempt); });
        }
    }

    void on_failure(const ::mqtt::token& tok) override {
        const auto attempt = attemptOf(tok);
        if (tok.get_type() == ::mqtt::token::Type::CONNECT) {
            post([attempt](Session& s) { s.handleConnectFailed(attempt); });
        } else if (tok.get_type() == ::mqtt::token::Type::SUBSCRIBE) {
            // A refused filter does not hold the session back; the broker log tells why.
            post([attempt](Session& s) { s.handleSubscribed(attempt); });
        }
    }

private:
    std::mutex mutex_;
    bool open_ = true;
    EventLoop& loop_;
    Session* session_;
};

PahoMqttClient::Session::Session(EventLoop& loop, const Clock& clock, Options options)
    : loop_(loop),
      options_(std::move(options)),
      rng_(static_cast<std::mt19937::result_type>(
          std::random_device{}() ^
          static_cast<unsigned>(clock.steady().time_since_epoch().count()))),
      next_delay_(options_.reconnect_min) {
    if (options_.client_id.empty()) {
        options_.client_id = "edge-" + std::to_string(rng_());
    }
    if (options_.reconnect_min.count() < 1) options_.reconnect_min = std::chrono::milliseconds(1);
    options_.reconnect_max = std::max(options_.reconnect_max, options_.reconnect_min);
}

void PahoMqttClient::Session::start() {
    if (state_ != State::kStopped) return;
    bridge_ = std::make_shared<Bridge>(loop_, this);
    next_delay_ = options_.reconnect_min;
    state_ = State::kWaiting;
    retry();
}

void PahoMqttClient::Session::stop() {
    if (state_ == State::kStopped) return;
    state_ = State::kStopped;
    retry_timer_.reset();
    bridge_->close();  // from here on no handler of this session can run
    if (client_) {
        try {
            if (client_->is_connected()) {
                client_->disconnect(kDisconnectGrace)->wait_for(kDisconnectWait);
            }
        } catch (const std::exception&) {
            // Already gone; destroying the client below closes whatever is left.
        }
        try {
            client_->disable_callbacks();
        } catch (const std::exception&) {
        }
        client_.reset();
    }
    bridge_.reset();
}

bool PahoMqttClient::Session::createClient() {
    try {
        // MQTT v5 must be asked for here and again in the connect options.
        auto client =
            std::make_unique<::mqtt::async_client>(options_.server_uri, options_.client_id,
                                                   ::mqtt::create_options(MQTTVERSION_5), nullptr);
        std::shared_ptr<Bridge> bridge = bridge_;
        client->set_message_callback([bridge](::mqtt::const_message_ptr m) {
            if (!m) return;
            Message msg{m->get_topic(), m->get_payload_str(), m->get_qos(), m->is_retained()};
            bridge->post([msg = std::move(msg)](Session& s) { s.handleMessage(msg); });
        });
        client->set_connection_lost_handler(
            [bridge](const std::string&) { bridge->post([](Session& s) { s.handleLost(); }); });
        client->set_disconnected_handler([bridge](const ::mqtt::properties&, ::mqtt::ReasonCode) {
            bridge->post([](Session& s) { s.handleLost(); });
        });
        client_ = std::move(client);
        return true;
    } catch (const std::exception&) {
        return false;  // e.g. a malformed URI; retried with backoff like any failure
    }
}

void PahoMqttClient::Session::connect() {
    state_ = State::kConnecting;
    ++attempt_;
    ::mqtt::connect_options_builder builder;
    builder.mqtt_version(MQTTVERSION_5)
        .clean_start(true)
        .automatic_reconnect(false)
        .keep_alive_interval(options_.keep_alive)
        .connect_timeout(kConnectTimeout);
    if (options_.will) {
        const Message& w = *options_.will;
        builder.will(::mqtt::will_options(w.topic, w.payload, w.qos, w.retained));
    }
    try {
        client_->connect(builder.finalize(), contextOf(attempt_), *bridge_);
    } catch (const std::exception&) {
        scheduleRetry();
    }
}

void PahoMqttClient::Session::handleConnected(std::uintptr_t attempt) {
    if (state_ != State::kConnecting || attempt != attempt_) return;
    next_delay_ = options_.reconnect_min;
    state_ = State::kSubscribing;
    pending_subacks_ = 0;
    for (const auto& [filter, qos] : filters_) sendSubscribe(filter, qos);
    if (state_ == State::kSubscribing && pending_subacks_ == 0) reportUp();
}

void PahoMqttClient::Session::handleConnectFailed(std::uintptr_t attempt) {
    if (state_ != State::kConnecting || attempt != attempt_) return;
    scheduleRetry();
}

void PahoMqttClient::Session::handleSubscribed(std::uintptr_t attempt) {
    if (state_ != State::kSubscribing || attempt != attempt_) return;
    if (--pending_subacks_ <= 0) reportUp();
}

void PahoMqttClient::Session::handleLost() {
    if (state_ != State::kSubscribing && state_ != State::kConnected) return;
    const bool was_up = state_ == State::kConnected;
    scheduleRetry();
    if (was_up && on_connection_) {
        auto handler = on_connection_;  // the handler may replace itself or destroy us
        handler(false);
    }
}

void PahoMqttClient::Session::handleMessage(const Message& message) {
    if (!on_message_) return;
    auto handler = on_message_;
    handler(message);
}

void PahoMqttClient::Session::reportUp() {
    state_ = State::kConnected;
    if (!on_connection_) return;
    auto handler = on_connection_;
    handler(true);
}

void PahoMqttClient::Session::sendSubscribe(const std::string& filter, int qos) {
    try {
        client_->subscribe(filter, qos, contextOf(attempt_), *bridge_);
        if (state_ == State::kSubscribing) ++pending_subacks_;
    } catch (const std::exception&) {
        // The connection is going away; the loss handler resubscribes on the next connect.
    }
}

void PahoMqttClient::Session::scheduleRetry() {
    state_ = State::kWaiting;
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    const auto delay = std::chrono::milliseconds(std::max<long long>(
        1, std::llround(static_cast<double>(next_delay_.count()) * jitter(rng_))));
    next_delay_ = std::min(next_delay_ * 2, options_.reconnect_max);
    retry_timer_ = loop_.after(delay, [this] { retry(); });
}

void PahoMqttClient::Session::retry() {
    if (state_ != State::kWaiting) return;
    if (!client_ && !createClient()) {
        scheduleRetry();
        return;
    }
    connect();
}

void PahoMqttClient::Session::subscribe(const std::string& filter, int qos) {
    auto it = std::find_if(filters_.begin(), filters_.end(),
                           [&](const auto& f) { return f.first == filter; });
    if (it != filters_.end()) {
        it->second = qos;
    } else {
        filters_.emplace_back(filter, qos);
    }
    if (state_ == State::kSubscribing || state_ == State::kConnected) sendSubscribe(filter, qos);
}

Status PahoMqttClient::Session::publish(const Message& message) {
    if (message.qos < 0 || message.qos > 2) {
        return fail(SharedErrc::kInvalidArgument, "mqtt publish: qos must be 0, 1 or 2");
    }
    if (state_ != State::kSubscribing && state_ != State::kConnected) {
        return fail(SharedErrc::kUnavailable,
                    "mqtt publish " + message.topic + ": not connected to " + options_.server_uri);
    }
    try {
        client_->publish(
            ::mqtt::message::create(message.topic, message.payload, message.qos, message.retained));
        return {};
    } catch (const ::mqtt::exception& e) {
        const auto code = e.get_return_code() == MQTTASYNC_DISCONNECTED ? SharedErrc::kUnavailable
                                                                        : SharedErrc::kMqtt;
        return fail(code, "mqtt publish " + message.topic + ": " + e.what());
    } catch (const std::exception& e) {
        return fail(SharedErrc::kMqtt, "mqtt publish " + message.topic + ": " + e.what());
    }
}

PahoMqttClient::PahoMqttClient(EventLoop& loop, const Clock& clock, Options options)
    : session_(std::make_unique<Session>(loop, clock, std::move(options))) {}

PahoMqttClient::~PahoMqttClient() { stop(); }

void PahoMqttClient::start() { session_->start(); }
void PahoMqttClient::stop() { session_->stop(); }
void PahoMqttClient::subscribe(const std::string& filter, int qos) {
    session_->subscribe(filter, qos);
}
Status PahoMqttClient::publish(const Message& message) { return session_->publish(message); }
bool PahoMqttClient::connected() const { return session_->connected(); }
void PahoMqttClient::onMessage(std::function<void(const Message&)> handler) {
    session_->onMessage(std::move(handler));
}
void PahoMqttClient::onConnectionChange(std::function<void(bool)> handler) {
    session_->onConnectionChange(std::move(handler));
}

}  // namespace edge::mqtt
