// edged: `run` is the daemon; `status` prints the local state from the store, no broker needed.
#include <charconv>
#include <csignal>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include "edged/agent.hpp"
#include "edged/artifact_fetcher.hpp"
#include "edged/attestor.hpp"
#include "edged/enforcement.hpp"
#include "edged/model_store.hpp"
#include "edged/ota.hpp"
#include "firmware/boot_control_factory.hpp"
#include "firmware/errors.hpp"
#include "firmware/file/file_boot_control.hpp"
#include "firmware/firmware_config.hpp"
#include "firmware/rebooter.hpp"
#include "firmware/updater.hpp"
#include "security/bundle_signing.hpp"
#include "security/crypto.hpp"
#include "security/tpm/esapi_tpm.hpp"
#include "shared/http/beast/beast_server.hpp"
#include "shared/core/config.hpp"
#include "shared/core/fs.hpp"
#include "shared/core/log.hpp"
#include "shared/core/text.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/mqtt/paho/paho_client.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"

namespace {

using namespace edge;

struct EdgedConfig {
    edged::AgentSettings agent;
    edged::EnforcementSettings enforcement;
    std::filesystem::path api_socket;  // default <state_dir>/edged.sock
    std::string api_host;              // optional loopback TCP listener
    int api_port = 0;
    std::size_t api_max_body = 1u << 20;
    std::string broker;  // empty: offline only
    std::filesystem::path trust_root;
    std::filesystem::path state_dir;
    std::chrono::milliseconds reconnect_min{500};
    std::chrono::milliseconds reconnect_max{30000};
    log::Level log_level = log::Level::kInfo;
    /// Artifacts (docs/ota.md): where to fetch them, with which client certificate.
    edged::OtaSettings ota;
    std::optional<http::TlsClientOptions> artifacts_tls;
    /// Firmware updates: only when the config has a firmware section.
    std::optional<firmware::FirmwareConfig> firmware;
    std::size_t models_keep = 2;
    std::vector<std::string> models_readiness_command;
    std::chrono::milliseconds models_readiness_timeout{30'000};
    /// TPM attestation (docs/attestation.md).
    edged::AttestorSettings attest;
};

std::unexpected<Error> configError(const std::filesystem::path& path, std::string_view key,
                                   std::string_view problem) {
    return fail(SharedErrc::kConfig, fmt::format("{}: key '{}': {}", path.string(), key, problem));
}

/// The decision API, queues and device description (docs/config.md).
Status loadEnforcementConfig(config::ConfigFile& file, const std::filesystem::path& path, EdgedConfig& c) {
    auto& e = c.enforcement;
    e.device.id = c.agent.device_id;
    e.topic_prefix = c.agent.topic_prefix;
    if (file.has("api.socket")) {
        auto socket = file.path("api.socket");
        if (!socket) return fail(socket.error());
        c.api_socket = *socket;
    } else {
        c.api_socket = c.state_dir / "edged.sock";
    }
    auto listen = file.string("api.listen", "");
    if (!listen) return fail(listen.error());
    if (!listen->empty()) {
        const auto colon = listen->rfind(':');
        int port = 0;
        const auto port_text = colon == std::string::npos ? std::string_view{} : std::string_view(*listen).substr(colon + 1);
        auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (colon == std::string::npos || ec != std::errc{} || p != port_text.data() + port_text.size() ||
            port < 0 || port > 65535) {
            return configError(path, "api.listen", "expected host:port, e.g. 127.0.0.1:8181");
        }
        c.api_host = listen->substr(0, colon);
        c.api_port = port;
        if (c.api_host != "127.0.0.1" && c.api_host != "::1" && c.api_host != "localhost") {
            return configError(path, "api.listen", "the decision API has no authentication: loopback only");
        }
        if (c.api_host == "localhost") c.api_host = "127.0.0.1";
    }
    auto max_body = file.integer("api.max_body_bytes", 1 << 20, 1024, 64 << 20);
    if (!max_body) return fail(max_body.error());
    c.api_max_body = static_cast<std::size_t>(*max_body);
    auto timeout = file.duration("api.eval_timeout", e.decision.eval_timeout);
    if (!timeout) return fail(timeout.error());
    if (*timeout < std::chrono::milliseconds(1)) return configError(path, "api.eval_timeout", "at least 1ms");
    e.decision.eval_timeout = *timeout;
    auto decisions_max = file.integer("queues.decisions_max_bytes", 64 << 20, 4096, std::int64_t{1} << 40);
    if (!decisions_max) return fail(decisions_max.error());
    e.decisions_max_bytes = static_cast<std::size_t>(*decisions_max);
    auto telemetry_max = file.integer("queues.telemetry_max_bytes", 16 << 20, 4096, std::int64_t{1} << 40);
    if (!telemetry_max) return fail(telemetry_max.error());
    e.telemetry_max_bytes = static_cast<std::size_t>(*telemetry_max);
    auto commit_interval = file.duration("queues.commit_interval", e.commit_interval);
    if (!commit_interval) return fail(commit_interval.error());
    if (*commit_interval > std::chrono::seconds(1)) {
        return configError(path, "queues.commit_interval", "at most 1s (it is what a power cut may take)");
    }
    e.commit_interval = *commit_interval;
    auto max_uncommitted = file.integer("queues.max_uncommitted", 10000, 1, 1000000);
    if (!max_uncommitted) return fail(max_uncommitted.error());
    e.decision.max_uncommitted = static_cast<std::size_t>(*max_uncommitted);
    auto batch = file.integer("queues.batch_records", 500, 1, 10000);
    if (!batch) return fail(batch.error());
    e.publisher.batch_records = static_cast<std::size_t>(*batch);
    auto ack_timeout = file.duration("queues.ack_timeout", e.publisher.ack_timeout);
    if (!ack_timeout) return fail(ack_timeout.error());
    e.publisher.ack_timeout = *ack_timeout;
    if (file.has("labels")) {
        auto labels = file.strings("labels");
        if (!labels) return fail(labels.error());
        for (const auto& label : *labels) {
            const auto eq = label.find('=');
            if (eq == std::string::npos || eq == 0) {
                return configError(path, "labels", fmt::format("'{}' is not key=value", label));
            }
            e.device.labels[label.substr(0, eq)] = label.substr(eq + 1);
        }
    }
    if (file.has("accelerators")) {
        auto accelerators = file.strings("accelerators");
        if (!accelerators) return fail(accelerators.error());
        e.device.hardware["accelerators"] = *accelerators;
    } else {
        e.device.hardware["accelerators"] = nlohmann::json::array();
    }
    return {};
}

/// artifacts.*, models.* and firmware.* (docs/config.md).
Status loadOtaConfig(config::ConfigFile& file, const std::filesystem::path& path, EdgedConfig& c) {
    auto url = file.string("artifacts.url", "");
    if (!url) return fail(url.error());
    if (!url->empty()) {
        if (!url->starts_with("https://") && !url->starts_with("http://")) {
            return configError(path, "artifacts.url", "expected https://host:port (or http:// for tests)");
        }
        while (url->ends_with('/')) url->pop_back();
        c.ota.artifact_base = *url;
    }
    if (file.has("artifacts.tls.ca") || url->starts_with("https://")) {
        http::TlsClientOptions tls;
        for (auto [key, target] : {std::pair{"artifacts.tls.ca", &tls.ca}, std::pair{"artifacts.tls.cert", &tls.cert},
                                   std::pair{"artifacts.tls.key", &tls.key}}) {
            auto value = file.path(key);
            if (!value) return fail(std::move(value.error()).wrap("https artifacts need the CA, a client certificate and its key"));
            *target = *value;
        }
        c.artifacts_tls = std::move(tls);
    }
    auto retry = file.duration("artifacts.retry_interval", c.ota.retry_interval);
    if (!retry) return fail(retry.error());
    if (*retry < std::chrono::milliseconds(100)) return configError(path, "artifacts.retry_interval", "at least 100ms");
    c.ota.retry_interval = *retry;
    c.ota.downloads_dir = c.state_dir / "downloads";
    c.attest.device_id = c.agent.device_id;
    c.attest.topic_prefix = c.agent.topic_prefix;
    auto tcti = file.string("tpm.tcti", "");
    if (!tcti) return fail(tcti.error());
    c.attest.tcti = *tcti;
    auto pcr = file.integer("tpm.pcr", 23, 0, 23);
    if (!pcr) return fail(pcr.error());
    c.attest.pcr = static_cast<int>(*pcr);
    auto keep = file.integer("models.keep", 2, 0, 100);
    if (!keep) return fail(keep.error());
    c.models_keep = static_cast<std::size_t>(*keep);
    if (file.has("models.readiness_command")) {
        auto argv = file.strings("models.readiness_command");
        if (!argv) return fail(argv.error());
        if (argv->empty()) return configError(path, "models.readiness_command", "an empty command");
        c.models_readiness_command = *argv;
    }
    if (file.has("models.state_command")) {
        auto argv = file.strings("models.state_command");
        if (!argv) return fail(argv.error());
        if (argv->empty()) return configError(path, "models.state_command", "an empty command");
        c.ota.model_state_command = *argv;
    }
    auto readiness_timeout = file.duration("models.readiness_timeout", c.models_readiness_timeout);
    if (!readiness_timeout) return fail(readiness_timeout.error());
    c.models_readiness_timeout = *readiness_timeout;
    if (file.has("firmware.slot_a") || file.has("firmware.backend")) {
        auto fw = firmware::loadFirmwareConfig(file);
        if (!fw) return fail(fw.error());
        c.firmware = std::move(*fw);
        c.ota.state_command = c.firmware->state_command;
        c.ota.stream_firmware = c.firmware->stream;
    }
    return {};
}

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
    if (auto st = loadEnforcementConfig(*file, path, c); !st) return fail(st.error());
    if (auto st = loadOtaConfig(*file, path, c); !st) return fail(st.error());
    if (auto st = file->finish(); !st) return fail(st.error());
    return c;
}

/// LMDB's map holds the queues at their bounds with room for copy-on-write pages and the rest.
store::LmdbOptions storeOptions(const EdgedConfig& cfg) {
    store::LmdbOptions options;
    const auto queues = cfg.enforcement.decisions_max_bytes + cfg.enforcement.telemetry_max_bytes;
    options.map_size = std::max<std::size_t>(options.map_size, 3 * queues + (std::size_t{64} << 20));
    return options;
}

/// What `run` and `apply` both need: the trust root and the writable store. On failure it says
/// why on stderr and gives the exit code.
struct DeviceState {
    security::TrustRoot root;
    std::unique_ptr<store::LmdbStore> store;
};

std::expected<DeviceState, int> openDeviceState(const EdgedConfig& cfg) {
    log::init("edged", cfg.log_level);
    auto root = security::TrustRoot::load(cfg.trust_root);
    if (!root) {
        std::cerr << "edged: trust root: " << root.error().what() << "\n";
        return std::unexpected(2);
    }
    auto store = store::LmdbStore::open(cfg.state_dir / "db", storeOptions(cfg));
    if (!store) {
        std::cerr << "edged: " << store.error().what() << "\n";
        return std::unexpected(1);
    }
    return DeviceState{std::move(*root), std::move(*store)};
}

int run(const EdgedConfig& cfg) {
    auto state = openDeviceState(cfg);
    if (!state) return state.error();
    auto& root = state->root;
    auto& store = state->store;
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
    edged::LocalEnforcement enforcement(loop, clock, *store, mqtt.get(), cfg.enforcement);
    edged::EdgeAgent agent(loop, clock, *store, mqtt.get(), std::move(root), cfg.agent);

    // Artifacts: models and firmware (docs/ota.md).
    edged::OtaManager ota(loop, clock, *store, cfg.ota);
    edged::FetchOptions fetch_options;
    fetch_options.stop = [&ota] { return ota.stopRequested(); };  // shutdown cuts a download
    edged::HttpArtifactFetcher fetcher(cfg.artifacts_tls, fetch_options);
    auto models = edged::ModelStore::open(cfg.state_dir / "models", *store,
                                          {clock, cfg.models_keep, cfg.models_readiness_command,
                                           cfg.models_readiness_timeout, ota.modelStepHook()});
    if (!models) {
        std::cerr << "edged: model store: " << models.error().what() << "\n";
        return 1;
    }
    std::unique_ptr<firmware::BootControl> boot;
    std::unique_ptr<firmware::CommandRebooter> rebooter;
    std::optional<firmware::Updater> updater;
    if (cfg.firmware) {
        auto made = firmware::makeBootControl(cfg.firmware->boot, clock);
        if (!made) {
            std::cerr << "edged: firmware: " << made.error().what() << "\n";
            return 1;
        }
        boot = std::move(*made);
        rebooter = std::make_unique<firmware::CommandRebooter>(cfg.firmware->reboot_command, clock);
        firmware::UpdaterConfig ucfg;
        ucfg.slots = cfg.firmware->boot.slots;
        ucfg.chunk_size = cfg.firmware->chunk_size;
        ucfg.verify_readback = cfg.firmware->verify_readback;
        ucfg.direct_io = cfg.firmware->direct_io;
        ucfg.health_command = cfg.firmware->health_command;
        ucfg.health_timeout = cfg.firmware->health_timeout;
        ucfg.checkpoint_bytes = cfg.firmware->checkpoint_bytes;
        auto opened = firmware::Updater::open(*store, *boot, *rebooter, clock, ucfg, ota.updaterHooks());
        if (!opened) {
            std::cerr << "edged: firmware: " << opened.error().what() << "\n";
            return 1;
        }
        updater.emplace(std::move(*opened));
    }
    ota.setParts({&fetcher, updater ? &*updater : nullptr, &*models});
    ota.onChange([&agent] { agent.publishStatus(); });

    // Attestation: every applied bundle, installed image and active model is measured.
    edged::Attestor attestor(loop, clock, *store, mqtt.get(), cfg.attest, security::tpm::EsapiTpm::open);
    // Local policies see the device's own attestation state (data.edge.device.attestation).
    enforcement.service().setAttestation(attestor.statusJson().value("state", "unavailable"));
    attestor.onStateChange([&loop, &enforcement](const std::string& state) {
        loop.post([&enforcement, state] { enforcement.service().setAttestation(state); });
    });
    auto measure = [&attestor](std::string kind, std::string name, std::string version, std::string_view sha256) {
        auto digest = security::tpm::digestFromHex(sha256);
        if (!digest) return;
        attestor.measure({std::move(kind), std::move(name), std::move(version), *digest});
    };
    ota.onInstalled([measure](const std::string& kind, const std::string& name, const std::string& version,
                              const std::string& sha256) { measure(kind, name, version, sha256); });

    auto hooks = enforcement.hooks();
    auto enforcement_status = hooks.extend_status;
    hooks.extend_status = [enforcement_status, &ota, &attestor](nlohmann::json& status) {
        if (enforcement_status) enforcement_status(status);
        status["ota"] = ota.statusJson();
        status["attestation"] = attestor.statusJson();
    };
    hooks.attest_message = [&attestor](const std::string& leaf, const std::string& payload) {
        attestor.onMessage(leaf, payload);
    };
    auto enforcement_connection = hooks.connection_changed;
    hooks.connection_changed = [enforcement_connection, &attestor](bool online, std::int64_t last_contact) {
        if (enforcement_connection) enforcement_connection(online, last_contact);
        if (online) attestor.connected();
    };
    // One plan: a new bundle's policies wait until its models are in place (or refused), so the
    // two switch together. The bundle whose policies are in force is kept in LMDB: after a
    // restart inside that window its policies go on deciding until the models settle.
    std::shared_ptr<const bundle::Bundle> applied_bundle;
    bool started = false;
    std::shared_ptr<const edged::PolicySets> held_sets;  // the applied bundle's, not yet in force
    std::shared_ptr<const bundle::Bundle> held_bundle;
    auto switch_policies = hooks.policies_changed;
    auto enforce = [&store, switch_policies](std::shared_ptr<const edged::PolicySets> sets, const bundle::Bundle& b) {
        switch_policies(std::move(sets));
        if (auto st = edged::storeEnforcedBundle(*store, b); !st) {
            log::warn("policies of bundle v{} in force, but not recorded: {}", b.version, st.error().what());
        }
    };
    // bundle_applied, which always comes next, decides when these apply.
    hooks.policies_changed = [&held_sets](std::shared_ptr<const edged::PolicySets> sets) { held_sets = std::move(sets); };
    auto models_pending = [&models](const bundle::Bundle& b) {
        for (const auto& a : b.artifacts) {
            if (a.kind != bundle::ArtifactKind::kModel) continue;
            auto active = models->active(a.name);
            if (!active || !*active || (*active)->sha256 != a.sha256) return true;
        }
        return false;
    };
    // At start, with the applied bundle's models still pending: the policies that were in force
    // before it decide meanwhile. False when there are none (then the applied ones apply).
    auto enforce_previous = [&store, switch_policies](const bundle::Bundle& applied) {
        auto previous = edged::loadEnforcedBundle(*store);
        if (!previous || !*previous || (*previous)->version == applied.version) return false;
        auto sets = edged::PolicySets::build(**previous);
        if (!sets) {
            log::warn("policies of bundle v{} do not compile: {}", (*previous)->version, sets.error().what());
            return false;
        }
        log::info("policies of bundle v{} wait for its models; those of v{} decide meanwhile", applied.version,
                  (*previous)->version);
        switch_policies(std::move(*sets));
        return true;
    };
    hooks.bundle_applied = [&ota, &applied_bundle, &started, &held_sets, &held_bundle, enforce, enforce_previous,
                            models_pending, measure](std::shared_ptr<const bundle::Bundle> b) {
        measure("bundle", "", std::to_string(b->version), security::sha256Hex(bundle::toJson(*b)));
        const bool pending = models_pending(*b);
        if (!started) {
            applied_bundle = b;  // the plan start() takes
            if (pending && enforce_previous(*b)) {
                held_bundle = std::move(b);
            } else if (held_sets) {
                enforce(std::move(held_sets), *b);
                held_sets.reset();
            }
            return;
        }
        if (held_sets && !pending) {
            enforce(std::move(held_sets), *b);
            held_sets.reset();
            held_bundle.reset();
        } else if (held_sets) {
            log::info("policies of bundle v{} wait for its models", b->version);
            held_bundle = b;
        }
        ota.bundleApplied(std::move(b));
    };
    ota.onModelsSettled([&held_sets, &held_bundle, enforce](std::uint64_t version) {
        if (!held_sets || !held_bundle || held_sets->bundle_version != version) return;
        log::info("models of bundle v{} settled: its policies apply now", version);
        enforce(std::move(held_sets), *held_bundle);
        held_sets.reset();
        held_bundle.reset();
    });
    agent.setHooks(std::move(hooks));
    // State first, network second: the device knows what it enforces before it talks to anyone.
    if (auto st = enforcement.load(); !st) {
        std::cerr << "edged: " << st.error().what() << "\n";
        return 1;
    }
    if (auto st = agent.load(); !st) {
        std::cerr << "edged: " << st.error().what() << "\n";
        return 1;
    }
    enforcement.service().setConnectivity({false, agent.lastContact()});

    http::ServerOptions api_options;
    api_options.max_body_bytes = cfg.api_max_body;
    http::BeastHttpServer api(
        loop,
        [&enforcement, &ota, &models](const http::Request& r) {
            // Where a local inference runtime finds its model files, and the update in progress.
            if (r.path == "/v1/models" || r.path == "/v1/ota") {
                if (r.method != "GET") return http::errorResponse(405, "use GET");
                http::Response response;
                response.status = 200;
                response.content_type = "application/json";
                response.body = jsonText(r.path == "/v1/models" ? models->list() : ota.statusJson());
                return response;
            }
            return enforcement.service().handle(r);
        },
        api_options);
    if (auto st = api.listenUnix(cfg.api_socket); !st) {
        std::cerr << "edged: decision API: " << st.error().what() << "\n";
        return 1;
    }
    log::info("decision API on unix:{}", cfg.api_socket.string());
    if (!cfg.api_host.empty()) {
        auto port = api.listen(cfg.api_host, cfg.api_port);
        if (!port) {
            std::cerr << "edged: decision API: " << port.error().what() << "\n";
            return 1;
        }
        log::info("decision API on http://{}:{}", cfg.api_host, *port);
    }
    // After a reboot into a new slot: the daemon's own health is that it came this far (state
    // loaded, policies compiled, API listening) and can still write its store; with
    // firmware.health_broker_timeout, also that it reaches the broker within that time (a slot
    // that breaks the network would otherwise be committed and leave the device unreachable).
    const auto broker_timeout = cfg.firmware ? cfg.firmware->health_broker_timeout : std::chrono::milliseconds(0);
    ota.start(applied_bundle, [&store, &ota, mqtt = mqtt.get(), broker_timeout]() -> Status {
        if (auto st = store->putOne(edged::kOtaDb, "health", std::to_string(SystemClock{}.unixSeconds())); !st) {
            return st;
        }
        if (broker_timeout.count() == 0) return {};
        if (mqtt == nullptr) {
            return fail(SharedErrc::kConfig, "firmware.health_broker_timeout is set but no broker is configured");
        }
        log::info("health: waiting up to {} ms for the broker", broker_timeout.count());
        const auto deadline = std::chrono::steady_clock::now() + broker_timeout;
        // connected() may be read from this thread; short slices keep a stop (which joins this
        // worker from the loop thread) prompt.
        while (!mqtt->connected()) {
            if (ota.stopRequested()) {
                return fail(firmware::FirmwareErrc::kInterrupted, "health: stopped while waiting for the broker");
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                return fail(SharedErrc::kUnavailable,
                            fmt::format("health: no connection to the broker within {} ms", broker_timeout.count()));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return {};
    });
    started = true;
    attestor.start();
    agent.start();
    boost::asio::signal_set signals(loop.context(), SIGINT, SIGTERM);
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log::info("stopping on signal {}", sig);
        ota.stop();
        attestor.stop();
        api.stop();
        enforcement.flush();
        agent.stop();
        loop.stop();
    });
    loop.run();
    return 0;
}

/// Verifies a bundle from a file against the trust root and applies it, as if it came from the
/// broker (provisioning without network, benchmarks). Run it while the daemon is stopped: the
/// daemon reads the applied bundle at start.
int applyFile(const EdgedConfig& cfg, const std::filesystem::path& file) {
    auto text = fs::readFile(file, 64u << 20);
    if (!text) {
        std::cerr << "edged: " << text.error().what() << "\n";
        return 2;
    }
    auto state = openDeviceState(cfg);
    if (!state) return state.error();
    AsioEventLoop loop;
    SystemClock clock;
    edged::EdgeAgent agent(loop, clock, *state->store, nullptr, std::move(state->root), cfg.agent);
    if (auto st = agent.load(); !st) {
        std::cerr << "edged: " << st.error().what() << "\n";
        return 1;
    }
    if (auto st = agent.handleDesired(*text); !st) {
        std::cerr << "edged: bundle refused (" << edged::errorCodeName(st.error()) << "): "
                  << st.error().what() << "\n";
        return 1;
    }
    std::cout << "applied bundle v" << agent.applied()->version << " " << agent.applied()->bundle_digest << "\n";
    return 0;
}

/// The running daemon's view of target ("/health": connectivity, policy set; "/v1/ota"), when it
/// answers on its socket.
std::optional<nlohmann::json> liveJson(const EdgedConfig& cfg, const std::string& target) {
    http::ClientOptions options;
    options.timeout = std::chrono::milliseconds(1000);
    auto response = http::requestUnix(cfg.api_socket, "GET", target, {}, options);
    if (!response || response->status != 200) return std::nullopt;
    auto j = nlohmann::json::parse(response->body, nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
}

int status(const EdgedConfig& cfg, bool as_json) {
    auto options = storeOptions(cfg);
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
    auto last_contact = edged::loadLastContact(**store);
    if (!last_contact) {
        std::cerr << "edged: " << last_contact.error().what() << "\n";
        return 1;
    }
    AsioEventLoop loop;
    edged::GroupWriter writer(**store, loop);  // never used: the queues are only read
    edged::DurableQueue decisions(**store, writer, {"decisions", cfg.enforcement.decisions_max_bytes});
    edged::DurableQueue telemetry(**store, writer, {"telemetry", cfg.enforcement.telemetry_max_bytes});
    if (auto st = decisions.load(); !st) {
        std::cerr << "edged: decision log: " << st.error().what() << "\n";
        return 1;
    }
    if (auto st = telemetry.load(); !st) {
        std::cerr << "edged: telemetry queue: " << st.error().what() << "\n";
        return 1;
    }
    const auto live = liveJson(cfg, "/health");
    const bool online = live && live->value("online", false);
    const auto contact = std::max(*last_contact, *applied ? (*applied)->applied_at : 0);
    const std::int64_t now = SystemClock{}.unixSeconds();
    const std::int64_t offline_for = online || contact == 0 ? 0 : std::max<std::int64_t>(0, now - contact);
    nlohmann::json j = {{"device", cfg.agent.device_id}};
    j["applied"] = *applied ? edged::toJson(**applied) : nlohmann::json(nullptr);
    j["connectivity"] = {{"daemon", live ? "running" : "not answering"},
                         {"online", online},
                         {"last_contact", contact},
                         {"offline_seconds", offline_for}};
    if (live) j["policy_set"] = live->value("policy_set", "");
    j["queues"] = {{"decisions", edged::queueJson(decisions)}, {"telemetry", edged::queueJson(telemetry)}};
    // OTA: the live view (with download progress) when the daemon answers, else what LMDB holds.
    nlohmann::json ota = liveJson(cfg, "/v1/ota").value_or(nlohmann::json(nullptr));
    if (ota.is_null()) {
        ota = nlohmann::json::object();
        if (auto plan = (*store)->getOne(edged::kOtaDb, "plan"); plan && *plan) {
            ota = nlohmann::json::parse(**plan, nullptr, false);
            if (ota.is_discarded()) ota = nlohmann::json::object();
        }
        if (auto record = firmware::loadUpdateRecord(**store); record) {
            ota["firmware"] = {{"state", firmware::stateName(record->state)},
                               {"current_version", record->current_version},
                               {"target_version", record->target.version},
                               {"reason", record->reason},
                               {"last_failed_version", record->last_failed_version}};
        }
    }
    j["ota"] = ota;
    if (as_json) {
        std::cout << j.dump(2) << "\n";
        return 0;
    }
    std::cout << "device:   " << cfg.agent.device_id << "\n"
              << "daemon:   " << (live ? "running" : "not answering on " + cfg.api_socket.string()) << "\n"
              << "online:   " << (online ? "yes" : "no");
    if (!online && contact != 0) std::cout << " (last contact " << isoTime(contact) << ", " << offline_for << " s ago)";
    std::cout << "\n";
    if (live) std::cout << "policies in force: " << live->value("policy_set", "") << "\n";
    for (const auto* q : {&decisions, &telemetry}) {
        std::cout << (q == &decisions ? "decisions: " : "telemetry: ") << q->headSeq() << " recorded, "
                  << q->headSeq() - q->acked() << " not yet acknowledged, " << q->dropped()
                  << " dropped (queue full), " << q->bytes() << " bytes queued\n";
    }
    std::cout << edged::otaStatusText(ota);
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

/// What a bootloader does at power-on, for the file backend: picks the slot, counts the attempt,
/// records it as booted. The daemon must be stopped (as it is during a real boot).
int simulateBoot(const EdgedConfig& cfg) {
    if (!cfg.firmware || cfg.firmware->boot.backend != "file") {
        std::cerr << "edged: bootloader: only for firmware.backend: file\n";
        return 2;
    }
    firmware::FileBootControl boot(cfg.firmware->boot.env_file, cfg.firmware->boot.booted_file,
                                   cfg.firmware->boot.max_attempts);
    bool reset = false;
    auto slot = boot.simulateBoot(&reset);
    if (!slot) {
        std::cerr << "edged: bootloader: " << slot.error().what() << "\n";
        return 1;
    }
    if (reset) {
        std::cout << "no slot had boot attempts left: the slots of the order got "
                  << cfg.firmware->boot.max_attempts << " again\n";
    }
    std::cout << "booted slot " << firmware::slotName(*slot) << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"edged: the edge daemon"};
    app.require_subcommand(1);
    std::filesystem::path config_path;
    auto* run_cmd = app.add_subcommand("run", "run the daemon");
    run_cmd->add_option("-c,--config", config_path, "config file (docs/config.md)")->required();
    std::filesystem::path bundle_file;
    auto* apply_cmd = app.add_subcommand("apply", "verify a bundle file and apply it (daemon stopped)");
    apply_cmd->add_option("-c,--config", config_path, "config file")->required();
    apply_cmd->add_option("bundle", bundle_file, "signed bundle (JWS JSON)")->required();
    bool as_json = false;
    auto* status_cmd = app.add_subcommand("status", "print the local state (no broker needed)");
    status_cmd->add_option("-c,--config", config_path, "config file")->required();
    status_cmd->add_flag("--json", as_json, "print JSON");
    auto* boot_cmd = app.add_subcommand(
        "bootloader", "play the bootloader of the file boot-control backend (development, tests)");
    boot_cmd->add_option("-c,--config", config_path, "config file")->required();
    CLI11_PARSE(app, argc, argv);

    auto cfg = loadConfig(config_path);
    if (!cfg) {
        std::cerr << "edged: " << cfg.error().what() << "\n";
        return 2;
    }
    if (*run_cmd) return run(*cfg);
    if (*apply_cmd) return applyFile(*cfg, bundle_file);
    if (*boot_cmd) return simulateBoot(*cfg);
    return status(*cfg, as_json);
}
