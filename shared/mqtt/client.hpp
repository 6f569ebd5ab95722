#pragma once
// MqttClient: an MQTT v5 session that keeps itself connected.
// Production adapter: shared/mqtt/paho/paho_client.hpp (Eclipse Paho C++).
//
// Threading: every method is called on the program's EventLoop thread, and every handler is
// invoked on that loop thread (the adapter posts from its library's threads).
// Errors: publish() fails fast with SharedErrc::kUnavailable while disconnected; callers that must
// not lose a message republish it from onConnected().
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "shared/core/error.hpp"

namespace edge::mqtt {

struct Message {
    std::string topic;
    std::string payload;
    int qos = 1;
    bool retained = false;
};

struct Options {
    std::string server_uri;  // "tcp://127.0.0.1:1883"
    std::string client_id;
    std::optional<Message> will;  // last will, sent by the broker if the session dies
    std::chrono::seconds keep_alive{30};
    std::chrono::milliseconds reconnect_min{500};
    std::chrono::milliseconds reconnect_max{30000};
};

class MqttClient {
public:
    virtual ~MqttClient() = default;
    /// Starts connecting; on failure or loss, retries with capped exponential backoff and
    /// jitter, forever, until stop(). Subscriptions are renewed on every reconnect.
    virtual void start() = 0;
    /// Disconnects and stops reconnecting. Handlers are not called after stop() returns.
    virtual void stop() = 0;
    /// Registers a subscription (kept across reconnects; sent now if connected).
    virtual void subscribe(const std::string& filter, int qos) = 0;
    [[nodiscard]] virtual Status publish(const Message& message) = 0;
    /// Connected and subscribed now. Safe from any thread (a health check polls it).
    [[nodiscard]] virtual bool connected() const = 0;

    virtual void onMessage(std::function<void(const Message&)> handler) = 0;
    /// Called with true after each successful (re)connect and subscribe, false on loss.
    virtual void onConnectionChange(std::function<void(bool connected)> handler) = 0;
};

}  // namespace edge::mqtt
