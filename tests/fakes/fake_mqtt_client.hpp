#pragma once
#include <string>
#include <vector>

#include "shared/mqtt/client.hpp"

namespace edge::test {

/// Records publishes; the test drives connection changes and incoming messages.
class FakeMqttClient final : public mqtt::MqttClient {
public:
    void start() override { started = true; }
    void stop() override { started = false; }
    void subscribe(const std::string& filter, int) override { subscriptions.push_back(filter); }
    Status publish(const mqtt::Message& message) override {
        if (!is_connected) return fail(SharedErrc::kUnavailable, "not connected");
        published.push_back(message);
        return {};
    }
    bool connected() const override { return is_connected; }
    void onMessage(std::function<void(const mqtt::Message&)> h) override { on_message = std::move(h); }
    void onConnectionChange(std::function<void(bool)> h) override { on_connection = std::move(h); }

    void connect() {
        is_connected = true;
        if (on_connection) on_connection(true);
    }
    void deliver(const mqtt::Message& m) {
        if (on_message) on_message(m);
    }

    bool started = false;
    bool is_connected = false;
    std::vector<std::string> subscriptions;
    std::vector<mqtt::Message> published;
    std::function<void(const mqtt::Message&)> on_message;
    std::function<void(bool)> on_connection;
};

}  // namespace edge::test
