#include "edged/model_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "firmware/command.hpp"
#include "shared/core/log.hpp"
#include "shared/core/text.hpp"

namespace edge::edged {

namespace {

constexpr std::string_view kDb = "models";
constexpr int kSchema = 1;

class ModelCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "edge.models"; }
    std::string message(int c) const override {
        switch (static_cast<ModelErrc>(c)) {
            case ModelErrc::kInvalidArgument:
                return "invalid argument";
            case ModelErrc::kNotStaged:
                return "model version not staged";
            case ModelErrc::kSize:
                return "model size mismatch";
            case ModelErrc::kIo:
                return "i/o error";
            case ModelErrc::kReadiness:
                return "model readiness check failed";
            case ModelErrc::kState:
                return "model store state error";
        }
        return "unknown model store error";
    }
};

std::unexpected<Error> ioError(std::string_view what, const std::filesystem::path& path,
                               int err = errno) {
    return fail(ModelErrc::kIo, fmt::format("{} '{}': {}", what, path.string(), std::strerror(err)));
}

/// Text from outside, shortened and made printable for error messages.
std::string shown(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 80)) {
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    if (text.size() > 80) out += "...";
    return out;
}

bool validName(std::string_view name) {
    if (name.empty() || name.size() > 64 || name.front() == '.') return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
    });
}

bool validDigest(std::string_view sha) {
    return sha.size() == 64 && std::all_of(sha.begin(), sha.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

bool validVersion(std::string_view version) {
    return !version.empty() && version.size() <= 128 &&
           std::all_of(version.begin(), version.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

Status checkName(std::string_view name) {
    if (validName(name)) return {};
    return fail(ModelErrc::kInvalidArgument,
                fmt::format("model name '{}' is not [A-Za-z0-9._-]{{1,64}} (not starting with '.')",
                            shown(name)));
}

Status checkDigest(std::string_view sha) {
    if (validDigest(sha)) return {};
    return fail(ModelErrc::kInvalidArgument,
                fmt::format("model digest '{}' is not 64 lowercase hex characters", shown(sha)));
}

Status checkVersion(const ModelVersion& m) {
    if (auto st = checkName(m.name); !st) return st;
    if (auto st = checkDigest(m.sha256); !st) return st;
    if (!validVersion(m.version)) {
        return fail(ModelErrc::kInvalidArgument,
                    fmt::format("model version '{}' is not 1..128 printable characters",
                                shown(m.version)));
    }
    if (!m.provenance.is_object()) {
        return fail(ModelErrc::kInvalidArgument, "model provenance is not a JSON object");
    }
    return {};
}

Status fsyncPath(const std::filesystem::path& path, bool directory) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
    if (fd < 0) return ioError("open", path);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return ioError("fsync", path, err);
    return {};
}

/// The regular file at path (not following a symlink), if it has exactly size bytes.
bool regularOfSize(const std::filesystem::path& path, std::uint64_t size) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           static_cast<std::uint64_t>(st.st_size) == size;
}

std::string linkTarget(std::string_view sha256) { return fmt::format("../blobs/{}", sha256); }

/// The target of the symlink at path; nullopt when it is missing or not a symlink.
std::optional<std::string> readLink(const std::filesystem::path& path) {
    char buf[256];
    const auto n = ::readlink(path.c_str(), buf, sizeof buf);
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof buf) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
}

nlohmann::json versionJson(const ModelVersion& m) {
    return {{"name", m.name},           {"version", m.version},
            {"sha256", m.sha256},       {"size", m.size},
            {"provenance", m.provenance}, {"activated_at", m.activated_at}};
}

ModelVersion parseVersion(const nlohmann::json& j) {
    ModelVersion m;
    m.name = j.at("name").get<std::string>();
    m.version = j.at("version").get<std::string>();
    m.sha256 = j.at("sha256").get<std::string>();
    m.size = j.at("size").get<std::uint64_t>();
    m.provenance = j.at("provenance");
    m.activated_at = j.at("activated_at").get<std::int64_t>();
    if (!validName(m.name) || !validDigest(m.sha256) || !m.provenance.is_object()) {
        throw std::invalid_argument("invalid model version " + shown(m.name));
    }
    return m;
}

std::optional<ModelVersion> parseOptionalVersion(const nlohmann::json& j) {
    if (j.is_null()) return std::nullopt;
    return parseVersion(j);
}

nlohmann::json optionalJson(const std::optional<ModelVersion>& m) {
    return m ? versionJson(*m) : nlohmann::json(nullptr);
}

void eraseDigest(std::vector<ModelVersion>& list, std::string_view sha256) {
    std::erase_if(list, [&](const ModelVersion& v) { return v.sha256 == sha256; });
}

}  // namespace

const std::error_category& modelCategory() noexcept {
    static const ModelCategory category;
    return category;
}

std::error_code make_error_code(ModelErrc e) noexcept {
    return {static_cast<int>(e), modelCategory()};
}

struct ModelStore::Record {
    struct Intent {
        ModelVersion next;
        std::optional<ModelVersion> old;
    };

    std::string name;
    std::optional<ModelVersion> active;
    std::vector<ModelVersion> previous;
    std::vector<ModelVersion> staged;
    nlohmann::json last_error = nullptr;
    std::optional<Intent> activating;

    [[nodiscard]] std::string toText() const {
        nlohmann::json j = {{"schema", kSchema},
                            {"active", optionalJson(active)},
                            {"previous", nlohmann::json::array()},
                            {"staged", nlohmann::json::array()},
                            {"last_error", last_error},
                            {"activating", nullptr}};
        for (const auto& v : previous) j["previous"].push_back(versionJson(v));
        for (const auto& v : staged) j["staged"].push_back(versionJson(v));
        if (activating) {
            j["activating"] = {{"new", versionJson(activating->next)},
                               {"old", optionalJson(activating->old)}};
        }
        return jsonText(j);
    }

    [[nodiscard]] static Result<Record> parse(std::string_view name, std::string_view text) {
        try {
            const auto j = nlohmann::json::parse(text);
            if (j.at("schema").get<int>() != kSchema) {
                return fail(ModelErrc::kState,
                            fmt::format("model record '{}' has an unknown schema", shown(name)));
            }
            Record r;
            r.name = std::string(name);
            r.active = parseOptionalVersion(j.at("active"));
            for (const auto& v : j.at("previous")) r.previous.push_back(parseVersion(v));
            for (const auto& v : j.at("staged")) r.staged.push_back(parseVersion(v));
            r.last_error = j.at("last_error");
            if (const auto& a = j.at("activating"); !a.is_null()) {
                r.activating = Intent{parseVersion(a.at("new")), parseOptionalVersion(a.at("old"))};
            }
            return r;
        } catch (const std::exception& e) {
            return fail(ModelErrc::kState,
                        fmt::format("model record '{}' is corrupt: {}", shown(name), e.what()));
        }
    }

    /// Every digest this record needs on disk.
    void digests(std::set<std::string>& out) const {
        if (active) out.insert(active->sha256);
        for (const auto& v : previous) out.insert(v.sha256);
        for (const auto& v : staged) out.insert(v.sha256);
        if (activating) {
            out.insert(activating->next.sha256);
            if (activating->old) out.insert(activating->old->sha256);
        }
    }

    void recordError(const ModelVersion& m, std::string reason, std::int64_t at) {
        last_error = {{"version", m.version},
                      {"sha256", m.sha256},
                      {"reason", std::move(reason)},
                      {"at", at}};
    }
};

namespace {

Result<std::vector<ModelStore::Record>> loadAll(const store::Store& db) {
    std::vector<ModelStore::Record> out;
    std::optional<Error> bad;
    auto st = db.read([&](const store::ReadTxn& txn) {
        return txn.forEach(kDb, [&](std::string_view key, std::string_view value) {
            auto r = ModelStore::Record::parse(key, value);
            if (!r) {
                bad = std::move(r.error());
                return false;
            }
            out.push_back(std::move(*r));
            return true;
        });
    });
    if (!st) return fail(std::move(st.error()).wrap("read model records"));
    if (bad) return fail(std::move(*bad));
    return out;
}

}  // namespace

ModelStore::ModelStore(std::filesystem::path dir, store::Store& db, ModelStoreOptions options)
    : dir_(std::move(dir)),
      db_(&db),
      options_(std::move(options)),
      mutex_(std::make_unique<std::mutex>()) {}

Result<ModelStore> ModelStore::open(std::filesystem::path dir, store::Store& db,
                                    ModelStoreOptions options) {
    std::error_code ec;
    auto abs = std::filesystem::absolute(dir, ec);
    if (ec) return fail(ModelErrc::kIo, fmt::format("model store '{}': {}", dir.string(), ec.message()));
    for (const auto& sub : {abs / "blobs", abs / "current"}) {
        std::filesystem::create_directories(sub, ec);
        if (ec) {
            return fail(ModelErrc::kIo,
                        fmt::format("create '{}': {}", sub.string(), ec.message()));
        }
    }
    ModelStore store(std::move(abs), db, std::move(options));
    if (auto st = store.reconcile(); !st) return fail(std::move(st.error()).wrap("open model store"));
    return store;
}

std::filesystem::path ModelStore::blobPath(std::string_view sha256) const {
    return dir_ / "blobs" / std::string(sha256);
}

std::filesystem::path ModelStore::linkPath(std::string_view name) const {
    return dir_ / "current" / std::string(name);
}

Result<std::optional<ModelStore::Record>> ModelStore::load(std::string_view name) const {
    std::optional<std::string> text;
    auto st = db_->read([&](const store::ReadTxn& txn) -> Status {
        auto v = txn.get(kDb, name);
        if (!v) return fail(std::move(v.error()));
        text = std::move(*v);
        return {};
    });
    if (!st) return fail(std::move(st.error()).wrap("read model record"));
    if (!text) return std::optional<Record>();
    auto r = Record::parse(name, *text);
    if (!r) return fail(std::move(r.error()));
    return std::optional<Record>(std::move(*r));
}

Status ModelStore::save(const Record& record) {
    const auto text = record.toText();
    auto st = db_->write([&](store::WriteTxn& txn) { return txn.put(kDb, record.name, text); });
    if (!st) return fail(std::move(st.error()).wrap("write model record"));
    return {};
}

Status ModelStore::pointLink(const std::string& name, const std::optional<ModelVersion>& to) {
    const auto link = linkPath(name);
    const auto current = dir_ / "current";
    if (!to) {
        if (::unlink(link.c_str()) != 0 && errno != ENOENT) return ioError("remove link", link);
        return fsyncPath(current, true);
    }
    const auto target = linkTarget(to->sha256);
    if (readLink(link) == target) return {};
    const auto tmp = current / fmt::format(".{}.tmp", name);
    if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) return ioError("remove", tmp);
    if (::symlink(target.c_str(), tmp.c_str()) != 0) return ioError("create link", tmp);
    if (::rename(tmp.c_str(), link.c_str()) != 0) {
        auto err = ioError("switch link", link);
        ::unlink(tmp.c_str());
        return err;
    }
    return fsyncPath(current, true);
}

Status ModelStore::readiness(const ModelVersion& m, const ReadinessCheck& check) {
    const auto path = linkPath(m.name);
    if (check) {
        Status st;
        try {
            st = check(m, path);
        } catch (const std::exception& e) {
            st = fail(ModelErrc::kReadiness, fmt::format("threw: {}", e.what()));
        }
        if (!st) return fail(ModelErrc::kReadiness, "readiness check: " + st.error().what());
    }
    if (!options_.readiness_command.empty()) {
        auto argv = options_.readiness_command;
        argv.push_back(path.string());
        firmware::CommandOptions opts;
        opts.timeout = options_.readiness_timeout;
        auto r = firmware::runChecked(options_.clock, argv, opts);
        if (!r) return fail(ModelErrc::kReadiness, "readiness command: " + r.error().what());
    }
    return {};
}

Status ModelStore::collectGarbage() {
    auto records = loadAll(*db_);
    if (!records) return fail(std::move(records.error()));
    std::set<std::string> needed;
    for (const auto& r : *records) r.digests(needed);

    const auto blobs = dir_ / "blobs";
    std::error_code ec;
    std::vector<std::filesystem::path> doomed;
    for (const auto& entry : std::filesystem::directory_iterator(blobs, ec)) {
        const auto name = entry.path().filename().string();
        if (validDigest(name) && needed.contains(name)) continue;
        doomed.push_back(entry.path());
    }
    if (ec) return fail(ModelErrc::kIo, fmt::format("list '{}': {}", blobs.string(), ec.message()));
    for (const auto& path : doomed) {
        std::filesystem::remove_all(path, ec);
        if (ec) {
            return fail(ModelErrc::kIo,
                        fmt::format("remove '{}': {}", path.string(), ec.message()));
        }
        log::debug("models: removed unreferenced blob {}", path.filename().string());
    }
    if (!doomed.empty()) return fsyncPath(blobs, true);
    return {};
}

Status ModelStore::reconcile() {
    auto records = loadAll(*db_);
    if (!records) return fail(std::move(records.error()));
    const auto now = options_.clock.unixMillis();
    std::set<std::string> linked;
    std::vector<ModelVersion> interrupted;  // reported once the rollback is durable
    for (auto& r : *records) {
        bool changed = false;
        if (r.activating) {
            interrupted.push_back(r.activating->next);
            // A crash between the intent and the final record: the old version stays active.
            log::warn("models: activation of {} {} was interrupted; keeping the previous version",
                      r.name, r.activating->next.version);
            r.recordError(r.activating->next, "interrupted: the activation did not complete", now);
            r.activating.reset();
            changed = true;
        }
        if (r.active && !regularOfSize(blobPath(r.active->sha256), r.active->size)) {
            log::error("models: the blob of active model {} {} is missing or damaged; link removed",
                       r.name, r.active->version);
            r.recordError(*r.active, "blob missing or damaged: link removed", now);
            r.active.reset();
            changed = true;
        }
        for (auto* list : {&r.previous, &r.staged}) {
            const auto before = list->size();
            std::erase_if(*list, [&](const ModelVersion& v) {
                return !regularOfSize(blobPath(v.sha256), v.size);
            });
            if (list->size() != before) {
                log::warn("models: dropped {} version(s) of {} whose blob is missing",
                          before - list->size(), r.name);
                changed = true;
            }
        }
        if (auto st = pointLink(r.name, r.active); !st) return st;
        if (r.active) linked.insert(r.name);
        if (changed) {
            if (auto st = save(r); !st) return st;
        }
    }
    for (const auto& m : interrupted) step("rolled-back", m);

    // Everything else under current/ is a leftover: tmp links, links of unknown models.
    const auto current = dir_ / "current";
    std::error_code ec;
    std::vector<std::filesystem::path> stray;
    for (const auto& entry : std::filesystem::directory_iterator(current, ec)) {
        if (!linked.contains(entry.path().filename().string())) stray.push_back(entry.path());
    }
    if (ec) return fail(ModelErrc::kIo, fmt::format("list '{}': {}", current.string(), ec.message()));
    for (const auto& path : stray) {
        log::info("models: removing leftover '{}'", path.string());
        std::filesystem::remove_all(path, ec);
        if (ec) return fail(ModelErrc::kIo, fmt::format("remove '{}': {}", path.string(), ec.message()));
    }
    if (!stray.empty()) {
        if (auto st = fsyncPath(current, true); !st) return st;
    }
    return collectGarbage();
}

Status ModelStore::validate(const ModelVersion& m) { return checkVersion(m); }

Status ModelStore::stage(const ModelVersion& model, const std::filesystem::path& verified_file) {
    if (auto st = checkVersion(model); !st) return fail(std::move(st.error()).wrap("stage model"));
    std::lock_guard lock(*mutex_);
    ModelVersion m = model;
    m.activated_at = 0;
    const auto what = fmt::format("stage model {} {}", m.name, m.version);

    const auto blob = blobPath(m.sha256);
    struct stat src {};
    if (::lstat(verified_file.c_str(), &src) != 0) {
        // A repeated call after the file was moved in: the blob is the file.
        if (errno != ENOENT || !regularOfSize(blob, m.size)) {
            return fail(ioError("stat", verified_file).error().wrap(what));
        }
        if (::stat(blob.c_str(), &src) != 0) return fail(ioError("stat", blob).error().wrap(what));
    }
    if (!S_ISREG(src.st_mode)) {
        return fail(Error(make_error_code(ModelErrc::kIo),
                          fmt::format("'{}' is not a regular file (a symlink is refused)", verified_file.string()))
                        .wrap(what));
    }
    if (static_cast<std::uint64_t>(src.st_size) != m.size) {
        return fail(Error(make_error_code(ModelErrc::kSize),
                          fmt::format("'{}' has {} bytes, the manifest says {}",
                                      verified_file.string(), src.st_size, m.size))
                        .wrap(what));
    }

    struct stat have {};
    const bool present = ::lstat(blob.c_str(), &have) == 0 && S_ISREG(have.st_mode) &&
                         static_cast<std::uint64_t>(have.st_size) == m.size;
    if (present) {
        const bool same_file = have.st_dev == src.st_dev && have.st_ino == src.st_ino;
        if (!same_file && ::unlink(verified_file.c_str()) != 0) {
            return fail(ioError("remove", verified_file).error().wrap(what));
        }
    } else {
        // Mode and data are durable before the name appears under blobs/.
        if (::chmod(verified_file.c_str(), 0444) != 0) {
            return fail(ioError("chmod", verified_file).error().wrap(what));
        }
        if (auto st = fsyncPath(verified_file, false); !st) return fail(std::move(st.error()).wrap(what));
        if (::rename(verified_file.c_str(), blob.c_str()) != 0) {
            if (errno != EXDEV) return fail(ioError("move into", blob).error().wrap(what));
            // Another filesystem: copy through a tmp name, so only a whole file gets the digest.
            const auto tmp = dir_ / "blobs" / fmt::format(".{}.tmp", m.sha256);
            std::error_code ec;
            std::filesystem::copy_file(verified_file, tmp,
                                       std::filesystem::copy_options::overwrite_existing, ec);
            if (ec || !regularOfSize(tmp, m.size) || ::chmod(tmp.c_str(), 0444) != 0) {
                std::filesystem::remove(tmp, ec);
                return fail(ModelErrc::kIo, fmt::format("{}: copy '{}' into the store failed",
                                                        what, verified_file.string()));
            }
            if (auto st = fsyncPath(tmp, false); !st) return fail(std::move(st.error()).wrap(what));
            if (::rename(tmp.c_str(), blob.c_str()) != 0) {
                return fail(ioError("move into", blob).error().wrap(what));
            }
            ::unlink(verified_file.c_str());
        }
        if (auto st = fsyncPath(dir_ / "blobs", true); !st) return fail(std::move(st.error()).wrap(what));
    }

    auto rec = load(m.name);
    if (!rec) return fail(std::move(rec.error()).wrap(what));
    Record r = rec->value_or(Record{.name = m.name});
    if (r.active && r.active->sha256 == m.sha256) return {};  // already the active version
    eraseDigest(r.staged, m.sha256);
    r.staged.push_back(m);
    if (auto st = save(r); !st) return fail(std::move(st.error()).wrap(what));
    step("staged", m);
    return {};
}

void ModelStore::step(std::string_view name, const ModelVersion& m) const {
    if (options_.on_step) options_.on_step(name, m);
}

Result<ActivationOutcome> ModelStore::activate(std::string_view name_in, std::string_view sha256,
                                               const ReadinessCheck& check) {
    if (auto st = checkName(name_in); !st) return fail(std::move(st.error()).wrap("activate model"));
    if (auto st = checkDigest(sha256); !st) return fail(std::move(st.error()).wrap("activate model"));
    std::lock_guard lock(*mutex_);
    const std::string name(name_in);
    const auto what = fmt::format("activate model {} {}", name, sha256.substr(0, 12));

    auto rec = load(name);
    if (!rec) return fail(std::move(rec.error()).wrap(what));
    if (!*rec) return fail(ModelErrc::kNotStaged, fmt::format("{}: unknown model", what));
    Record r = std::move(**rec);
    if (r.active && r.active->sha256 == sha256) return ActivationOutcome{false, {}, r.active};

    std::optional<ModelVersion> candidate;
    for (const auto* list : {&r.staged, &r.previous}) {
        auto it = std::find_if(list->begin(), list->end(),
                               [&](const ModelVersion& v) { return v.sha256 == sha256; });
        if (it != list->end()) {
            candidate = *it;
            break;
        }
    }
    if (!candidate) return fail(ModelErrc::kNotStaged, fmt::format("{}: not staged", what));
    if (!regularOfSize(blobPath(candidate->sha256), candidate->size)) {
        return fail(ModelErrc::kSize,
                    fmt::format("{}: blob is missing or not {} bytes", what, candidate->size));
    }

    ModelVersion next = *candidate;
    next.name = name;
    next.activated_at = options_.clock.unixMillis();
    const auto old = r.active;

    r.activating = Record::Intent{next, old};
    if (auto st = save(r); !st) return fail(std::move(st.error()).wrap(what));
    step("activating", next);

    auto switched = pointLink(name, next);
    if (switched) step("switched", next);
    Status ready = switched ? readiness(next, check) : switched;
    if (ready) {
        r.active = next;
        eraseDigest(r.staged, next.sha256);
        eraseDigest(r.previous, next.sha256);
        if (old) {
            eraseDigest(r.previous, old->sha256);
            r.previous.insert(r.previous.begin(), *old);
        }
        if (r.previous.size() > options_.keep) r.previous.resize(options_.keep);
        r.activating.reset();
        r.last_error = nullptr;
        if (auto st = save(r); !st) {
            // The intent stays committed: put the old link back now; open() finishes the job.
            (void)pointLink(name, old);
            return fail(std::move(st.error()).wrap(what));
        }
        step("active", next);
        if (auto st = collectGarbage(); !st) log::warn("models: gc: {}", st.error().what());
        log::info("models: {} {} is active", name, next.version);
        return ActivationOutcome{false, {}, next};
    }

    const auto reason = ready.error().what();
    if (auto back = pointLink(name, old); !back) {
        // The intent stays committed, so the next open() rolls back.
        return fail(std::move(back.error()).wrap(fmt::format("{}: roll back after: {}", what, reason)));
    }
    r.activating.reset();
    r.recordError(next, reason, options_.clock.unixMillis());
    if (ready.error().code() == ModelErrc::kReadiness) eraseDigest(r.staged, next.sha256);
    if (auto st = save(r); !st) return fail(std::move(st.error()).wrap(what));
    step("rolled-back", next);
    if (auto st = collectGarbage(); !st) log::warn("models: gc: {}", st.error().what());
    if (!switched) return fail(std::move(ready.error()).wrap(what));
    log::warn("models: {} {} rolled back: {}", name, next.version, reason);
    return ActivationOutcome{true, reason, old};
}

Status ModelStore::reject(const ModelVersion& m, std::string reason) {
    if (auto st = checkVersion(m); !st) return fail(std::move(st.error()).wrap("reject model"));
    std::lock_guard lock(*mutex_);
    const auto what = fmt::format("reject model {} {}", m.name, m.version);
    auto rec = load(m.name);
    if (!rec) return fail(std::move(rec.error()).wrap(what));
    Record r = rec->value_or(Record{.name = m.name});
    r.recordError(m, std::move(reason), options_.clock.unixMillis());
    eraseDigest(r.staged, m.sha256);
    if (auto st = save(r); !st) return fail(std::move(st.error()).wrap(what));
    if (auto st = collectGarbage(); !st) log::warn("models: gc: {}", st.error().what());
    return {};
}

Status ModelStore::rollback(std::string_view name_in, std::string reason) {
    if (auto st = checkName(name_in); !st) return fail(std::move(st.error()).wrap("roll back model"));
    std::lock_guard lock(*mutex_);
    const std::string name(name_in);
    const auto what = fmt::format("roll back model {}", name);
    auto rec = load(name);
    if (!rec) return fail(std::move(rec.error()).wrap(what));
    if (!*rec || !(*rec)->active) return fail(ModelErrc::kState, what + ": no active version");
    Record r = std::move(**rec);
    if (r.previous.empty()) return fail(ModelErrc::kState, what + ": no previous version");
    ModelVersion target = r.previous.front();
    if (!regularOfSize(blobPath(target.sha256), target.size)) {
        return fail(ModelErrc::kSize, fmt::format("{}: blob of {} is missing or damaged", what,
                                                  target.version));
    }
    target.activated_at = options_.clock.unixMillis();
    const ModelVersion old = *r.active;

    r.activating = Record::Intent{target, old};
    if (auto st = save(r); !st) return fail(std::move(st.error()).wrap(what));
    if (auto st = pointLink(name, target); !st) {
        if (pointLink(name, old)) {
            r.activating.reset();
            (void)save(r);
        }
        return fail(std::move(st.error()).wrap(what));
    }
    r.active = target;
    r.previous.erase(r.previous.begin());
    r.activating.reset();
    r.recordError(old, "rolled back: " + reason, target.activated_at);
    if (auto st = save(r); !st) {
        (void)pointLink(name, old);
        return fail(std::move(st.error()).wrap(what));
    }
    if (auto st = collectGarbage(); !st) log::warn("models: gc: {}", st.error().what());
    log::info("models: {} rolled back from {} to {}: {}", name, old.version, target.version,
              reason);
    return {};
}

Result<std::optional<ModelVersion>> ModelStore::active(std::string_view name) const {
    if (auto st = checkName(name); !st) return fail(std::move(st.error()));
    auto rec = load(name);
    if (!rec) return fail(std::move(rec.error()));
    if (!*rec) return std::optional<ModelVersion>();
    return (*rec)->active;
}

nlohmann::json ModelStore::describe(const ModelVersion& m, bool with_path) const {
    nlohmann::json j = {{"version", m.version},
                        {"sha256", m.sha256},
                        {"size", m.size},
                        {"blob", blobPath(m.sha256).string()},
                        {"activated_at", m.activated_at},
                        {"provenance", m.provenance}};
    if (with_path) j["path"] = linkPath(m.name).string();
    return j;
}

nlohmann::json ModelStore::list() const {
    auto records = loadAll(*db_);
    if (!records) {
        return {{"models", nlohmann::json::array()}, {"error", records.error().what()}};
    }
    auto models = nlohmann::json::array();
    for (const auto& r : *records) {  // forEach visits keys in order: sorted by name
        nlohmann::json m = {{"name", r.name},
                            {"active", nullptr},
                            {"previous", nlohmann::json::array()},
                            {"staged", nlohmann::json::array()},
                            {"last_error", r.last_error},
                            {"activating", nullptr}};
        if (r.active) m["active"] = describe(*r.active, true);
        for (const auto& v : r.previous) m["previous"].push_back(describe(v, false));
        for (const auto& v : r.staged) m["staged"].push_back(describe(v, false));
        if (r.activating) {
            m["activating"] = {{"version", r.activating->next.version},
                               {"sha256", r.activating->next.sha256}};
        }
        models.push_back(std::move(m));
    }
    return {{"models", std::move(models)}};
}

}  // namespace edge::edged
