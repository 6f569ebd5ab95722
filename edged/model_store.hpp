#pragma once
// ModelStore: the device's content-addressed store of AI models, with atomic activation,
// previous versions kept for rollback, and an automatic rollback when a readiness check fails.
//
// Layout under dir (<state_dir>/models):
//   blobs/<sha256>         a model file, mode 0444, never modified once there. Only whole,
//                          already verified files are renamed in (a copy across filesystems goes
//                          through blobs/.<sha256>.tmp first), so a partial file is never visible
//                          under its digest.
//   current/<name>         symlink -> ../blobs/<sha256>: the active version of model <name>, the
//                          path a local inference runtime opens (list() gives it).
//   current/.<name>.tmp    the next link while it is being switched (rename over current/<name>).
// Metadata lives in the Store, db "models", key = model name, value = JSON:
//   {"schema":1, "active": ModelVersion|null, "previous": [ModelVersion...] (newest first, at
//    most keep), "staged": [ModelVersion...], "last_error": {version, sha256, reason, at}|null,
//    "activating": {"new": ModelVersion, "old": ModelVersion|null}|null}
//
// Invariants (after open() and after every call returns, also after a crash at any instant):
// - current/<name> exists iff the record of <name> has an active version, and it points to that
//   version's blob, which exists with the recorded size. During activate() the link already
//   points to the new version while the record still names the old one under an "activating"
//   intent; a crash there rolls back to the old version at the next open() (last_error
//   "interrupted"). So current/<name> is always the old or the new fully verified model.
// - Every blob is referenced by some record's active, previous or staged version; open() and
//   each operation delete the others (gc). A blob shared by two names is kept while either
//   references it.
// - Order of durable steps: a blob is fsynced before a record names it; a record stops naming a
//   blob before the blob is deleted; the intent is committed before the link switches.
//
// Names are [A-Za-z0-9._-]{1,64} and may not start with '.' ("." and ".." and the names of
// temporary links are thereby excluded); digests are 64 lowercase hex characters; versions are
// 1..128 printable characters. Anything else is refused with kInvalidArgument before the
// filesystem is touched, so names from a bundle can never address a path outside dir.
//
// Threading: mutating calls (stage, activate, reject, rollback) are serialized by a mutex and
// block (fsync, the readiness check and command): run them on a worker thread. list() and
// active() read a consistent snapshot from the Store and never wait for a running activation,
// so the decision API thread can serve GET /v1/models while a readiness check runs.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "shared/core/clock.hpp"
#include "shared/core/error.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

/// Errors of the model store (Store failures keep their SharedErrc kStore).
enum class ModelErrc {
    kInvalidArgument = 1,  // bad model name, digest or version text
    kNotStaged,            // activate() of a version that is neither staged nor kept
    kSize,                 // a file or blob does not have the declared size
    kIo,                   // a filesystem operation on the store failed
    kReadiness,            // the readiness check failed (reported in ActivationOutcome)
    kState,                // a stored record is corrupt, or the operation does not fit it
};
const std::error_category& modelCategory() noexcept;
std::error_code make_error_code(ModelErrc e) noexcept;

struct ModelVersion {
    std::string name;
    std::string version;
    std::string sha256;  // 64 lowercase hex
    std::uint64_t size = 0;
    nlohmann::json provenance = nlohmann::json::object();  // from the bundle; opaque here
    std::int64_t activated_at = 0;                          // unix ms; 0 until activated

    friend bool operator==(const ModelVersion&, const ModelVersion&) = default;
};

/// Called after the link switched to the new version, with that version and the absolute path
/// of current/<name>; an error rolls the activation back with the error's text as reason.
using ReadinessCheck =
    std::function<Status(const ModelVersion& model, const std::filesystem::path& path)>;

struct ModelStoreOptions {
    /// Timestamps (activated_at, last_error.at) and the readiness command's deadline: it must
    /// move (SystemClock in production).
    const Clock& clock;
    /// Previous versions kept per model for rollback.
    std::size_t keep = 2;
    /// Readiness command run after each activation (empty: none). firmware::runCommand passes
    /// no extra environment, so the absolute path of current/<name> is appended as the last
    /// argument: {"/usr/bin/check-model", "--quick"} runs "check-model --quick <path>". Exit 0
    /// means ready; anything else, or the timeout, rolls back.
    std::vector<std::string> readiness_command;
    std::chrono::milliseconds readiness_timeout{30'000};
    /// Called after each durable step, on the calling thread, with the step's name and the
    /// version concerned: "staged" (blob and record in place), "activating" (intent committed),
    /// "switched" (current/<name> points to it, fsynced; the readiness check comes next),
    /// "active" (recorded as active), "rolled-back" (the old link and record are back, also
    /// when open() finds an activation a crash interrupted). A crash between a step and its
    /// call loses the call: a runtime re-reads current/ when it starts.
    /// edged runs models.state_command here (an inference runtime reloads on "active").
    std::function<void(std::string_view step, const ModelVersion& model)> on_step;
};

struct ActivationOutcome {
    bool rolled_back = false;
    /// Why it rolled back (the check's or the command's error); empty when activated.
    std::string reason;
    /// The active version after the call (the new one, or the old one after a rollback).
    std::optional<ModelVersion> active;
};

class ModelStore {
public:
    /// Creates dir/blobs and dir/current when missing and reconciles the directory with the
    /// records (see the invariants above): an interrupted activation is rolled back, leftover
    /// temporary files are removed, a link or version whose blob is missing or of the wrong
    /// size is dropped (logged, and recorded in last_error), unreferenced blobs are deleted.
    /// Errors: kIo, kState (a record that cannot be parsed), SharedErrc::kStore.
    [[nodiscard]] static Result<ModelStore> open(std::filesystem::path dir, store::Store& db,
                                                 ModelStoreOptions options);

    ModelStore(ModelStore&&) noexcept = default;
    ModelStore& operator=(ModelStore&&) noexcept = delete;
    ModelStore(const ModelStore&) = delete;
    ModelStore& operator=(const ModelStore&) = delete;
    ~ModelStore() = default;

    /// kInvalidArgument when m's name, digest or version is not one this store takes (the rules
    /// above). The OTA plan asks before it downloads, so nothing is fetched that stage() refuses.
    [[nodiscard]] static Status validate(const ModelVersion& m);

    /// Takes a file the fetcher already verified (digest and size) into blobs/<m.sha256> by
    /// rename (or, across filesystems, by a copy through a tmp file), makes it 0444, fsyncs it
    /// and the directory, and records m as staged. If the blob is already there with the right
    /// size the source is just deleted. Idempotent (staging the same digest again replaces the
    /// staged entry's version and provenance). m.activated_at is ignored.
    /// Errors: kInvalidArgument; kSize when the file's size is not m.size (nothing changes, the
    /// source stays); kIo.
    [[nodiscard]] Status stage(const ModelVersion& m, const std::filesystem::path& verified_file);

    /// Makes the staged (or a kept previous) version with this digest the active one:
    /// intent -> link switch (fsynced) -> check(), then the readiness command -> record.
    /// A failed check is not an error: the link is switched back (or removed when there was no
    /// active version), last_error records the reason, the failed version is dropped from
    /// staged, and the outcome says rolled_back. Activating the active version changes nothing.
    /// Errors: kInvalidArgument, kNotStaged, kSize (its blob is damaged), kIo, kStore.
    [[nodiscard]] Result<ActivationOutcome> activate(std::string_view name, std::string_view sha256,
                                                     const ReadinessCheck& check = {});

    /// Records last_error for m (e.g. provenance policy denied it) without touching the active
    /// version, and drops m from staged (its blob goes unless another version uses it).
    /// Errors: kInvalidArgument, kIo, kStore.
    [[nodiscard]] Status reject(const ModelVersion& m, std::string reason);

    /// Switches back to the newest previous version (no readiness check: it was ready before).
    /// The version rolled back from is dropped and named in last_error with reason.
    /// Errors: kInvalidArgument; kState when there is no active or no previous version; kIo.
    [[nodiscard]] Status rollback(std::string_view name, std::string reason);

    /// The active version of name; nullopt for an unknown model or one without an active version.
    [[nodiscard]] Result<std::optional<ModelVersion>> active(std::string_view name) const;

    /// GET /v1/models: {"models":[{"name", "active": {version, sha256, size, path, blob,
    /// activated_at, provenance}|null, "previous": [...], "staged": [...], "last_error",
    /// "activating": {"version","sha256"}|null}]} ordered by name; path is the absolute path of
    /// current/<name>, blob that of blobs/<sha256>. On a store failure: {"models":[],"error":..}.
    [[nodiscard]] nlohmann::json list() const;

    [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

    struct Record;  // one model's stored record; defined in model_store.cpp

private:
    ModelStore(std::filesystem::path dir, store::Store& db, ModelStoreOptions options);

    [[nodiscard]] Status reconcile();
    [[nodiscard]] Result<std::optional<Record>> load(std::string_view name) const;
    [[nodiscard]] Status save(const Record& record);
    [[nodiscard]] Status pointLink(const std::string& name, const std::optional<ModelVersion>& to);
    [[nodiscard]] Status readiness(const ModelVersion& m, const ReadinessCheck& check);
    [[nodiscard]] Status collectGarbage();
    void step(std::string_view name, const ModelVersion& m) const;
    [[nodiscard]] std::filesystem::path blobPath(std::string_view sha256) const;
    [[nodiscard]] std::filesystem::path linkPath(std::string_view name) const;
    [[nodiscard]] nlohmann::json describe(const ModelVersion& m, bool with_path) const;

    std::filesystem::path dir_;  // absolute
    store::Store* db_;
    ModelStoreOptions options_;
    std::unique_ptr<std::mutex> mutex_;  // serializes mutating calls (movable holder)
};

}  // namespace edge::edged

template <>
struct std::is_error_code_enum<edge::edged::ModelErrc> : std::true_type {};
