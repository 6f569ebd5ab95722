#include "shared/store/lmdb/lmdb_store.hpp"

#include <lmdb.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace edge::store {

// DBI handles: LMDB keeps named-database handles in the environment once the transaction that
// opened them commits, and a handle is usable only by transactions that began after that.
// mdb_dbi_open() must not run in two live transactions at once (both would take the same slot),
// so a transaction that opens a handle holds open_mutex until it ends. Handles are cached after
// commit; all databases existing at open() are opened up front, so read transactions rarely open
// anything (only for a database another process created since).
struct LmdbStore::Env {
    MDB_env* env = nullptr;
    LmdbOptions options;
    std::filesystem::path dir;
    std::mutex open_mutex;   // held by a transaction that called mdb_dbi_open, until it ends
    std::mutex cache_mutex;  // guards cache
    std::map<std::string, MDB_dbi, std::less<>> cache;

    ~Env() {
        if (env != nullptr) mdb_env_close(env);
    }

    std::optional<MDB_dbi> cached(std::string_view name) {
        std::lock_guard lock(cache_mutex);
        auto it = cache.find(name);
        if (it == cache.end()) return std::nullopt;
        return it->second;
    }
};

namespace {

Error lmdbError(int rc, std::string_view op, const LmdbStore::Env* env = nullptr) {
    std::string text;
    if (rc == MDB_MAP_FULL && env != nullptr) {
        text = "store is full (map size " + std::to_string(env->options.map_size >> 20) +
               " MiB reached; raise LmdbOptions::map_size): " + mdb_strerror(rc);
    } else {
        text = mdb_strerror(rc);
    }
    return Error(make_error_code(SharedErrc::kStore), std::move(text)).wrap(op);
}

std::string quoted(std::string_view db, std::string_view key) {
    return "'" + std::string(db) + "'/'" + std::string(key) + "'";
}

MDB_val toVal(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

std::string_view toView(const MDB_val& v) {
    return {static_cast<const char*>(v.mv_data), v.mv_size};
}

class CursorGuard {
public:
    explicit CursorGuard(MDB_cursor* c) : c_(c) {}
    ~CursorGuard() { mdb_cursor_close(c_); }
    CursorGuard(const CursorGuard&) = delete;
    CursorGuard& operator=(const CursorGuard&) = delete;

private:
    MDB_cursor* c_;
};

// One LMDB transaction; aborted on destruction unless finish() ended it.
class Txn {
public:
    Txn(LmdbStore::Env& env, bool write) : env_(env), write_(write) {}
    ~Txn() {
        if (txn_ != nullptr) mdb_txn_abort(txn_);
    }
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;

    Status begin() {
        int rc = mdb_txn_begin(env_.env, nullptr, write_ ? 0u : MDB_RDONLY, &txn_);
        if (rc != 0) {
            txn_ = nullptr;
            return fail(lmdbError(rc, write_ ? "begin write" : "begin read"));
        }
        return {};
    }

    /// Commits (a read transaction: just ends it, keeping opened handles), then caches handles.
    Status finish() {
        if (write_ && poison_) return fail(*poison_);
        int rc = mdb_txn_commit(txn_);
        txn_ = nullptr;  // commit frees the transaction even when it fails
        if (rc != 0) return fail(lmdbError(rc, "commit", &env_));
        if (!opened_.empty()) {
            std::lock_guard lock(env_.cache_mutex);
            for (auto& [name, dbi] : opened_) env_.cache.emplace(std::move(name), dbi);
        }
        return {};
    }

    Result<std::optional<std::string>> get(std::string_view db, std::string_view key) {
        auto dbi = handle(db, false);
        if (!dbi) return record(std::move(dbi.error()));
        if (!*dbi) return std::optional<std::string>();
        MDB_val k = toVal(key);
        MDB_val v{};
        int rc = mdb_get(txn_, **dbi, &k, &v);
        if (rc == MDB_NOTFOUND) return std::optional<std::string>();
        if (rc != 0) return record(lmdbError(rc, "get " + quoted(db, key)));
        return std::optional<std::string>(std::string(toView(v)));  // copied out of the map
    }

    Status forEach(std::string_view db,
                   const std::function<bool(std::string_view, std::string_view)>& fn) {
        auto dbi = handle(db, false);
        if (!dbi) return record(std::move(dbi.error()));
        if (!*dbi) return {};
        MDB_cursor* cursor = nullptr;
        int rc = mdb_cursor_open(txn_, **dbi, &cursor);
        if (rc != 0) return record(lmdbError(rc, "open cursor on '" + std::string(db) + "'"));
        CursorGuard guard(cursor);
        MDB_val k{};
        MDB_val v{};
        for (rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
            if (!fn(toView(k), toView(v))) return {};
        }
        if (rc != MDB_NOTFOUND) return record(lmdbError(rc, "iterate '" + std::string(db) + "'"));
        return {};
    }

    Status put(std::string_view db, std::string_view key, std::string_view value) {
        auto dbi = handle(db, true);
        if (!dbi) return record(std::move(dbi.error()));
        MDB_val k = toVal(key);
        MDB_val v = toVal(value);
        int rc = mdb_put(txn_, **dbi, &k, &v, 0);
        if (rc != 0) return record(lmdbError(rc, "put " + quoted(db, key), &env_));
        return {};
    }

    Status del(std::string_view db, std::string_view key) {
        auto dbi = handle(db, false);
        if (!dbi) return record(std::move(dbi.error()));
        if (!*dbi) return {};
        MDB_val k = toVal(key);
        int rc = mdb_del(txn_, **dbi, &k, nullptr);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            return record(lmdbError(rc, "del " + quoted(db, key), &env_));
        }
        return {};
    }

private:
    std::unexpected<Error> record(Error err) {
        if (write_ && !poison_) poison_ = err;
        return fail(std::move(err));
    }

    /// The handle of db valid in this transaction; nullopt when db does not exist (and create
    /// is false).
    Result<std::optional<MDB_dbi>> handle(std::string_view db, bool create) {
        if (db.empty()) {
            return fail(SharedErrc::kInvalidArgument, "database name must not be empty");
        }
        if (auto it = local_.find(db); it != local_.end()) return it->second;
        unsigned flags = 0;
        if (auto dbi = env_.cached(db); dbi && mdb_dbi_flags(txn_, *dbi, &flags) == 0) {
            local_.emplace(std::string(db), *dbi);
            return *dbi;
        }
        if (!create) {
            // Database names are keys of the main database; looking there opens nothing.
            auto exists = existsInMain(db);
            if (!exists) return fail(std::move(exists.error()));
            if (!*exists) return std::optional<MDB_dbi>();
        }
        if (!open_lock_.owns_lock()) open_lock_ = std::unique_lock(env_.open_mutex);
        const std::string name(db);
        MDB_dbi dbi = 0;
        int rc = mdb_dbi_open(txn_, name.c_str(), create ? MDB_CREATE : 0u, &dbi);
        if (rc == MDB_NOTFOUND) return std::optional<MDB_dbi>();
        if (rc != 0) return fail(lmdbError(rc, "open database '" + name + "'", &env_));
        local_.emplace(name, dbi);
        opened_.emplace_back(name, dbi);
        return dbi;
    }

    Result<bool> existsInMain(std::string_view db) {
        MDB_dbi main = 0;
        int rc = mdb_dbi_open(txn_, nullptr, 0, &main);  // the main DB: no slot is allocated
        if (rc != 0) return fail(lmdbError(rc, "open main database"));
        MDB_val k = toVal(db);
        MDB_val v{};
        rc = mdb_get(txn_, main, &k, &v);
        if (rc == MDB_NOTFOUND) return false;
        if (rc != 0) return fail(lmdbError(rc, "look up database '" + std::string(db) + "'"));
        return true;
    }

    LmdbStore::Env& env_;
    bool write_;
    MDB_txn* txn_ = nullptr;
    std::map<std::string, MDB_dbi, std::less<>> local_;
    std::vector<std::pair<std::string, MDB_dbi>> opened_;
    std::unique_lock<std::mutex> open_lock_;  // declared last: released after the txn ends
    std::optional<Error> poison_;
};

class LmdbReadTxn final : public ReadTxn {
public:
    explicit LmdbReadTxn(Txn& txn) : txn_(txn) {}
    Result<std::optional<std::string>> get(std::string_view db,
                                           std::string_view key) const override {
        return txn_.get(db, key);
    }
    Status forEach(
        std::string_view db,
        const std::function<bool(std::string_view, std::string_view)>& fn) const override {
        return txn_.forEach(db, fn);
    }

private:
    Txn& txn_;
};

class LmdbWriteTxn final : public WriteTxn {
public:
    explicit LmdbWriteTxn(Txn& txn) : txn_(txn) {}
    Result<std::optional<std::string>> get(std::string_view db,
                                           std::string_view key) const override {
        return txn_.get(db, key);
    }
    Status forEach(
        std::string_view db,
        const std::function<bool(std::string_view, std::string_view)>& fn) const override {
        return txn_.forEach(db, fn);
    }
    Status put(std::string_view db, std::string_view key, std::string_view value) override {
        return txn_.put(db, key, value);
    }
    Status del(std::string_view db, std::string_view key) override { return txn_.del(db, key); }

private:
    Txn& txn_;
};

Status ensureDir(const std::filesystem::path& dir) {
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) return {};
    if (dir.has_parent_path()) {
        std::filesystem::create_directories(dir.parent_path(), ec);
        if (ec) {
            return fail(SharedErrc::kIo,
                        "create " + dir.parent_path().string() + ": " + ec.message());
        }
    }
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        return fail(SharedErrc::kIo, "create " + dir.string() + ": " + std::strerror(errno));
    }
    return {};
}

// Opens every named database that exists now, so that later read transactions find their
// handles in the cache instead of opening them.
Status preopenDatabases(LmdbStore::Env& env) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env.env, nullptr, MDB_RDONLY, &txn);
    if (rc != 0) return fail(lmdbError(rc, "begin read"));
    std::vector<std::pair<std::string, MDB_dbi>> opened;
    MDB_dbi main = 0;
    MDB_cursor* cursor = nullptr;
    rc = mdb_dbi_open(txn, nullptr, 0, &main);
    if (rc == 0) rc = mdb_cursor_open(txn, main, &cursor);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return fail(lmdbError(rc, "list databases"));
    }
    std::vector<std::string> names;
    MDB_val k{};
    MDB_val v{};
    for (int c = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); c == 0;
         c = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        names.emplace_back(toView(k));
    }
    mdb_cursor_close(cursor);
    for (const auto& name : names) {
        MDB_dbi dbi = 0;
        // Not every key of the main database need be a database; skip what does not open.
        if (name.find('\0') == std::string::npos && mdb_dbi_open(txn, name.c_str(), 0, &dbi) == 0) {
            opened.emplace_back(name, dbi);
        }
    }
    rc = mdb_txn_commit(txn);  // a read-only commit keeps the handles in the environment
    if (rc != 0) return fail(lmdbError(rc, "list databases"));
    for (auto& [name, dbi] : opened) env.cache.emplace(std::move(name), dbi);
    return {};
}

}  // namespace

Result<std::unique_ptr<LmdbStore>> LmdbStore::open(const std::filesystem::path& dir,
                                                   LmdbOptions options) {
    const std::string context = "open store " + dir.string();
    if (options.read_only) {
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec)) {
            return fail(
                Error(make_error_code(SharedErrc::kNotFound), "no store directory").wrap(context));
        }
    } else if (auto made = ensureDir(dir); !made) {
        return fail(std::move(made.error()).wrap(context));
    }
    auto env = std::make_unique<Env>();
    env->options = options;
    env->dir = dir;
    int rc = mdb_env_create(&env->env);
    if (rc != 0) {
        env->env = nullptr;
        return fail(lmdbError(rc, "create environment").wrap(context));
    }
    rc = mdb_env_set_mapsize(env->env, options.map_size);
    if (rc == 0) rc = mdb_env_set_maxdbs(env->env, options.max_dbs);
    if (rc != 0) return fail(lmdbError(rc, "configure environment").wrap(context));
    unsigned flags = MDB_NOTLS | (options.read_only ? MDB_RDONLY : 0u);
    rc = mdb_env_open(env->env, dir.c_str(), flags, 0600);
    if (rc != 0) return fail(lmdbError(rc, "mdb_env_open").wrap(context));
    int dead = 0;
    mdb_reader_check(env->env, &dead);  // clears reader slots left by crashed processes
    if (auto pre = preopenDatabases(*env); !pre) return fail(std::move(pre.error()).wrap(context));
    return std::unique_ptr<LmdbStore>(new LmdbStore(std::move(env)));
}

LmdbStore::LmdbStore(std::unique_ptr<Env> env) : env_(std::move(env)) {}
LmdbStore::~LmdbStore() = default;

Status LmdbStore::read(const std::function<Status(const ReadTxn&)>& fn) const {
    Txn txn(*env_, false);
    if (auto begun = txn.begin(); !begun) return begun;
    LmdbReadTxn view(txn);
    Status result = fn(view);
    if (auto ended = txn.finish(); !ended && result) return ended;
    return result;
}

Status LmdbStore::write(const std::function<Status(WriteTxn&)>& fn) {
    if (env_->options.read_only) {
        return fail(SharedErrc::kStore, "store " + env_->dir.string() + " is opened read-only");
    }
    Txn txn(*env_, true);
    if (auto begun = txn.begin(); !begun) return begun;
    LmdbWriteTxn view(txn);
    Status result = fn(view);
    if (!result) return result;  // ~Txn aborts: nothing fn did becomes visible
    return txn.finish();
}

}  // namespace edge::store
