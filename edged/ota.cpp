#include "edged/ota.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <utility>

#include "firmware/command.hpp"
#include "shared/compress/zstd_file.hpp"
#include "shared/core/log.hpp"
#include "shared/core/text.hpp"
#include "shared/policy/engine.hpp"
#include "shared/policy/value.hpp"

namespace edge::edged {

namespace {

using nlohmann::json;

constexpr std::string_view kOutcomeKey = "plan";
constexpr std::string_view kFirmwareRequestKey = "firmware_request";

json firmwareJson(const firmware::UpdateRecord& r) {
    return {{"state", firmware::stateName(r.state)},
            {"current_version", r.current_version},
            {"target_version", r.target.version},
            {"target_slot", std::string(firmware::slotName(r.target_slot))},
            {"reason", r.reason},
            {"last_failed_version", r.last_failed_version}};
}

/// Which bundle asked last for a firmware version (the request is stored when its install
/// starts): a failed version is tried again only for a newer bundle with other content.
struct FirmwareRequest {
    std::uint64_t bundle_version = 0;
    std::string version;
    std::string content;  // the bundle's content digest; "" in records from before it was kept
};

std::optional<FirmwareRequest> loadFirmwareRequest(const store::Store& store) {
    auto stored = store.getOne(kOtaDb, kFirmwareRequestKey);
    if (!stored || !*stored) return std::nullopt;
    const auto j = json::parse(**stored, nullptr, false);
    if (!j.is_object()) return std::nullopt;
    try {
        return FirmwareRequest{j.value("bundle_version", std::uint64_t{0}), j.value("version", ""),
                               j.value("content", "")};
    } catch (const json::exception&) {
        return std::nullopt;  // mistyped: as if none
    }
}

/// The request r is the bundle b asking (a re-signed copy included).
bool askedBy(const FirmwareRequest& r, const bundle::Bundle& b) {
    return b.version <= r.bundle_version || (!r.content.empty() && r.content == b.contentDigest());
}

}  // namespace

OtaManager::OtaManager(EventLoop& loop, const Clock& clock, store::Store& store, OtaSettings settings)
    : loop_(loop), clock_(clock), store_(store), settings_(std::move(settings)) {
    status_ = {{"bundle_version", nullptr},
               {"domains", {{"policies", "none"}, {"models", "none"}, {"firmware", "none"}}},
               {"reasons", json::object()},
               {"download", nullptr},
               {"firmware", nullptr}};
    loadOutcome();
}

OtaManager::~OtaManager() { stop(); }

firmware::UpdaterHooks OtaManager::updaterHooks() {
    firmware::UpdaterHooks hooks;
    hooks.on_transition = [this](const firmware::UpdateRecord& r) {
        {
            const std::lock_guard lock(mu_);
            status_["firmware"] = firmwareJson(r);
        }
        log::info("firmware update: {} ({} -> {}){}", firmware::stateName(r.state), r.current_version,
                  r.target.version, r.reason.empty() ? "" : ": " + r.reason);
        // The transition is already persisted: whatever the command does (even stop the
        // machine), a restart resumes from this state.
        runStateCommand(settings_.state_command, {std::string(firmware::stateName(r.state))});
        changed();
    };
    hooks.progress = [this](std::uint64_t written, std::uint64_t total) {
        const std::lock_guard lock(mu_);
        status_["install"] = {{"written", written}, {"total", total}};
    };
    return hooks;
}

void OtaManager::runStateCommand(const std::vector<std::string>& command, std::vector<std::string> args) const {
    if (command.empty()) return;
    auto argv = command;
    argv.insert(argv.end(), std::make_move_iterator(args.begin()), std::make_move_iterator(args.end()));
    firmware::CommandOptions options;
    options.timeout = settings_.state_timeout;
    auto ran = firmware::runCommand(clock_, argv, options);
    if (!ran) {
        log::warn("state command: {}", ran.error().what());
    } else if (ran->exit_code != 0) {
        log::warn("state command {} exited with {}", firmware::describeCommand(argv), ran->exit_code);
    }
}

std::function<void(std::string_view, const ModelVersion&)> OtaManager::modelStepHook() {
    return [this](std::string_view step, const ModelVersion& m) {
        runStateCommand(settings_.model_state_command, {std::string(step), m.name, m.version});
    };
}

void OtaManager::start(std::shared_ptr<const bundle::Bundle> applied, firmware::HealthCheck health) {
    if (applied) {
        const std::lock_guard lock(mu_);
        pending_ = Plan{std::move(applied)};
    }
    if (parts_.updater != nullptr) {
        parts_.updater->setImageStreamer([this](const firmware::UpdateRecord& r, security::StreamWriter& out) {
            return streamFirmware(r, out);
        });
    }
    worker_ = std::thread([this, health = std::move(health)] { run(health); });
}

void OtaManager::bundleApplied(std::shared_ptr<const bundle::Bundle> bundle) {
    {
        const std::lock_guard lock(mu_);
        pending_ = Plan{std::move(bundle)};
    }
    cv_.notify_all();
}

void OtaManager::stop() {
    {
        const std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
}

bool OtaManager::stopRequested() {
    const std::lock_guard lock(mu_);
    return stopping_;
}

json OtaManager::statusJson() const {
    json out;
    {
        const std::lock_guard lock(mu_);
        out = status_;
    }
    if (parts_.models != nullptr) out["models"] = parts_.models->list()["models"];
    return out;
}

void OtaManager::changed() {
    if (on_change_) loop_.post(on_change_);
}

void OtaManager::setDomain(const std::string& domain, const std::string& state, const std::string& reason) {
    if (!reason.empty()) log::warn("{}: {}: {}", domain, state, reason);
    {
        const std::lock_guard lock(mu_);
        status_["domains"][domain] = state;
        if (reason.empty()) {
            status_["reasons"].erase(domain);
        } else {
            status_["reasons"][domain] = reason;
        }
    }
    changed();
}

void OtaManager::loadOutcome() {
    auto stored = store_.getOne(kOtaDb, kOutcomeKey);
    if (!stored || !*stored) return;
    auto j = json::parse(**stored, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        log::warn("ota: stored plan outcome is unreadable; the plan runs again");
        return;
    }
    status_["bundle_version"] = j.value("bundle_version", json(nullptr));
    content_ = j.value("content", std::string());
    if (j.contains("domains")) status_["domains"] = j["domains"];
    if (j.contains("reasons")) status_["reasons"] = j["reasons"];
}

void OtaManager::persistOutcome() {
    json outcome;
    {
        const std::lock_guard lock(mu_);
        outcome = {{"bundle_version", status_["bundle_version"]},
                   {"content", content_},
                   {"domains", status_["domains"]},
                   {"reasons", status_["reasons"]}};
    }
    if (auto st = store_.putOne(kOtaDb, kOutcomeKey, jsonText(outcome)); !st) {
        log::warn("ota: plan outcome not stored: {}", st.error().what());
    }
}

void OtaManager::run(firmware::HealthCheck health) {
    if (parts_.updater != nullptr) {
        {
            const std::lock_guard lock(mu_);
            status_["firmware"] = firmwareJson(parts_.updater->record());
        }
        // Finish, commit or roll back whatever a reboot or a crash interrupted, before any plan.
        const auto before = parts_.updater->record().state;
        if (auto st = parts_.updater->afterBoot(health); !st) {
            log::error("firmware: after boot: {}", st.error().what());
        }
        const auto& r = parts_.updater->record();
        {
            const std::lock_guard lock(mu_);
            status_["firmware"] = firmwareJson(r);
            const auto domain = status_["domains"].value("firmware", std::string("none"));
            // A committed slot the bootloader left since (Committed -> Failed) fails a plan that
            // had its firmware done.
            const bool fell_back = before == firmware::UpdateState::kCommitted &&
                                   r.state == firmware::UpdateState::kFailed;
            if (firmware::isFinal(r.state) &&
                (domain == "rebooting" || domain == "installing" || (fell_back && domain == "done"))) {
                const bool ok = r.state == firmware::UpdateState::kCommitted;
                status_["domains"]["firmware"] = ok ? "done" : "failed";
                if (ok) {
                    status_["reasons"].erase("firmware");
                } else {
                    status_["reasons"]["firmware"] = r.reason;
                }
            }
        }
        if (r.state == firmware::UpdateState::kRebooting) setDomain("firmware", "rebooting");
        persistOutcome();
        changed();
    }
    removeUnwantedDownloads();
    reportRunning();
    std::unique_lock lock(mu_);
    std::optional<Plan> retry;
    while (!stopping_) {
        if (!pending_ && retry) {
            cv_.wait_for(lock, settings_.retry_interval, [this] { return stopping_ || pending_.has_value(); });
            if (stopping_) break;
            if (!pending_) pending_ = std::move(retry);
            retry.reset();
        }
        cv_.wait(lock, [this] { return stopping_ || pending_.has_value(); });
        if (stopping_) break;
        Plan plan = std::move(*pending_);
        pending_.reset();
        lock.unlock();
        const bool finished = execute(*plan.bundle);
        lock.lock();
        if (!finished && !pending_) retry = std::move(plan);
    }
}

void OtaManager::removeUnwantedDownloads() {
    // Kept: what the applied bundle still asks for and this device does not have yet, so that an
    // interrupted download goes on from its .part after a restart, and a whole one is not fetched
    // again. A firmware image an update in progress installs from is kept as well.
    std::shared_ptr<const bundle::Bundle> wanted;
    {
        const std::lock_guard lock(mu_);
        if (pending_) wanted = pending_->bundle;
    }
    std::vector<std::string> keep;
    if (wanted) {
        for (const auto& a : wanted->artifacts) {
            keep.push_back(fmt::format("{}-{}", bundle::kindName(a.kind), a.sha256));
        }
    }
    if (parts_.updater != nullptr) {
        const auto* r = &parts_.updater->record();
        if (!firmware::isFinal(r->state) && !r->image_path.empty()) {
            keep.push_back(std::filesystem::path(r->image_path).filename().string());
        }
        // Installed, or failed under this very bundle (which will not try it again): not needed.
        // A version that failed under an older bundle may be on its way again (a cached retry
        // whose download was cut): kept.
        const auto* fw = wanted ? wanted->firmware() : nullptr;
        const auto request = loadFirmwareRequest(store_);
        const bool failed_here = fw != nullptr && fw->version == r->last_failed_version && request &&
                                 request->version == fw->version && askedBy(*request, *wanted);
        if (fw != nullptr && firmware::isFinal(r->state) && (fw->version == r->current_version || failed_here)) {
            std::erase(keep, fmt::format("firmware-{}", fw->sha256));
        }
    }
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(settings_.downloads_dir, ec)) {
        const auto name = entry.path().filename().string();
        if (!name.starts_with("firmware-") && !name.starts_with("model-")) continue;
        const bool kept = std::any_of(keep.begin(), keep.end(), [&](const std::string& k) {
            // The file itself, or its .part, .zst or .zst.part.
            return name == k || (name.starts_with(k) && name[k.size()] == '.');
        });
        if (kept) continue;
        std::error_code removed;
        std::filesystem::remove(entry.path(), removed);
        if (!removed) log::info("ota: removed the download '{}', no longer needed", name);
    }
}

void OtaManager::reportRunning() {
    if (parts_.updater != nullptr) {
        const auto& r = parts_.updater->record();
        if (r.state == firmware::UpdateState::kCommitted && !r.target.sha256.empty()) {
            installed("firmware", "firmware", r.target.version, r.target.sha256);
        }
    }
    if (parts_.models != nullptr) {
        const auto listed = parts_.models->list();
        for (const auto& m : listed.value("models", json::array())) {
            if (!m.contains("active") || !m["active"].is_object()) continue;
            installed("model", m.value("name", ""), m["active"].value("version", ""), m["active"].value("sha256", ""));
        }
    }
}

bool OtaManager::execute(const bundle::Bundle& b) {
    // A bundle re-signed with the same content (the control plane does so before one expires)
    // is the same plan: it goes on where it is, and what failed is not tried again.
    const auto content = b.contentDigest();
    bool same_plan = false;
    bool reissued = false;
    {
        const std::lock_guard lock(mu_);
        same_plan = status_["bundle_version"] == json(b.version);
        reissued = !same_plan && !content_.empty() && content_ == content;
        if (reissued) status_["bundle_version"] = b.version;
        content_ = content;
    }
    if (reissued) {
        log::info("ota: bundle v{} has the content of the plan in force: nothing new to apply", b.version);
        persistOutcome();
        changed();
        same_plan = true;
    }
    auto domainState = [this](const char* d) {
        const std::lock_guard lock(mu_);
        return status_["domains"].value(d, std::string("none"));
    };
    if (!same_plan) {
        {
            const std::lock_guard lock(mu_);
            status_["bundle_version"] = b.version;
            // The agent holds a bundle's policies back until its models are settled.
            const bool models = std::any_of(b.artifacts.begin(), b.artifacts.end(), [](const bundle::Artifact& a) {
                return a.kind == bundle::ArtifactKind::kModel;
            });
            status_["domains"] = {{"policies", models ? "pending" : "done"}, {"models", "pending"}, {"firmware", "pending"}};
            status_["reasons"] = json::object();
        }
        persistOutcome();
        changed();
    }
    bool transient = false;
    // Models (and the policies the agent already switched) before firmware, which reboots.
    const auto models = domainState("models");
    if (models != "done" && models != "failed" && models != "none") {
        if (auto err = doModels(b)) {
            setDomain("models", "retrying", *err);
            transient = true;
        }
        persistOutcome();
    }
    if (transient || stopRequested()) return false;
    if (on_models_settled_) loop_.post([fn = on_models_settled_, version = b.version] { fn(version); });
    if (domainState("policies") != "done") {
        setDomain("policies", "done");
        persistOutcome();
    }
    const auto fw = domainState("firmware");
    if (fw != "done" && fw != "failed" && fw != "none" && fw != "rebooting") {
        if (auto err = doFirmware(b)) {
            setDomain("firmware", "retrying", *err);
            transient = true;
        }
        persistOutcome();
    }
    return !transient;
}

bool OtaManager::artifactStoreConfigured() const {
    return parts_.fetcher != nullptr && !settings_.artifact_base.empty();
}

FetchProgressFn OtaManager::progressReporter(const std::string& kind, const std::string& name,
                                             const std::string& version) {
    return [this, kind, name, version, started = clock_.now()](const FetchProgress& p) {
        const auto elapsed = std::chrono::duration<double>(clock_.now() - started).count();
        // This run's bytes: all of done when the server started the file over (a 200 to a range
        // request), which leaves done below resumed_from.
        const std::uint64_t fresh = p.done >= p.resumed_from ? p.done - p.resumed_from : p.done;
        // No rate from the first 100 ms; bounded so that the conversions below stay defined.
        const double rate = elapsed >= 0.1 ? std::min(static_cast<double>(fresh) / elapsed, 1e15) : 0.0;
        const std::uint64_t left = p.total > p.done ? p.total - p.done : 0;
        json d = {{"kind", kind},       {"name", name},     {"version", version},
                  {"done", p.done},     {"total", p.total}, {"resumed_from", p.resumed_from},
                  {"rate_bytes_per_s", static_cast<std::uint64_t>(rate)}};
        d["eta_s"] = rate > 0 ? json(static_cast<std::uint64_t>(std::min(static_cast<double>(left) / rate, 1e15)))
                              : json(nullptr);
        const std::lock_guard lock(mu_);
        status_["download"] = std::move(d);
    };
}

std::expected<void, firmware::StreamFailure> OtaManager::streamFirmware(const firmware::UpdateRecord& r,
                                                                        security::StreamWriter& out) {
    if (!artifactStoreConfigured()) {
        return std::unexpected(firmware::StreamFailure{Error(SharedErrc::kConfig, kNoArtifactStore), true});
    }
    const ArtifactRef ref{settings_.artifact_base + r.image_url, r.target.sha256, r.target.size};
    log::info("streaming firmware {} ({} bytes) into the inactive slot{}", r.target.version, ref.size,
              out.size() > 0 ? fmt::format(", from byte {}", out.size()) : "");
    auto st = parts_.fetcher->stream(ref, out, progressReporter("firmware", firmware_name_, r.target.version));
    {
        const std::lock_guard lock(mu_);
        status_["download"] = nullptr;
    }
    if (st) return {};
    const auto code = st.error().code();
    // What the store sends is not what the bundle binds: final, like a wrong digest. Anything
    // else (the network, the store away or failing) is tried again later from the checkpoint.
    // The slot itself failing (kIo: a write, a sync) is final too, as installImage's I/O errors
    // are. A stop (shutdown) is not: the next start goes on from the checkpoint.
    const bool final = code == FetchErrc::kSize || code == FetchErrc::kDigest ||
                       code == FetchErrc::kInvalidArgument || code == FetchErrc::kIo;
    return std::unexpected(firmware::StreamFailure{std::move(st.error()), !final});
}

Status OtaManager::download(const bundle::Artifact& a, const std::filesystem::path& dest) {
    if (!artifactStoreConfigured()) return fail(SharedErrc::kConfig, kNoArtifactStore);
    std::error_code ec;
    std::filesystem::create_directories(settings_.downloads_dir, ec);
    const std::string kind(bundle::kindName(a.kind));
    const auto progress = progressReporter(kind, a.name, a.version);
    // A zstd artifact is fetched as the compressed file (bound by its own digest and size), then
    // decompressed, bounded and hashed, into dest.
    const bool zstd = a.compression == "zstd";
    const auto fetched = zstd ? std::filesystem::path(dest.string() + ".zst") : dest;
    const auto stop = [this] { return stopRequested(); };
    if (holdsArtifact(dest, a.sha256, a.size, stop)) {
        log::info("{} {} {}: the whole download is already here ('{}')", kind, a.name, a.version, dest.string());
        if (zstd) std::filesystem::remove(fetched, ec);  // unpacked before a crash
        return {};
    }
    const ArtifactRef ref{settings_.artifact_base + a.url, zstd ? a.transfer_sha256 : a.sha256,
                          zstd ? a.transfer_size : a.size};
    if (zstd && holdsArtifact(fetched, ref.sha256, ref.size, stop)) {
        log::info("{} {} {}: the whole zstd file is already here ('{}')", kind, a.name, a.version, fetched.string());
    } else {
        log::info("downloading {} {} {} ({} bytes{})", kind, a.name, a.version, ref.size, zstd ? ", zstd" : "");
        auto st = parts_.fetcher->fetch(ref, fetched, progress);
        {
            const std::lock_guard lock(mu_);
            status_["download"] = nullptr;
        }
        if (!st) return fail(std::move(st.error()).wrap(fmt::format("download {} {} {}", kind, a.name, a.version)));
    }
    if (zstd) {
        auto unpacked = compress::decompressZstd(fetched, dest, a.sha256, a.size);
        if (!unpacked && unpacked.error().code() == SharedErrc::kIo) {
            // The disk (full, failing), not the artifact: tried again later from the kept .zst.
            return fail(std::move(unpacked.error()).wrap(fmt::format("unpack {} {} {}", kind, a.name, a.version)));
        }
        std::filesystem::remove(fetched, ec);
        if (!unpacked) {
            // Not what the bundle binds (corrupt, too large, another digest): final for this
            // bundle, like a wrong digest.
            return fail(FetchErrc::kDigest, fmt::format("{} {} {}: {}", kind, a.name, a.version, unpacked.error().what()));
        }
    }
    return {};
}

Status OtaManager::provenanceAllows(const bundle::Bundle& b, const bundle::Artifact& a) const {
    const auto& entry = b.enforcement.provenance_entrypoint;
    std::vector<policy::ModuleSource> modules;
    for (const auto& [file, text] : b.policies) modules.push_back({file, text});
    auto compiled = policy::Policy::compile(modules);
    if (!compiled) return fail(std::move(compiled.error()).wrap("provenance policy"));
    auto query = (*compiled)->prepare(entry);
    if (!query) return fail(std::move(query.error()).wrap("provenance entry point " + entry));
    const json input = {{"model",
                         {{"name", a.name}, {"version", a.version}, {"sha256", a.sha256},
                          {"size", a.size}, {"provenance", a.provenance}}}};
    auto input_value = policy::parseJson(input.dump());
    if (!input_value) return fail(std::move(input_value.error()).wrap("provenance input"));
    auto data = policy::parseJson(b.data.dump());
    if (!data) return fail(std::move(data.error()).wrap("bundle data"));
    policy::EvalOptions options;
    options.input = std::move(*input_value);
    options.data = std::move(*data);
    options.timeout = std::chrono::seconds(1);
    auto result = query->evalValue(options);
    if (!result) return fail(std::move(result.error()).wrap("provenance policy " + entry));
    // Secure default: a bundle that ships models must say what provenance it accepts.
    if (!*result) return fail(SharedErrc::kNotFound, fmt::format("{} is undefined: no provenance policy", entry));
    const auto& deny = **result;
    if ((deny.isSet() || deny.isArray()) && deny.size() == 0) return {};
    return fail(SharedErrc::kInvalidArgument, fmt::format("denied by {}: {}", entry, deny.toJson()));
}

std::optional<std::string> OtaManager::doModels(const bundle::Bundle& b) {
    std::vector<const bundle::Artifact*> wanted;
    for (const auto& a : b.artifacts) {
        if (a.kind == bundle::ArtifactKind::kModel) wanted.push_back(&a);
    }
    if (wanted.empty()) {
        setDomain("models", "none");
        return std::nullopt;
    }
    if (parts_.models == nullptr) {
        setDomain("models", "failed", "this device has no model store");
        return std::nullopt;
    }
    // Digests the store already holds, staged (verified by an earlier pass that then stopped)
    // or kept as a previous version: not downloaded again.
    std::set<std::pair<std::string, std::string>> held;
    for (const auto& m : parts_.models->list().value("models", json::array())) {
        for (const char* group : {"staged", "previous"}) {
            for (const auto& v : m.value(group, json::array())) {
                held.emplace(m.value("name", ""), v.value("sha256", ""));
            }
        }
    }
    // First every model's bytes, verified and staged; only then does any of them switch, so a
    // download that fails half-way leaves every model as it was.
    std::vector<std::string> failures;
    std::vector<const bundle::Artifact*> to_switch;
    for (const auto* a : wanted) {
        if (stopRequested()) return "stopped";
        auto active = parts_.models->active(a->name);
        if (active && *active && (*active)->sha256 == a->sha256) continue;  // already in force
        const ModelVersion version{a->name, a->version, a->sha256, a->size, a->provenance, 0};
        if (auto valid = ModelStore::validate(version); !valid) {
            // The store would refuse it after the download: say so before fetching anything.
            failures.push_back(fmt::format("model {}: {}", a->name, valid.error().what()));
            continue;
        }
        // Policy before bytes: a denied model is never downloaded.
        if (auto allowed = provenanceAllows(b, *a); !allowed) {
            const auto reason = fmt::format("model {} {}: {}", a->name, a->version, allowed.error().what());
            log::warn("{}", reason);
            (void)parts_.models->reject(version, allowed.error().what());
            failures.push_back(reason);
            continue;
        }
        if (!held.contains({a->name, a->sha256})) {
            setDomain("models", "downloading");
            const auto file = settings_.downloads_dir / fmt::format("model-{}", a->sha256);
            if (auto st = download(*a, file); !st) {
                // Digest or size errors mean the store serves something else: final for this bundle.
                if (st.error().code().category() == fetchCategory() &&
                    (st.error().code() == FetchErrc::kDigest || st.error().code() == FetchErrc::kSize)) {
                    (void)parts_.models->reject(version, st.error().what());
                    failures.push_back(st.error().what());
                    continue;
                }
                return st.error().what();
            }
            if (auto st = parts_.models->stage(version, file); !st) {
                // The disk or the store (full, failing): tried again later, from the kept file
                // (or, when it had already moved into the model store, from a new download).
                if (st.error().code() == ModelErrc::kIo || st.error().code() == SharedErrc::kStore) {
                    return st.error().what();
                }
                std::error_code ec;
                std::filesystem::remove(file, ec);
                failures.push_back(fmt::format("model {} {}: stage: {}", a->name, a->version, st.error().what()));
                continue;
            }
        }
        to_switch.push_back(a);
    }
    if (!to_switch.empty()) setDomain("models", "activating");
    for (const auto* a : to_switch) {
        if (stopRequested()) return "stopped";
        auto outcome = parts_.models->activate(a->name, a->sha256);
        if (!outcome) {
            failures.push_back(fmt::format("model {} {}: activate: {}", a->name, a->version, outcome.error().what()));
        } else if (outcome->rolled_back) {
            failures.push_back(fmt::format("model {} {}: not ready, rolled back: {}", a->name, a->version,
                                           outcome->reason));
        } else {
            log::info("model {} {} active", a->name, a->version);
            installed("model", a->name, a->version, a->sha256);
        }
    }
    if (failures.empty()) {
        setDomain("models", "done");
    } else {
        std::string reason;
        for (const auto& f : failures) reason += (reason.empty() ? "" : "; ") + f;
        setDomain("models", "failed", reason);
    }
    return std::nullopt;
}

std::optional<std::string> OtaManager::doFirmware(const bundle::Bundle& b) {
    const auto* fw = b.firmware();
    if (fw != nullptr) firmware_name_ = fw->name;
    // A streamed install that a transient failure or a restart stopped: go on with it when this
    // bundle asks for the same image, else stop it (another image, or none, is wanted now).
    if (auto* u = parts_.updater;
        u != nullptr && u->record().state == firmware::UpdateState::kInstalling && !u->record().image_url.empty()) {
        const auto& r = u->record();
        if (fw != nullptr && r.target.sha256 == fw->sha256 && r.target.version == fw->version) {
            setDomain("firmware", "downloading");
            return firmwareStarted(u->continueInstall(), {});
        }
        const auto why = fw != nullptr ? fmt::format("superseded by firmware {}", fw->version)
                                       : fmt::format("bundle v{} asks for no firmware", b.version);
        // Stopped, not failed: a later bundle that asks for this image again, even with the
        // content of the one that started it, installs it. The request goes first: a crash
        // between the two leaves Installing without it, and the next pass aborts again.
        if (auto st = store_.write([](store::WriteTxn& txn) { return txn.del(kOtaDb, kFirmwareRequestKey); }); !st) {
            return st.error().what();
        }
        if (auto st = u->abort(why); !st) return st.error().what();
    }
    if (fw == nullptr) {
        setDomain("firmware", "none");
        return std::nullopt;
    }
    auto* updater = parts_.updater;
    if (updater == nullptr) {
        setDomain("firmware", "failed", "firmware updates are not configured on this device (firmware.*)");
        return std::nullopt;
    }
    const auto& r = updater->record();
    if (!firmware::isFinal(r.state)) {
        setDomain("firmware", "rebooting");
        return std::nullopt;
    }
    if (fw->version == r.current_version) {
        setDomain("firmware", "done");
        return std::nullopt;
    }
    // The version that failed last is tried again only for a newer bundle, with other content,
    // than the one that asked for it then.
    bool retry_failed = false;
    if (fw->version == r.last_failed_version) {
        const auto request = loadFirmwareRequest(store_);
        // Newer means newer content too: a re-signed copy of the same bundle does not ask again.
        if (request && request->version == fw->version && askedBy(*request, b)) {
            setDomain("firmware", "failed",
                      fmt::format("firmware {} failed before ({}); a newer bundle with other content must ask for it again",
                                  fw->version, r.reason));
            return std::nullopt;
        }
        retry_failed = true;
    }
    setDomain("firmware", "downloading");
    const json request = {{"bundle_version", b.version}, {"version", fw->version}, {"content", b.contentDigest()}};
    if (settings_.stream_firmware && fw->compression.empty()) {
        if (!artifactStoreConfigured()) return std::string(kNoArtifactStore);  // nothing started
        if (auto st = store_.putOne(kOtaDb, kFirmwareRequestKey, jsonText(request)); !st) return st.error().what();
        // The image goes straight into the inactive slot; Installing is persisted before its
        // first byte, and the slot is armed only once its size and digest are right.
        return firmwareStarted(updater->startStreamed({fw->version, fw->sha256, fw->size}, fw->url, retry_failed), {});
    }
    const auto file = settings_.downloads_dir / fmt::format("firmware-{}", fw->sha256);
    if (auto st = download(*fw, file); !st) {
        if (st.error().code().category() == fetchCategory() &&
            (st.error().code() == FetchErrc::kDigest || st.error().code() == FetchErrc::kSize)) {
            setDomain("firmware", "failed", st.error().what());
            return std::nullopt;
        }
        return st.error().what();
    }
    if (stopRequested()) return "stopped";
    if (auto st = store_.putOne(kOtaDb, kFirmwareRequestKey, jsonText(request)); !st) return st.error().what();
    setDomain("firmware", "installing");
    // Persist "rebooting" first: once the reboot is requested the process may stop at any time,
    // and after it the plan is finished by afterBoot(), not repeated.
    return firmwareStarted(updater->start({fw->version, fw->sha256, fw->size}, file, retry_failed), file);
}

std::optional<std::string> OtaManager::firmwareStarted(const Status& started, const std::filesystem::path& file) {
    const auto& r = parts_.updater->record();
    if (!started && r.state == firmware::UpdateState::kInstalling) {
        return started.error().what();  // transient (streaming): the update goes on later
    }
    if (!started) {
        std::error_code ec;
        if (!file.empty()) std::filesystem::remove(file, ec);
        setDomain("firmware", "failed", r.reason.empty() ? started.error().what() : r.reason);
        return std::nullopt;
    }
    setDomain("firmware", "rebooting");
    return std::nullopt;
}

std::string otaStatusText(const nlohmann::json& ota) {
    std::ostringstream out;
    if (ota.contains("domains") && ota["domains"].is_object()) {
        out << "plan:     bundle v" << ota.value("bundle_version", nlohmann::json(nullptr)).dump();
        for (const auto& [domain, state] : ota["domains"].items()) {
            out << ", " << domain << " " << (state.is_string() ? state.get<std::string>() : state.dump());
        }
        out << "\n";
        if (ota.contains("reasons")) {
            for (const auto& [domain, reason] : ota["reasons"].items()) {
                out << "  " << domain << ": " << (reason.is_string() ? reason.get<std::string>() : reason.dump()) << "\n";
            }
        }
    }
    if (const auto d = ota.find("download"); d != ota.end() && d->is_object()) {
        const auto done = d->value("done", std::uint64_t{0});
        const auto total = d->value("total", std::uint64_t{0});
        out << "download: " << d->value("kind", "") << " " << d->value("name", "") << " " << d->value("version", "")
            << ": " << done << " / " << total << " bytes (" << (total ? done * 100 / total : 0) << "%), "
            << d->value("rate_bytes_per_s", std::uint64_t{0}) / 1024 << " KiB/s, ETA "
            << (d->contains("eta_s") && (*d)["eta_s"].is_number() ? (*d)["eta_s"].dump() + " s" : "unknown") << "\n";
    }
    if (const auto f = ota.find("firmware"); f != ota.end() && f->is_object()) {
        const auto running = f->value("current_version", "");
        out << "firmware: " << f->value("state", "") << ", running "
            << (running.empty() ? std::string("the factory image") : running)
            << (f->value("target_version", "").empty() ? "" : ", target " + f->value("target_version", ""));
        if (!f->value("reason", "").empty()) out << " (" << f->value("reason", "") << ")";
        out << "\n";
    }
    return out.str();
}

}  // namespace edge::edged
