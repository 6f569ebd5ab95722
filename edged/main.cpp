// edged: `run` is the daemon; `status` prints the local state from the store, no broker needed.
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include "edged/agent.hpp"
#include "shared/core/config.hpp"
#include "shared/core/log.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/mqtt/paho/paho_client.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"

namespace {

using namespace edge;

struct EdgedConfig {
    edged::AgentSettings agent;
    std::string broker;  // empty: offline only
    std::filesystem::path trust_root;
    std::filesystem::path state_dir;
    std::chrono::milliseconds reconnect_min{500};
    std::chrono::milliseconds reconnect_max{30000};
    log::Level log_level = log::Level::kInfo;
};

Result<EdgedConfig> loadConfig(const std::filesystem::path& path) {
    auto file = config::ConfigFile::load(path);
    if (!file) return fail(file.error());
    EdgedConfig c;
    auto id = file->string("device_id");
    if (!id) return fail(id.error());
    if (!bundle::isValidDeviceId(*id)) {
        return fail(SharedErrc::kConfig,
                    fmt::format("{}: key 'device_id': '{}' is not 1 to 64 of [A-Za-z0-9._-]",
                                path.string(), *id));
    }
    c.agent.device_id = *id;
    auto broker = file->string("broker", "");
    if (!broker) return fail(broker.error());
    c.broker = *broker;
    auto prefix = file->string("topic_prefix", "edge/v1");
    if (!prefix) return fail(prefix.error());
    c.agent.topic_prefix = *prefix;
    auto root = file->path("trust_root");
    if (!root) return fail(root.error());
    c.trust_root = *root;
    auto state = file->path("state_dir");
    if (!state) return fail(state.error());
    c.state_dir = *state;
    auto status_interval = file->duration("status_interval", c.agent.status_interval);
    if (!status_interval) return fail(status_interval.error());
    if (*status_interval < std::chrono::seconds(1)) {
        return fail(SharedErrc::kConfig,
                    fmt::format("{}: key 'status_interval': at least 1s", path.string()));
    }
    c.agent.status_interval = *status_interval;
    auto rmin = file->duration("reconnect.min", c.reconnect_min);
    if (!rmin) return fail(rmin.error());
    auto rmax = file->duration("reconnect.max", c.reconnect_max);
    if (!rmax) return fail(rmax.error());
    c.reconnect_min = *rmin;
    c.reconnect_max = *rmax;
    auto level = file->string("log_level", "info");
    if (!level) return fail(level.error());
    auto parsed_level = log::parseLevel(*level);
    if (!parsed_level) {
        return fail(SharedErrc::kConfig, fmt::format("{}: key 'log_level': {}", path.string(),
                                                     parsed_level.error().message()));
    }
    c.log_level = *parsed_level;
    if (auto st = file->finish(); !st) return fail(st.error());
    return c;
}

int run(const EdgedConfig& cfg) {
    log::init("edged", cfg.log_level);
    auto root = security::TrustRoot::load(cfg.trust_root);
    if (!root) {
        std::cerr << "edged: trust root: " << root.error().what() << "\n";
        return 2;
    }
    auto store = store::LmdbStore::open(cfg.state_dir / "db");
    if (!store) {
        std::cerr << "edged: " << store.error().what() << "\n";
        return 1;
    }
    AsioEventLoop loop;
    SystemClock clock;
    std::unique_ptr<mqtt::PahoMqttClient> mqtt;
    if (!cfg.broker.empty()) {
        mqtt::Options options;
        options.server_uri = cfg.broker;
        options.client_id = "edged-" + cfg.agent.device_id;
        options.reconnect_min = cfg.reconnect_min;
        options.reconnect_max = cfg.reconnect_max;
        options.will = mqtt::Message{
            fmt::format("{}/dev/{}/status", cfg.agent.topic_prefix, cfg.agent.device_id),
            edged::offlineWill(cfg.agent.device_id), 1, true};
        mqtt = std::make_unique<mqtt::PahoMqttClient>(loop, clock, options);
    }
    edged::EdgeAgent agent(loop, clock, **store, mqtt.get(), std::move(*root), cfg.agent);
    // State first, network second: the device knows what it enforces before it talks to anyone.
    if (auto st = agent.load(); !st) {
        std::cerr << "edged: " << st.error().what() << "\n";
        return 1;
    }
    agent.start();
    boost::asio::signal_set signals(loop.context(), SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log::info("stopping on signal {}", sig);
        agent.stop();
        loop.stop();
    });
    loop.run();
    return 0;
}

int status(const EdgedConfig& cfg, bool as_json) {
    store::LmdbOptions options;
    options.read_only = true;
    const auto db = cfg.state_dir / "db";
    if (!std::filesystem::exists(db / "data.mdb")) {
        std::cerr << "edged: no state at " << db << " (never started?)\n";
        return 1;
    }
    auto store = store::LmdbStore::open(db, options);
    if (!store) {
        std::cerr << "edged: " << store.error().what() << "\n";
        return 1;
    }
    auto applied = edged::loadApplied(**store);
    if (!applied) {
        std::cerr << "edged: " << applied.error().what() << "\n";
        return 1;
    }
    if (as_json) {
        nlohmann::json j = {{"device", cfg.agent.device_id}};
        j["applied"] = *applied ? edged::toJson(**applied) : nlohmann::json(nullptr);
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::cout << "device:   " << cfg.agent.device_id << "\n";
    if (!*applied) {
        std::cout << "applied:  nothing yet\n";
        return 0;
    }
    const auto& a = **applied;
    std::cout << "version:  " << a.version << "\n"
              << "digest:   " << a.bundle_digest << "\n"
              << "source:   " << a.source << "\n"
              << "applied:  " << isoTime(a.applied_at) << "\n"
              << "expires:  " << isoTime(a.expires_at) << "\n"
              << "policies: " << a.policies.size() << "\n";
    for (const auto& p : a.policies) std::cout << "  " << p << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"edged: the edge daemon"};
    app.require_subcommand(1);
    std::filesystem::path config_path;
    auto* run_cmd = app.add_subcommand("run", "run the daemon");
    run_cmd->add_option("-c,--config", config_path, "config file (docs/config.md)")->required();
    bool as_json = false;
    auto* status_cmd = app.add_subcommand("status", "print the local state (no broker needed)");
    status_cmd->add_option("-c,--config", config_path, "config file")->required();
    status_cmd->add_flag("--json", as_json, "print JSON");
    CLI11_PARSE(app, argc, argv);

    auto cfg = loadConfig(config_path);
    if (!cfg) {
        std::cerr << "edged: " << cfg.error().what() << "\n";
        return 2;
    }
    if (*run_cmd) return run(*cfg);
    return status(*cfg, as_json);
}
