#include "edged/stream_publisher.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "shared/core/log.hpp"

namespace edge::edged {

StreamPublisher::StreamPublisher(EventLoop& loop, mqtt::MqttClient& mqtt, DurableQueue& queue,
                                 std::string device, std::string topic_prefix, std::string stream,
                                 PublisherSettings settings)
    : loop_(loop),
      mqtt_(mqtt),
      queue_(queue),
      device_(std::move(device)),
      topic_(fmt::format("{}/dev/{}/{}", topic_prefix, device_, stream)),
      stream_(std::move(stream)),
      settings_(settings) {}

void StreamPublisher::connectionChanged(bool connected) {
    // Whatever was in flight may be lost: start again from the last ack.
    in_flight_last_ = 0;
    ack_timer_.reset();
    if (connected) pump();
}

void StreamPublisher::acknowledged(std::uint64_t seq) {
    queue_.ack(seq);
    if (in_flight_last_ != 0 && seq >= in_flight_last_) {
        in_flight_last_ = 0;
        ack_timer_.reset();
    }
    pump();
}

void StreamPublisher::timedOut() {
    log::warn("{}: no ack for the batch ending at seq {}; sending again", stream_, in_flight_last_);
    in_flight_last_ = 0;
    pump();
}

void StreamPublisher::pump() {
    if (in_flight_last_ != 0 || !mqtt_.connected()) return;
    if (queue_.committedSeq() <= queue_.acked()) return;
    auto records = queue_.readCommitted(queue_.acked(), settings_.batch_records, settings_.batch_bytes);
    if (!records) {
        log::warn("{}: cannot read the queue: {}", stream_, records.error().what());
        return;
    }
    if (records->empty()) return;
    std::string payload = fmt::format(R"({{"device":{},"stream":{},"dropped":{},"records":[)",
                                      nlohmann::json(device_).dump(), nlohmann::json(stream_).dump(),
                                      queue_.dropped());
    for (std::size_t i = 0; i < records->size(); ++i) {
        if (i > 0) payload += ',';
        payload += (*records)[i].second;
    }
    payload += "]}";
    const auto last = records->back().first;
    if (auto st = mqtt_.publish({topic_, std::move(payload), 1, false}); !st) {
        log::debug("{}: batch not sent yet: {}", stream_, st.error().what());
        return;  // retried on reconnect
    }
    in_flight_last_ = last;
    ack_timer_ = loop_.after(settings_.ack_timeout, [this] { timedOut(); });
}

Result<std::pair<std::string, std::uint64_t>> parseAck(std::string_view payload) {
    const auto j = nlohmann::json::parse(payload.begin(), payload.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(SharedErrc::kParse, "ack: not a JSON object");
    const auto stream = j.find("stream");
    const auto seq = j.find("seq");
    if (stream == j.end() || !stream->is_string() || seq == j.end() || !seq->is_number_unsigned()) {
        return fail(SharedErrc::kParse, "ack: needs \"stream\" (string) and \"seq\" (unsigned)");
    }
    return std::make_pair(stream->get<std::string>(), seq->get<std::uint64_t>());
}

}  // namespace edge::edged
