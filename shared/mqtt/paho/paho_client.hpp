#pragma once
// PahoMqttClient: MqttClient on the Eclipse Paho C++ async client, MQTT v5, clean start, QoS 1.
//
// Lives on the EventLoop: construct, call and destroy it on the loop thread. Paho's own threads
// only post onto the loop. Reconnects are driven here (capped exponential backoff with ±20%
// jitter via loop.after()), not by Paho's automatic reconnect, which does not retry a failed
// first connect. stop() disconnects (waiting at most ~2 s) and may block the loop that long.
// A graceful stop does not fire the last will (the broker drops it on a normal DISCONNECT).
#include <memory>

#include "shared/core/clock.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/mqtt/client.hpp"

namespace edge::mqtt {

class PahoMqttClient final : public MqttClient {
public:
    PahoMqttClient(EventLoop& loop, const Clock& clock, Options options);
    /// Calls stop().
    ~PahoMqttClient() override;
    PahoMqttClient(const PahoMqttClient&) = delete;
    PahoMqttClient& operator=(const PahoMqttClient&) = delete;

    void start() override;
    void stop() override;
    void subscribe(const std::string& filter, int qos) override;
    [[nodiscard]] Status publish(const Message& message) override;
    [[nodiscard]] bool connected() const override;

    void onMessage(std::function<void(const Message&)> handler) override;
    void onConnectionChange(std::function<void(bool connected)> handler) override;

    class Session;  // Paho state; defined in paho_client.cpp

private:
    std::unique_ptr<Session> session_;
};

}  // namespace edge::mqtt
