#include "shared/store/lmdb/lmdb_store.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace edge::store {
namespace {

std::unique_ptr<LmdbStore> openStore(const std::filesystem::path& dir, LmdbOptions options = {}) {
    auto store = LmdbStore::open(dir, options);
    INFO((store ? std::string() : store.error().what()));
    REQUIRE(store);
    return std::move(*store);
}

std::optional<std::string> getValue(const Store& store, std::string_view db, std::string_view key) {
    std::optional<std::string> value;
    Status st = store.read([&](const ReadTxn& txn) -> Status {
        auto got = txn.get(db, key);
        if (!got) return fail(got.error());
        value = *got;
        return {};
    });
    INFO((st ? std::string() : st.error().what()));
    REQUIRE(st);
    return value;
}

std::vector<std::pair<std::string, std::string>> entries(const Store& store, std::string_view db) {
    std::vector<std::pair<std::string, std::string>> out;
    Status st = store.read([&](const ReadTxn& txn) {
        return txn.forEach(db, [&](std::string_view k, std::string_view v) {
            out.emplace_back(k, v);
            return true;
        });
    });
    REQUIRE(st);
    return out;
}

Status putOne(Store& store, std::string_view db, std::string_view key, std::string_view value) {
    return store.write([&](WriteTxn& txn) { return txn.put(db, key, value); });
}

}  // namespace

TEST_CASE("LmdbStore: put, get, del and forEach work on named databases", "[store]") {
    test::TempDir tmp;
    auto store = openStore(tmp / "db");
    REQUIRE(store->write([](WriteTxn& txn) -> Status {
        if (auto st = txn.put("apps", "b", "2"); !st) return st;
        if (auto st = txn.put("apps", "a", "1"); !st) return st;
        if (auto st = txn.put("apps", "c", std::string("x\0y", 3)); !st) return st;
        return txn.put("nodes", "a", "node-a");
    }));
    CHECK(getValue(*store, "apps", "a") == "1");
    CHECK(getValue(*store, "apps", "c") == std::string("x\0y", 3));
    CHECK(getValue(*store, "nodes", "a") == "node-a");
    CHECK(getValue(*store, "apps", "zz") == std::nullopt);

    using Entries = std::vector<std::pair<std::string, std::string>>;
    CHECK(entries(*store, "apps") ==
          Entries{{"a", "1"}, {"b", "2"}, {"c", std::string("x\0y", 3)}});

    REQUIRE(store->write([](WriteTxn& txn) -> Status {
        if (auto st = txn.del("apps", "b"); !st) return st;
        if (auto st = txn.del("apps", "missing"); !st) return st;  // not an error
        auto got = txn.get("apps", "b");                           // the txn sees its own writes
        if (!got || *got) return fail(SharedErrc::kStore, "deleted key still visible");
        return txn.put("apps", "a", "1b");
    }));
    CHECK(entries(*store, "apps") == Entries{{"a", "1b"}, {"c", std::string("x\0y", 3)}});

    SECTION("forEach stops when fn returns false") {
        int visited = 0;
        REQUIRE(store->read([&](const ReadTxn& txn) {
            return txn.forEach("apps", [&](std::string_view, std::string_view) {
                ++visited;
                return false;
            });
        }));
        CHECK(visited == 1);
    }
    SECTION("an empty database name is rejected") {
        auto st = putOne(*store, "", "k", "v");
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == SharedErrc::kInvalidArgument);
    }
}

TEST_CASE("LmdbStore: a write whose fn fails leaves nothing visible", "[store]") {
    test::TempDir tmp;
    auto store = openStore(tmp / "db");
    REQUIRE(putOne(*store, "apps", "kept", "v0"));
    Status st = store->write([](WriteTxn& txn) -> Status {
        if (auto put = txn.put("apps", "new", "v1"); !put) return put;
        if (auto put = txn.put("fresh-db", "k", "v"); !put) return put;
        if (auto put = txn.put("apps", "kept", "overwritten"); !put) return put;
        return fail(SharedErrc::kInvalidArgument, "changed my mind");
    });
    REQUIRE_FALSE(st);
    CHECK(st.error().message() == "changed my mind");
    CHECK(getValue(*store, "apps", "new") == std::nullopt);
    CHECK(getValue(*store, "apps", "kept") == "v0");
    CHECK(entries(*store, "fresh-db").empty());
    // The aborted txn's database handle must not leak into later transactions.
    REQUIRE(putOne(*store, "fresh-db", "k2", "v2"));
    CHECK(getValue(*store, "fresh-db", "k2") == "v2");
}

TEST_CASE("LmdbStore: several puts in one write are all or nothing", "[store]") {
    test::TempDir tmp;
    auto store = openStore(tmp / "db");
    SECTION("all committed together") {
        REQUIRE(store->write([](WriteTxn& txn) -> Status {
            for (int i = 0; i < 100; ++i) {
                if (auto st = txn.put("bulk", "k" + std::to_string(i), "v"); !st) return st;
            }
            return {};
        }));
        CHECK(entries(*store, "bulk").size() == 100);
    }
    SECTION("a failed put discards the others even if fn ignores the error") {
        Status st = store->write([](WriteTxn& txn) -> Status {
            for (int i = 0; i < 10; ++i) {
                if (auto put = txn.put("bulk", "k" + std::to_string(i), "v"); !put) return put;
            }
            [[maybe_unused]] auto ignored =
                txn.put("bulk", std::string(600, 'k'), "v");  // too long
            return {};
        });
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == SharedErrc::kStore);
        CHECK(entries(*store, "bulk").empty());
    }
}

TEST_CASE("LmdbStore: values survive close and reopen", "[store]") {
    test::TempDir tmp;
    {
        auto store = openStore(tmp / "nested" / "db");
        REQUIRE(putOne(*store, "apps", "a", "1"));
        REQUIRE(putOne(*store, "nodes", "n", "2"));
    }
    CHECK((std::filesystem::status(tmp / "nested" / "db").permissions() &
           std::filesystem::perms::all) == std::filesystem::perms::owner_all);
    auto store = openStore(tmp / "nested" / "db");
    CHECK(getValue(*store, "apps", "a") == "1");
    CHECK(getValue(*store, "nodes", "n") == "2");
    REQUIRE(putOne(*store, "apps", "b", "3"));
    CHECK(entries(*store, "apps").size() == 2);
}

TEST_CASE("LmdbStore: a read-only open sees committed data and cannot write", "[store]") {
    test::TempDir tmp;
    auto writer = openStore(tmp / "db");
    REQUIRE(putOne(*writer, "apps", "a", "1"));

    // Another process (like a CLI printing status) reads while the writer keeps it open.
    const int code = edge::test::inChild([&] {
        auto ro = LmdbStore::open(tmp / "db", {.read_only = true});
        if (!ro) return 10;
        std::optional<std::string> got;
        auto st = (*ro)->read([&](const ReadTxn& txn) -> Status {
            auto v = txn.get("apps", "a");
            if (!v) return fail(v.error());
            got = *v;
            return {};
        });
        if (!st || got != "1") return 11;
        auto w = (*ro)->write([](WriteTxn& txn) { return txn.put("apps", "b", "2"); });
        if (w || w.error().code() != SharedErrc::kStore) return 12;
        return 0;
    });
    CHECK(code == 0);

    writer.reset();
    auto ro = openStore(tmp / "db", {.read_only = true});
    CHECK(getValue(*ro, "apps", "a") == "1");
    CHECK(entries(*ro, "missing").empty());
    auto st = putOne(*ro, "apps", "b", "2");
    REQUIRE_FALSE(st);
    CHECK(st.error().code() == SharedErrc::kStore);

    auto none = LmdbStore::open(tmp / "does-not-exist", {.read_only = true});
    REQUIRE_FALSE(none);
    CHECK(none.error().code() == SharedErrc::kNotFound);
    CHECK_FALSE(std::filesystem::exists(tmp / "does-not-exist"));
}

TEST_CASE("LmdbStore: a process that dies inside a write leaves nothing behind", "[store]") {
    test::TempDir tmp;
    REQUIRE(putOne(*openStore(tmp / "db"), "apps", "before", "1"));

    const int code = edge::test::inChild([&] {
        auto store = LmdbStore::open(tmp / "db");
        if (!store) return 10;
        auto st = (*store)->write([](WriteTxn& txn) -> Status {
            for (int i = 0; i < 2000; ++i) {
                if (!txn.put("apps", "k" + std::to_string(i), std::string(1024, 'x'))) _exit(11);
            }
            if (!txn.put("crash-db", "k", "v")) _exit(12);
            ::_exit(0);  // dies holding the write lock, before commit
        });
        return st ? 13 : 14;
    });
    REQUIRE(code == 0);

    auto store = openStore(tmp / "db");
    using Entries = std::vector<std::pair<std::string, std::string>>;
    CHECK(entries(*store, "apps") == Entries{{"before", "1"}});
    CHECK(entries(*store, "crash-db").empty());
    REQUIRE(putOne(*store, "apps", "after", "2"));  // the dead writer's lock was recovered
    CHECK(getValue(*store, "apps", "after") == "2");
}

TEST_CASE("LmdbStore: a missing database reads as empty", "[store]") {
    test::TempDir tmp;
    auto store = openStore(tmp / "db");
    CHECK(getValue(*store, "nope", "k") == std::nullopt);
    CHECK(entries(*store, "nope").empty());
    REQUIRE(store->write([](WriteTxn& txn) -> Status {
        auto got = txn.get("nope", "k");
        if (!got || *got) return fail(SharedErrc::kStore, "expected nothing");
        return txn.del("nope", "k");
    }));
    CHECK(entries(*store, "nope").empty());
}

TEST_CASE("LmdbStore: a read snapshot does not see a database created after it began", "[store]") {
    test::TempDir tmp;
    auto store = openStore(tmp / "db");
    REQUIRE(putOne(*store, "old", "k", "v"));
    std::mutex m;
    std::condition_variable cv;
    bool reading = false;
    bool written = false;
    std::optional<std::string> seen_new = "unset";
    std::optional<std::string> seen_old;
    std::thread reader([&] {
        Status st = store->read([&](const ReadTxn& txn) -> Status {
            {
                std::unique_lock lock(m);
                reading = true;
                cv.notify_all();
                cv.wait(lock, [&] { return written; });
            }
            auto a = txn.get("new", "k");
            auto b = txn.get("old", "k");
            if (!a || !b) return fail(SharedErrc::kStore, "get failed");
            seen_new = *a;
            seen_old = *b;
            return {};
        });
        CHECK(st);
    });
    {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return reading; });
    }
    REQUIRE(putOne(*store, "new", "k", "v2"));
    {
        std::lock_guard lock(m);
        written = true;
        cv.notify_all();
    }
    reader.join();
    CHECK(seen_new == std::nullopt);
    CHECK(seen_old == "v");
    CHECK(getValue(*store, "new", "k") == "v2");
}

TEST_CASE("LmdbStore: a full map is reported as a clear error", "[store]") {
    test::TempDir tmp;
    auto store = openStore(tmp / "db", {.map_size = 1u << 20});
    Status st = store->write([](WriteTxn& txn) -> Status {
        for (int i = 0; i < 64; ++i) {
            if (auto put = txn.put("big", "k" + std::to_string(i), std::string(64 << 10, 'x'));
                !put) {
                return put;
            }
        }
        return {};
    });
    REQUIRE_FALSE(st);
    CHECK(st.error().code() == SharedErrc::kStore);
    CHECK_THAT(st.error().what(), Catch::Contains("map_size"));
    REQUIRE(putOne(*store, "small", "k", "v"));  // the store is still usable
    CHECK(entries(*store, "big").empty());
}

}  // namespace edge::store
