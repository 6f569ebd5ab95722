// controlplane: `run` serves a fleet; `keygen` makes signing keys and the trust root for devices;
// `artifact-add` puts a file into the artifact store.
#include <charconv>
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <fmt/format.h>

#include "controlplane/artifact_store.hpp"
#include "controlplane/control_plane.hpp"
#include "security/trust_root.hpp"
#include "shared/core/config.hpp"
#include "shared/core/fs.hpp"
#include "shared/core/log.hpp"
#include "shared/http/beast/beast_server.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/mqtt/paho/paho_client.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"

namespace {

using namespace edge;

struct RunConfig {
    controlplane::Settings settings;
    std::filesystem::path state_dir;
    std::size_t store_max_bytes = std::size_t{4} << 30;
    std::string broker;
    std::string client_id;
    std::vector<std::filesystem::path> signing_keys;
    std::string listen_host = "127.0.0.1";
    int listen_port = 8080;
    log::Level log_level = log::Level::kInfo;
    /// Content-addressed artifact store, served to devices over mutual TLS (docs/config.md).
    std::filesystem::path artifacts_dir;
    std::string artifacts_host;  // empty: no device-facing listener
    int artifacts_port = 0;
    http::TlsServerOptions artifacts_tls;
    controlplane::AttestationSettings attestation;
};

/// "host:port" (port 0..65535); nullopt when malformed.
std::optional<std::pair<std::string, int>> hostPort(const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    int port = -1;
    const auto digits = std::string_view(text).substr(colon + 1);
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (ec != std::errc{} || p != digits.data() + digits.size() || port < 0 || port > 65535) return std::nullopt;
    return std::make_pair(text.substr(0, colon), port);
}

Status loadArtifactsConfig(config::ConfigFile& file, const std::filesystem::path& path, RunConfig& c) {
    if (file.has("artifacts.dir")) {
        auto dir = file.path("artifacts.dir");
        if (!dir) return fail(dir.error());
        c.artifacts_dir = *dir;
    } else {
        c.artifacts_dir = c.state_dir / "artifacts";
    }
    auto listen = file.string("artifacts.listen", "");
    if (!listen) return fail(listen.error());
    if (listen->empty()) return {};
    auto parsed = hostPort(*listen);
    if (!parsed) {
        return fail(SharedErrc::kConfig, fmt::format("{}: key 'artifacts.listen': expected host:port, got '{}'",
                                                     path.string(), *listen));
    }
    c.artifacts_host = parsed->first;
    c.artifacts_port = parsed->second;
    // Devices fetch over mutual TLS only: each needs a certificate from the client CA.
    for (auto [key, target] : {std::pair{"artifacts.tls.cert", &c.artifacts_tls.cert},
                               std::pair{"artifacts.tls.key", &c.artifacts_tls.key},
                               std::pair{"artifacts.tls.client_ca", &c.artifacts_tls.client_ca}}) {
        auto value = file.path(key);
        if (!value) return fail(std::move(value.error()).wrap("artifacts.listen needs a server certificate, its key and the devices' CA"));
        *target = *value;
    }
    return {};
}

Result<RunConfig> loadConfig(const std::filesystem::path& path) {
    auto file = config::ConfigFile::load(path);
    if (!file) return fail(file.error());
    RunConfig c;
    auto fleet = file->path("fleet_dir");
    if (!fleet) return fail(fleet.error());
    c.settings.fleet_dir = *fleet;
    auto state = file->path("state_dir");
    if (!state) return fail(state.error());
    c.state_dir = *state;
    auto broker = file->string("broker");
    if (!broker) return fail(broker.error());
    c.broker = *broker;
    auto client_id = file->string("client_id", "controlplane");
    if (!client_id) return fail(client_id.error());
    c.client_id = *client_id;
    auto prefix = file->string("topic_prefix", "edge/v1");
    if (!prefix) return fail(prefix.error());
    c.settings.topic_prefix = *prefix;
    auto keys = file->strings("signing_keys");
    if (!keys) return fail(keys.error());
    for (const auto& k : *keys) {
        std::filesystem::path p(k);
        c.signing_keys.push_back(p.is_relative() ? path.parent_path() / p : p);
    }
    auto ttl = file->duration("bundle_ttl", std::chrono::hours(24 * 7));
    if (!ttl) return fail(ttl.error());
    if (*ttl < std::chrono::minutes(1)) {
        return fail(SharedErrc::kConfig, fmt::format("{}: key 'bundle_ttl': at least 1m", path.string()));
    }
    c.settings.bundle_ttl = std::chrono::duration_cast<std::chrono::seconds>(*ttl);
    auto refresh = file->duration("refresh_interval", std::chrono::minutes(1));
    if (!refresh) return fail(refresh.error());
    c.settings.refresh_interval = *refresh;
    auto attest_enabled = file->boolean("attestation.enabled", true);
    if (!attest_enabled) return fail(attest_enabled.error());
    c.attestation.enabled = *attest_enabled;
    auto attest_interval = file->duration("attestation.interval", c.attestation.interval);
    if (!attest_interval) return fail(attest_interval.error());
    if (*attest_interval < std::chrono::seconds(1)) {
        return fail(SharedErrc::kConfig, fmt::format("{}: key 'attestation.interval': at least 1s", path.string()));
    }
    c.attestation.interval = *attest_interval;
    auto attest_deadline = file->duration("attestation.deadline", c.attestation.deadline);
    if (!attest_deadline) return fail(attest_deadline.error());
    c.attestation.deadline = *attest_deadline;
    auto attest_pcr = file->integer("attestation.pcr", 23, 0, 23);
    if (!attest_pcr) return fail(attest_pcr.error());
    c.attestation.pcr = static_cast<int>(*attest_pcr);
    // Device decision logs and telemetry accumulate here; LMDB reserves address space, not disk.
    auto store_max = file->integer("store_max_bytes", std::int64_t{4} << 30, std::int64_t{64} << 20,
                                   std::int64_t{1} << 42);
    if (!store_max) return fail(store_max.error());
    c.store_max_bytes = static_cast<std::size_t>(*store_max);
    auto listen = file->string("http.listen", "127.0.0.1:8080");
    if (!listen) return fail(listen.error());
    const auto colon = listen->rfind(':');
    int port = -1;
    if (colon != std::string::npos) {
        try {
            port = std::stoi(listen->substr(colon + 1));
        } catch (...) {
            port = -1;
        }
    }
    if (colon == std::string::npos || port < 0 || port > 65535) {
        return fail(SharedErrc::kConfig,
                    fmt::format("{}: key 'http.listen': expected host:port, got '{}'", path.string(), *listen));
    }
    c.listen_host = listen->substr(0, colon);
    c.listen_port = port;
    auto level = file->string("log_level", "info");
    if (!level) return fail(level.error());
    auto parsed_level = log::parseLevel(*level);
    if (!parsed_level) {
        return fail(SharedErrc::kConfig, fmt::format("{}: key 'log_level': {}", path.string(),
                                                     parsed_level.error().message()));
    }
    c.log_level = *parsed_level;
    if (auto st = loadArtifactsConfig(*file, path, c); !st) return fail(st.error());
    if (auto st = file->finish(); !st) return fail(st.error());
    return c;
}

int run(const std::filesystem::path& config_path) {
    auto cfg = loadConfig(config_path);
    if (!cfg) {
        std::cerr << "controlplane: " << cfg.error().what() << "\n";
        return 2;
    }
    log::init("controlplane", cfg->log_level);
    std::vector<security::PrivateKey> keys;
    for (const auto& path : cfg->signing_keys) {
        auto key = security::PrivateKey::loadFile(path);
        if (!key) {
            std::cerr << "controlplane: signing key " << path << ": " << key.error().what() << "\n";
            return 2;
        }
        keys.push_back(std::move(*key));
    }
    store::LmdbOptions store_options;
    store_options.map_size = cfg->store_max_bytes;
    auto store = store::LmdbStore::open(cfg->state_dir / "db", store_options);
    if (!store) {
        std::cerr << "controlplane: " << store.error().what() << "\n";
        return 1;
    }
    AsioEventLoop loop;
    SystemClock clock;
    mqtt::Options mqtt_options;
    mqtt_options.server_uri = cfg->broker;
    mqtt_options.client_id = cfg->client_id;
    mqtt::PahoMqttClient mqtt(loop, clock, mqtt_options);
    std::error_code mkdir_error;
    std::filesystem::create_directories(cfg->artifacts_dir, mkdir_error);
    if (mkdir_error) {
        std::cerr << "controlplane: artifacts dir " << cfg->artifacts_dir << ": " << mkdir_error.message() << "\n";
        return 1;
    }
    const controlplane::ArtifactStore artifacts(cfg->artifacts_dir);
    // A fleet may only name artifacts the store holds, with their real sizes.
    cfg->settings.artifacts = [&artifacts](std::string_view digest) { return artifacts.describe(digest); };
    controlplane::ControlPlane cp(loop, clock, **store, mqtt, std::move(keys), cfg->settings);
    controlplane::AttestationService attestation(loop, clock, **store, mqtt, cfg->settings.topic_prefix,
                                                 cfg->attestation);
    if (auto st = attestation.load(); !st) {
        std::cerr << "controlplane: " << st.error().what() << "\n";
        return 1;
    }
    cp.setAttestation(&attestation);
    if (auto st = cp.start(); !st) {
        std::cerr << "controlplane: " << st.error().what() << "\n";
        return 1;
    }
    // The operators' API (loopback) also serves artifacts, for inspection; devices use the TLS listener.
    http::BeastHttpServer server(loop, [&cp, &artifacts](const http::Request& r) {
        if (r.path.starts_with(controlplane::ArtifactStore::kPathPrefix)) return artifacts.handle(r);
        return cp.handle(r);
    });
    auto port = server.listen(cfg->listen_host, cfg->listen_port);
    if (!port) {
        std::cerr << "controlplane: " << port.error().what() << "\n";
        return 1;
    }
    log::info("HTTP API on http://{}:{}", cfg->listen_host, *port);
    http::BeastHttpServer artifact_server(loop, [&artifacts](const http::Request& r) {
        if (!r.path.starts_with(controlplane::ArtifactStore::kPathPrefix)) {
            return http::errorResponse(404, "only /v1/artifacts/<sha256> is served here");
        }
        log::debug("artifact {} requested by '{}'", r.path, r.peer_cn);
        return artifacts.handle(r);
    });
    if (!cfg->artifacts_host.empty()) {
        auto tls_port = artifact_server.listenTls(cfg->artifacts_host, cfg->artifacts_port, cfg->artifacts_tls);
        if (!tls_port) {
            std::cerr << "controlplane: artifacts: " << tls_port.error().what() << "\n";
            return 1;
        }
        log::info("artifact store {} on https://{}:{} (client certificates required)",
                  cfg->artifacts_dir.string(), cfg->artifacts_host, *tls_port);
    }

    boost::asio::signal_set signals(loop.context(), SIGINT, SIGTERM, SIGHUP);
    std::function<void(const boost::system::error_code&, int)> on_signal =
        [&](const boost::system::error_code& ec, int sig) {
            if (ec) return;
            if (sig == SIGHUP) {
                (void)cp.reload();
                signals.async_wait(on_signal);
                return;
            }
            log::info("stopping on signal {}", sig);
            server.stop();
            artifact_server.stop();
            cp.stop();
            loop.stop();
        };
    signals.async_wait(on_signal);
    loop.run();
    return 0;
}

/// Copies a file into the artifact store; prints its digest, size and the path devices fetch.
int addArtifact(const std::filesystem::path& config_path, const std::filesystem::path& file) {
    auto cfg = loadConfig(config_path);
    if (!cfg) {
        std::cerr << "controlplane: " << cfg.error().what() << "\n";
        return 2;
    }
    std::error_code ec;
    std::filesystem::create_directories(cfg->artifacts_dir, ec);
    const controlplane::ArtifactStore artifacts(cfg->artifacts_dir);
    auto digest = artifacts.add(file);
    if (!digest) {
        std::cerr << "controlplane artifact-add: " << digest.error().what() << "\n";
        return 1;
    }
    std::cout << "sha256 " << *digest << "\nsize   " << std::filesystem::file_size(file, ec) << "\npath   "
              << controlplane::ArtifactStore::kPathPrefix << *digest << "\n";
    if (auto stored = artifacts.describe(*digest); stored && stored->zstd) {
        std::cout << "zstd   decompresses to " << stored->content_size << " bytes, sha256 " << stored->content_sha256
                  << "\n";
    }
    return 0;
}

int keygen(const std::filesystem::path& dir, const std::string& alg_name, int count,
           int threshold) {
    auto alg = security::algorithmFromName(alg_name);
    if (!alg) {
        std::cerr << "controlplane keygen: " << alg.error().what() << "\n";
        return 2;
    }
    if (count < 1 || threshold < 1 || threshold > count) {
        std::cerr << "controlplane keygen: need 1 <= threshold <= count\n";
        return 2;
    }
    std::filesystem::create_directories(dir);
    std::vector<security::PublicKey> publics;
    for (int i = 1; i <= count; ++i) {
        auto key = security::PrivateKey::generate(*alg);
        if (!key) {
            std::cerr << "controlplane keygen: " << key.error().what() << "\n";
            return 1;
        }
        const auto path = dir / fmt::format("targets-{}.key.pem", i);
        if (std::filesystem::exists(path)) {
            std::cerr << "controlplane keygen: " << path << " exists; refusing to overwrite\n";
            return 1;
        }
        if (auto st = key->saveFile(path); !st) {
            std::cerr << "controlplane keygen: " << st.error().what() << "\n";
            return 1;
        }
        publics.push_back(key->publicKey());
        std::cout << "wrote " << path.string() << "\n";
    }
    const auto root = security::TrustRoot::create(publics, static_cast<std::uint32_t>(threshold));
    const auto root_path = dir / "trust-root.json";
    if (auto st = fs::writeFileAtomic(root_path, root.toJson() + "\n"); !st) {
        std::cerr << "controlplane keygen: " << st.error().what() << "\n";
        return 1;
    }
    std::cout << "wrote " << root_path.string() << " (threshold " << threshold << ")\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"edge control plane: fleet directory -> signed bundles over MQTT"};
    app.require_subcommand(1);
    std::filesystem::path config_path;
    auto* run_cmd = app.add_subcommand("run", "serve the fleet");
    run_cmd->add_option("-c,--config", config_path, "config file (docs/config.md)")->required();

    std::filesystem::path key_dir;
    std::string alg = "ed25519";
    int count = 1;
    int threshold = 1;
    auto* keygen_cmd = app.add_subcommand("keygen", "generate targets signing keys and a trust root");
    keygen_cmd->add_option("-d,--dir", key_dir, "output folder")->required();
    keygen_cmd->add_option("--alg", alg, "ed25519 or es256")->capture_default_str();
    keygen_cmd->add_option("--count", count, "number of keys")->capture_default_str();
    keygen_cmd->add_option("--threshold", threshold, "signatures required")->capture_default_str();

    std::filesystem::path artifact_file;
    auto* artifact_cmd = app.add_subcommand("artifact-add", "copy a file into the artifact store under its sha256");
    artifact_cmd->add_option("-c,--config", config_path, "config file (docs/config.md)")->required();
    artifact_cmd->add_option("file", artifact_file, "firmware image or model")->required()->check(CLI::ExistingFile);

    CLI11_PARSE(app, argc, argv);
    if (*run_cmd) return run(config_path);
    if (*artifact_cmd) return addArtifact(config_path, artifact_file);
    return keygen(key_dir, alg, count, threshold);
}
