#pragma once
// StreamPublisher: ships one DurableQueue (decisions or telemetry) to the control plane.
// While connected it publishes committed records after the last acknowledged one, in batches
//   {"device": id, "stream": name, "dropped": N, "records": [record, …]}
// on <prefix>/dev/<id>/<stream>, one batch in flight at a time. The control plane stores them
// idempotently (by seq) and answers {"stream": name, "seq": last} on <prefix>/dev/<id>/ack; only
// then does the queue trim them. A batch not acknowledged within ack_timeout, or lost with the
// connection, is sent again from the last ack: duplicates are harmless, gaps impossible.
// Loop thread only.
#include <chrono>
#include <memory>
#include <string>

#include "edged/durable_queue.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/mqtt/client.hpp"

namespace edge::edged {

struct PublisherSettings {
    std::size_t batch_records = 500;
    std::size_t batch_bytes = 256u << 10;
    std::chrono::milliseconds ack_timeout{std::chrono::seconds(10)};
};

class StreamPublisher {
public:
    StreamPublisher(EventLoop& loop, mqtt::MqttClient& mqtt, DurableQueue& queue, std::string device,
                    std::string topic_prefix, std::string stream, PublisherSettings settings = {});

    [[nodiscard]] const std::string& stream() const { return stream_; }
    void connectionChanged(bool connected);
    /// The control plane stored everything up to seq.
    void acknowledged(std::uint64_t seq);
    /// Sends the next batch when connected and nothing is in flight.
    void pump();

private:
    void timedOut();

    EventLoop& loop_;
    mqtt::MqttClient& mqtt_;
    DurableQueue& queue_;
    std::string device_;
    std::string topic_;
    std::string stream_;
    PublisherSettings settings_;
    std::uint64_t in_flight_last_ = 0;  // last seq of the batch awaiting its ack; 0: none
    std::unique_ptr<Timer> ack_timer_;
};

/// Parses an ack payload {"stream": "decisions", "seq": 42}.
[[nodiscard]] Result<std::pair<std::string, std::uint64_t>> parseAck(std::string_view payload);

}  // namespace edge::edged
