// PahoMqttClient against a real mosquitto, with a real AsioEventLoop on its own thread.
// Paho needs ~2 s per extra client to connect, so waits here are generous.
#include "shared/mqtt/paho/paho_client.hpp"

#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "shared/core/clock.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "tests/support/mosquitto.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace edge::mqtt {
namespace {

using namespace std::chrono_literals;

constexpr auto kConnectWait = 20s;
constexpr const char* kWillHelperName = "PahoMqttClient will helper process";

// An AsioEventLoop running on its own thread; call() runs fn on it and waits for the result.
class LoopThread {
public:
    LoopThread() : thread_([this] { loop_.run(); }) {}
    ~LoopThread() {
        loop_.post([this] { loop_.stop(); });  // queued, so it also works before run() starts
        thread_.join();
    }
    template <class F>
    auto call(F fn) {
        std::packaged_task<decltype(fn())()> task(std::move(fn));
        auto result = task.get_future();
        loop_.post([&task] { task(); });
        return result.get();
    }
    EventLoop& loop() { return loop_; }
    std::thread::id id() const { return thread_.get_id(); }

private:
    AsioEventLoop loop_;
    std::thread thread_;
};

// What a client's handlers saw; written on the loop thread, read by the test thread.
struct Events {
    std::mutex mutex;
    std::vector<Message> messages;
    std::vector<bool> changes;
    int off_loop_calls = 0;
    std::chrono::steady_clock::time_point first_up{};

    std::vector<bool> changesCopy() {
        std::lock_guard lock(mutex);
        return changes;
    }
    std::optional<Message> find(const std::string& payload) {
        std::lock_guard lock(mutex);
        for (const auto& m : messages) {
            if (m.payload == payload) return m;
        }
        return std::nullopt;
    }
};

// A PahoMqttClient created, driven and destroyed on the loop thread.
class TestClient {
public:
    TestClient(LoopThread& lt, Options options, std::vector<std::string> filters = {}) : lt_(lt) {
        lt_.call([&] {
            client_ = std::make_unique<PahoMqttClient>(lt_.loop(), clock_, std::move(options));
            const auto loop_id = lt_.id();
            client_->onMessage([this, loop_id](const Message& m) {
                std::lock_guard lock(events.mutex);
                if (std::this_thread::get_id() != loop_id) ++events.off_loop_calls;
                events.messages.push_back(m);
            });
            client_->onConnectionChange([this, loop_id](bool up) {
                std::lock_guard lock(events.mutex);
                if (std::this_thread::get_id() != loop_id) ++events.off_loop_calls;
                if (up && events.changes.empty())
                    events.first_up = std::chrono::steady_clock::now();
                events.changes.push_back(up);
            });
            for (const auto& f : filters) client_->subscribe(f, 1);
            return 0;
        });
    }
    ~TestClient() {
        lt_.call([&] {
            client_.reset();
            return 0;
        });
    }
    void start() {
        started_ = std::chrono::steady_clock::now();
        lt_.call([&] {
            client_->start();
            return 0;
        });
    }
    Status publish(const Message& m) {
        return lt_.call([&] { return client_->publish(m); });
    }
    bool connected() {
        return lt_.call([&] { return client_->connected(); });
    }
    bool waitChanges(const std::vector<bool>& expected, std::chrono::milliseconds timeout) {
        return test::waitUntil([&] { return events.changesCopy() == expected; }, timeout);
    }
    std::chrono::milliseconds connectTime() {
        std::lock_guard lock(events.mutex);
        return std::chrono::duration_cast<std::chrono::milliseconds>(events.first_up - started_);
    }

    Events events;

private:
    LoopThread& lt_;
    SystemClock clock_;
    std::unique_ptr<PahoMqttClient> client_;
    std::chrono::steady_clock::time_point started_{};
};

Options optionsFor(const test::Mosquitto& broker, const std::string& id) {
    Options o;
    o.server_uri = broker.uri();
    o.client_id = id + "-" + std::to_string(::getpid());
    o.reconnect_min = 100ms;
    o.reconnect_max = 800ms;
    return o;
}

std::string mosquittoPub(const test::Mosquitto& broker, const std::string& topic,
                         const std::string& payload, bool retained) {
    std::vector<std::string> argv = {"mosquitto_pub",
                                     "-h",
                                     "127.0.0.1",
                                     "-p",
                                     std::to_string(broker.port()),
                                     "-V",
                                     "mqttv5",
                                     "-q",
                                     "1",
                                     "-t",
                                     topic,
                                     "-m",
                                     payload};
    if (retained) argv.push_back("-r");
    auto r = test::runCommand(argv, 10s);
    return r.exit_code == 0 ? std::string() : "mosquitto_pub failed: " + r.err;
}

// An EventLoop driven by the test thread (which is thus the loop thread), on which time passes
// instantly: a timer fires as soon as no posted work is waiting. Records every after() delay.
class SteppedLoop final : public EventLoop {
public:
    void post(std::function<void()> fn) override {
        std::lock_guard lock(mutex_);
        posted_.push_back(std::move(fn));
        cv_.notify_all();
    }
    std::unique_ptr<Timer> after(std::chrono::milliseconds delay,
                                 std::function<void()> fn) override {
        delays.push_back(delay);
        auto state = std::make_shared<TimerState>();
        state->fn = std::move(fn);
        timers_.push_back(state);
        return std::make_unique<SteppedTimer>(state);
    }
    void run() override {}
    void stop() override {}

    bool runUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::vector<std::function<void()>> work;
            {
                std::unique_lock lock(mutex_);
                if (posted_.empty() && !fireTimer()) cv_.wait_for(lock, 20ms);
                work.swap(posted_);
            }
            for (auto& fn : work) fn();
        }
        return true;
    }

    std::vector<std::chrono::milliseconds> delays;

private:
    struct TimerState {
        std::function<void()> fn;
    };
    class SteppedTimer final : public Timer {
    public:
        explicit SteppedTimer(std::shared_ptr<TimerState> s) : state_(std::move(s)) {}
        ~SteppedTimer() override { cancel(); }
        void cancel() override { state_->fn = nullptr; }

    private:
        std::shared_ptr<TimerState> state_;
    };

    // Queues the oldest live timer as posted work; false when there is none.
    bool fireTimer() {
        while (!timers_.empty()) {
            auto state = timers_.front();
            timers_.erase(timers_.begin());
            if (state->fn) {
                posted_.push_back([state] {
                    if (!state->fn) return;
                    auto fn = std::move(state->fn);
                    state->fn = nullptr;
                    fn();
                });
                return true;
            }
        }
        return false;
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::function<void()>> posted_;
    std::vector<std::shared_ptr<TimerState>> timers_;  // loop thread only
};

bool withinJitter(std::chrono::milliseconds actual, std::chrono::milliseconds nominal) {
    return actual.count() >= nominal.count() * 8 / 10 - 1 &&
           actual.count() <= nominal.count() * 12 / 10 + 1;
}

}  // namespace

TEST_CASE("PahoMqttClient: a retained QoS 1 message reaches a later subscriber on the loop thread",
          "[integration]") {
    test::TempDir tmp;
    test::Mosquitto broker(tmp / "broker");
    LoopThread lt;

    TestClient publisher(lt, optionsFor(broker, "pub"));
    auto early = publisher.publish({"edge/test/retained", "too early", 1, true});
    REQUIRE_FALSE(early);
    CHECK(early.error().code() == SharedErrc::kUnavailable);

    publisher.start();
    REQUIRE(publisher.waitChanges({true}, kConnectWait));
    INFO("publisher connect took " << publisher.connectTime().count() << " ms");
    CHECK(publisher.connected());
    REQUIRE(publisher.publish({"edge/test/retained", "hello", 1, true}));

    TestClient subscriber(lt, optionsFor(broker, "sub"), {"edge/test/#"});
    subscriber.start();
    REQUIRE(
        test::waitUntil([&] { return subscriber.events.find("hello").has_value(); }, kConnectWait));
    auto got = *subscriber.events.find("hello");
    CHECK(got.topic == "edge/test/retained");
    CHECK(got.qos == 1);
    CHECK(got.retained);
    REQUIRE(subscriber.waitChanges({true}, kConnectWait));
    INFO("subscriber connect took " << subscriber.connectTime().count() << " ms");
    CHECK(subscriber.events.off_loop_calls == 0);
    CHECK(publisher.events.off_loop_calls == 0);
}

// Runs only when started by the will test below (hidden from normal runs): connects with a last
// will, marks itself ready, and waits to be killed.
TEST_CASE("PahoMqttClient will helper process", "[.will_helper]") {
    const char* uri = std::getenv("EDGE_WILL_URI");
    const char* topic = std::getenv("EDGE_WILL_TOPIC");
    const char* ready = std::getenv("EDGE_WILL_READY");
    if (uri == nullptr || topic == nullptr || ready == nullptr) return;
    AsioEventLoop loop;
    SystemClock clock;
    Options o;
    o.server_uri = uri;
    o.client_id = "will-helper-" + std::to_string(::getpid());
    o.will = Message{topic, "offline", 1, false};
    PahoMqttClient client(loop, clock, o);
    client.onConnectionChange([&](bool up) {
        if (up) std::ofstream(ready) << "ready\n";
    });
    client.start();
    auto guard = loop.after(60s, [&] { loop.stop(); });  // never outlive a lost parent
    loop.run();
}

TEST_CASE("PahoMqttClient: the last will is published when the client's process dies",
          "[integration]") {
    test::TempDir tmp;
    test::Mosquitto broker(tmp / "broker");
    LoopThread lt;
    TestClient watcher(lt, optionsFor(broker, "watcher"), {"edge/test/will/#"});
    watcher.start();
    REQUIRE(watcher.waitChanges({true}, kConnectWait));

    const auto ready = tmp / "helper.ready";
    auto helper = test::Process::spawn(
        {std::filesystem::read_symlink("/proc/self/exe").string(), kWillHelperName},
        tmp / "helper.log",
        {"EDGE_WILL_URI=" + broker.uri(), "EDGE_WILL_TOPIC=edge/test/will/node-1",
         "EDGE_WILL_READY=" + ready.string()});
    const bool helper_ready =
        test::waitUntil([&] { return std::filesystem::exists(ready); }, kConnectWait);
    INFO("helper log:\n" << test::readFile(tmp / "helper.log"));
    REQUIRE(helper_ready);
    CHECK_FALSE(watcher.events.find("offline"));

    helper.kill();  // SIGKILL: the TCP connection drops without DISCONNECT
    REQUIRE(test::waitUntil([&] { return watcher.events.find("offline").has_value(); }, 10s));
    CHECK(watcher.events.find("offline")->topic == "edge/test/will/node-1");
    CHECK(watcher.events.off_loop_calls == 0);
}

TEST_CASE("PahoMqttClient: connects once the broker starts and resubscribes after a restart",
          "[integration]") {
    test::TempDir tmp;
    test::Mosquitto broker(tmp / "broker");
    broker.stop();
    LoopThread lt;
    TestClient client(lt, optionsFor(broker, "reconnect"), {"edge/test/re/#"});
    client.start();
    std::this_thread::sleep_for(1500ms);  // several refused attempts
    CHECK(client.events.changesCopy().empty());
    CHECK_FALSE(client.connected());

    broker.start();
    REQUIRE(client.waitChanges({true}, kConnectWait));

    broker.stop();
    REQUIRE(client.waitChanges({true, false}, 10s));
    auto down = client.publish({"edge/test/re/x", "while down", 1, false});
    REQUIRE_FALSE(down);
    CHECK(down.error().code() == SharedErrc::kUnavailable);

    broker.start();
    REQUIRE(client.waitChanges({true, false, true}, kConnectWait));
    // The restarted broker keeps nothing (persistence false): only a renewed subscription
    // receives this.
    REQUIRE(mosquittoPub(broker, "edge/test/re/x", "after-restart", true).empty());
    REQUIRE(test::waitUntil([&] { return client.events.find("after-restart").has_value(); }, 10s));
    CHECK(client.events.off_loop_calls == 0);
}

TEST_CASE("PahoMqttClient: no handler runs after stop() returns", "[integration]") {
    test::TempDir tmp;
    test::Mosquitto broker(tmp / "broker");
    LoopThread lt;
    SystemClock clock;
    std::unique_ptr<PahoMqttClient> client;
    std::atomic<int> received = 0;
    std::atomic<int> after_stop = 0;
    std::atomic<bool> up = false;
    bool stopped = false;  // loop thread only
    lt.call([&] {
        client = std::make_unique<PahoMqttClient>(lt.loop(), clock, optionsFor(broker, "flood"));
        client->onConnectionChange([&](bool c) {
            if (stopped) ++after_stop;
            up = c;
        });
        client->onMessage([&](const Message&) {
            if (stopped) ++after_stop;
            if (++received == 20) {
                client->stop();
                stopped = true;
            }
        });
        client->subscribe("edge/test/flood", 0);
        client->start();
        return 0;
    });
    REQUIRE(test::waitUntil([&] { return up.load(); }, kConnectWait));
    auto flood = test::Process::spawn(
        {"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(broker.port()), "-t",
         "edge/test/flood", "-m", "x", "--repeat", "100000"},
        tmp / "flood.log");
    REQUIRE(test::waitUntil([&] { return received.load() >= 20; }, 10s));
    std::this_thread::sleep_for(300ms);  // messages Paho had in flight would arrive now
    lt.call([&] {
        client.reset();  // right after stop(), as the contract allows
        return 0;
    });
    flood.kill();
    CHECK(received.load() == 20);
    CHECK(after_stop.load() == 0);
}

TEST_CASE("PahoMqttClient: reconnect backoff doubles up to the cap and resets after a connect",
          "[integration]") {
    test::TempDir tmp;
    test::Mosquitto broker(tmp / "broker");
    broker.stop();
    SteppedLoop loop;
    SystemClock clock;
    std::vector<bool> changes;
    auto client = std::make_unique<PahoMqttClient>(loop, clock, optionsFor(broker, "backoff"));
    client->onConnectionChange([&](bool up) { changes.push_back(up); });
    client->start();

    // Refused connects: 100, 200, 400, 800, 800 ms (±20%).
    REQUIRE(loop.runUntil([&] { return loop.delays.size() >= 5; }, 20s));
    const std::vector<long> nominal = {100, 200, 400, 800, 800};
    for (std::size_t i = 0; i < nominal.size(); ++i) {
        INFO("attempt " << i << " waited " << loop.delays[i].count() << " ms");
        CHECK(withinJitter(loop.delays[i], std::chrono::milliseconds(nominal[i])));
    }
    CHECK(changes.empty());

    broker.start();
    REQUIRE(loop.runUntil([&] { return changes == std::vector<bool>{true}; }, 20s));
    const auto before_loss = loop.delays.size();
    broker.stop();
    REQUIRE(loop.runUntil([&] { return changes == std::vector<bool>{true, false}; }, 20s));
    REQUIRE(loop.delays.size() == before_loss + 1);
    CHECK(withinJitter(loop.delays.back(), std::chrono::milliseconds(100)));

    // stop() while attempts to reach the absent broker go on returns promptly.
    REQUIRE(loop.runUntil([&] { return loop.delays.size() >= before_loss + 3; }, 20s));
    const auto t0 = std::chrono::steady_clock::now();
    client->stop();
    client.reset();
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
    loop.runUntil([] { return false; }, 300ms);  // late Paho posts find nothing to call
    CHECK(changes == std::vector<bool>{true, false});
}

}  // namespace edge::mqtt
