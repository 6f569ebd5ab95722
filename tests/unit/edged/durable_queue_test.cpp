#include "edged/durable_queue.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "edged/group_writer.hpp"
#include "shared/loop/asio/asio_event_loop.hpp"
#include "shared/store/lmdb/lmdb_store.hpp"
#include "shared/telemetry/record_chain.hpp"
#include "tests/support/temp_dir.hpp"

using namespace edge;
using Records = std::vector<std::pair<std::uint64_t, std::string>>;

namespace {

constexpr std::size_t kAll = std::size_t(-1);

std::unique_ptr<store::LmdbStore> openStore(const std::filesystem::path& dir) {
    auto store = store::LmdbStore::open(dir);
    INFO((store ? std::string() : store.error().what()));
    REQUIRE(store);
    return std::move(*store);
}

/// Turns the loop on this thread until pred holds; false after the deadline.
bool runUntil(AsioEventLoop& loop, const std::function<bool()>& pred,
              std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    loop.context().restart();
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        loop.context().run_one_for(std::chrono::milliseconds(5));
    }
    return true;
}

/// Every key/value of a database, read straight from the store.
Records rawRecords(const store::Store& store, std::string_view db) {
    Records out;
    REQUIRE(store.read([&](const store::ReadTxn& txn) {
        return txn.forEach(db, [&](std::string_view key, std::string_view value) {
            std::uint64_t seq = 0;
            for (char c : key) seq = (seq << 8) | static_cast<unsigned char>(c);
            out.emplace_back(seq, std::string(value));
            return true;
        });
    }));
    return out;
}

/// Checks that records form one unbroken chain (each hash recomputes, each links to the one
/// before, seqs consecutive) and returns the parsed records.
std::vector<nlohmann::json> requireChain(const Records& records) {
    std::vector<nlohmann::json> parsed;
    for (const auto& [seq, text] : records) {
        auto record = nlohmann::json::parse(text);
        INFO("seq " << seq << ": " << text);
        auto st = chain::checkRecord(record);
        INFO((st ? std::string() : st.error().what()));
        REQUIRE(st);
        REQUIRE(record["seq"] == seq);
        if (!parsed.empty()) {
            REQUIRE(seq == parsed.back()["seq"].get<std::uint64_t>() + 1);
            REQUIRE(record["prev"] == parsed.back()["hash"]);
        }
        parsed.push_back(std::move(record));
    }
    return parsed;
}

nlohmann::json event(int n, std::size_t pad = 0) {
    return {{"n", n}, {"pad", std::string(pad, 'x')}};
}

/// The real store, whose writes fail while `failing` is set (as on a full disk).
class FailingWrites final : public store::Store {
public:
    explicit FailingWrites(store::Store& inner) : inner_(inner) {}
    Status read(const std::function<Status(const store::ReadTxn&)>& fn) const override {
        return inner_.read(fn);
    }
    Status write(const std::function<Status(store::WriteTxn&)>& fn) override {
        ++attempts;
        if (failing) return fail(SharedErrc::kStore, "disk full");
        return inner_.write(fn);
    }
    std::atomic<bool> failing = false;
    std::atomic<int> attempts = 0;

private:
    store::Store& inner_;
};

/// A store, a loop, a writer and one queue, reopenable like a restarted edged.
struct Rig {
    explicit Rig(edged::QueueOptions o = {.name = "decisions"}) : options(std::move(o)) { open(); }
    ~Rig() { close(); }

    void open() {
        store = openStore(dir / "db");
        writer = std::make_unique<edged::GroupWriter>(*store, loop);
        queue = std::make_unique<edged::DurableQueue>(*store, *writer, options);
        auto st = queue->load();
        INFO((st ? std::string() : st.error().what()));
        REQUIRE(st);
        queue->onCommitted([this] { ++commits_seen; });
    }
    void close() {
        queue.reset();
        writer.reset();
        store.reset();
    }
    void reopen() {
        settle();
        close();
        open();
    }
    /// Runs the loop until the queue has nothing left to commit.
    void settle() {
        REQUIRE(runUntil(loop, [&] { return queue->idle(); }));
    }
    Records committed(std::uint64_t after = 0) const {
        auto got = queue->readCommitted(after, kAll, kAll);
        REQUIRE(got);
        return *got;
    }

    test::TempDir dir;
    edged::QueueOptions options;
    AsioEventLoop loop;
    std::unique_ptr<store::LmdbStore> store;
    std::unique_ptr<edged::GroupWriter> writer;
    std::unique_ptr<edged::DurableQueue> queue;
    int commits_seen = 0;
};

}  // namespace

TEST_CASE("DurableQueue: records chain across commits and across a reopen", "[queue]") {
    Rig rig;
    CHECK(rig.queue->append(event(1)) == 1);
    rig.settle();
    CHECK(rig.queue->append(event(2)) == 2);
    CHECK(rig.queue->append(event(3)) == 3);
    rig.settle();
    CHECK(rig.queue->headSeq() == 3);
    CHECK(rig.queue->committedSeq() == 3);
    CHECK(rig.queue->pending() == 0);
    CHECK(rig.commits_seen >= 2);

    auto records = requireChain(rig.committed());
    REQUIRE(records.size() == 3);
    CHECK(records[0]["prev"] == "");
    CHECK(records[1]["n"] == 2);
    const auto bytes = rig.queue->bytes();
    std::size_t text_bytes = 0;
    for (const auto& [seq, text] : rig.committed()) text_bytes += text.size();
    CHECK(bytes == text_bytes);

    rig.reopen();
    CHECK(rig.queue->headSeq() == 3);
    CHECK(rig.queue->committedSeq() == 3);
    CHECK(rig.queue->bytes() == bytes);
    CHECK(rig.queue->dropped() == 0);
    CHECK(rig.queue->append(event(4)) == 4);
    rig.settle();
    records = requireChain(rig.committed());
    REQUIRE(records.size() == 4);
    CHECK(records[3]["n"] == 4);

    SECTION("members named seq, prev or hash in the input are replaced") {
        rig.queue->append({{"seq", 99}, {"prev", "forged"}, {"hash", "forged"}, {"n", 5}});
        rig.settle();
        records = requireChain(rig.committed());
        CHECK(records.back()["seq"] == 5);
    }
}

TEST_CASE("DurableQueue: records appended while a commit runs share the next transaction",
          "[queue]") {
    Rig rig;
    for (int i = 1; i <= 1000; ++i) rig.queue->append(event(i));
    CHECK(rig.queue->headSeq() == 1000);
    CHECK(rig.queue->pending() == 1000);
    rig.settle();
    CHECK(rig.queue->committedSeq() == 1000);
    CHECK(rig.queue->pending() == 0);
    // The first append starts a commit at once; the 999 others wait for it and go together.
    CHECK(rig.writer->transactions() <= 3);
    CHECK(rig.commits_seen <= 3);
    CHECK(requireChain(rig.committed()).size() == 1000);
}

TEST_CASE("DurableQueue: the byte bound drops the oldest records and counts them", "[queue]") {
    Rig rig({.name = "telemetry", .max_bytes = 2000});
    rig.queue->append(event(1, 50));
    rig.settle();
    const std::size_t size = rig.queue->bytes();  // every record below has about this size
    REQUIRE(size > 150);
    REQUIRE(size < 300);

    for (int i = 2; i <= 10; ++i) {  // committed records get dropped
        rig.queue->append(event(i, 50));
        rig.settle();
        CHECK(rig.queue->bytes() <= 2000);
    }
    for (int i = 11; i <= 30; ++i) {  // pending records get dropped too
        rig.queue->append(event(i, 50));
        CHECK(rig.queue->bytes() <= 2000);
    }
    rig.settle();
    const auto kept = rig.committed();
    REQUIRE_FALSE(kept.empty());
    CHECK(kept.size() < 30);
    CHECK(rig.queue->dropped() == 30 - kept.size());
    CHECK(kept.front().first == rig.queue->dropped() + 1);
    CHECK(kept.back().first == 30);
    auto records = requireChain(kept);
    CHECK(records.front()["prev"] != "");  // names a record the receiver will never see
    CHECK(rawRecords(*rig.store, "telemetry").size() == kept.size());  // the drops are deleted

    rig.reopen();
    CHECK(rig.queue->dropped() == 30 - kept.size());
    CHECK(rig.queue->headSeq() == 30);
    CHECK(rig.committed() == kept);
    CHECK(rig.queue->append(event(31, 50)) == 31);
    rig.settle();
    CHECK(requireChain(rig.committed()).back()["prev"] == records.back()["hash"]);

    SECTION("a record larger than the bound is dropped with everything before it") {
        const auto before = rig.queue->dropped();
        const auto live = rig.committed().size();
        CHECK(rig.queue->append(event(32, 5000)) == 32);
        CHECK(rig.queue->bytes() == 0);
        CHECK(rig.queue->dropped() == before + live + 1);
        rig.reopen();  // the head moved past the dropped record, durably
        CHECK(rig.queue->headSeq() == 32);
        CHECK(rig.queue->dropped() == before + live + 1);
        CHECK(rig.committed().empty());
        CHECK(rig.queue->append(event(33)) == 33);
    }
}

TEST_CASE("DurableQueue: an ack deletes the acknowledged records, durably", "[queue]") {
    Rig rig;
    for (int i = 1; i <= 10; ++i) rig.queue->append(event(i));
    rig.settle();
    const auto all = rig.committed();
    rig.queue->ack(4);
    CHECK(rig.queue->acked() == 4);
    CHECK(rig.committed().front().first == 5);  // even before the deletes commit
    rig.settle();
    CHECK(rawRecords(*rig.store, "decisions").size() == 6);
    rig.queue->ack(2);  // older than acked(): ignored
    CHECK(rig.queue->acked() == 4);

    rig.reopen();
    CHECK(rig.queue->acked() == 4);
    CHECK(rig.committed() == Records(all.begin() + 4, all.end()));

    rig.queue->append(event(11));  // pending: an ack past committedSeq() is clamped
    rig.queue->ack(100);
    CHECK(rig.queue->acked() == 10);
    CHECK(rig.queue->pending() == 1);
    rig.settle();
    const auto rest = rig.committed();
    REQUIRE(rest.size() == 1);
    CHECK(nlohmann::json::parse(rest[0].second)["prev"] ==
          nlohmann::json::parse(all.back().second)["hash"]);
    rig.queue->ack(11);
    rig.reopen();
    CHECK(rig.queue->acked() == 11);
    CHECK(rig.queue->bytes() == 0);
    CHECK(rawRecords(*rig.store, "decisions").empty());
}

TEST_CASE("DurableQueue: readCommitted returns committed records only, within its limits",
          "[queue]") {
    Rig rig;
    for (int i = 1; i <= 5; ++i) rig.queue->append(event(i));
    rig.settle();
    for (int i = 6; i <= 8; ++i) rig.queue->append(event(i));
    rig.writer->flush();  // in LMDB now, but the queue has not heard back: still pending
    CHECK(rig.queue->pending() == 3);
    CHECK(rig.committed().size() == 5);
    CHECK(rig.committed().back().first == 5);

    auto page = rig.queue->readCommitted(2, 2, kAll);
    REQUIRE(page);
    REQUIRE(page->size() == 2);
    CHECK((*page)[0].first == 3);
    CHECK((*page)[1].first == 4);

    page = rig.queue->readCommitted(0, kAll, 1);  // the first record is returned even if larger
    REQUIRE(page);
    CHECK(page->size() == 1);
    const auto two = rig.committed()[0].second.size() + rig.committed()[1].second.size();
    page = rig.queue->readCommitted(0, kAll, two);
    REQUIRE(page);
    CHECK(page->size() == 2);
    page = rig.queue->readCommitted(5, kAll, kAll);
    REQUIRE(page);
    CHECK(page->empty());

    rig.settle();
    CHECK(rig.committed().size() == 8);
}

TEST_CASE("DurableQueue: a failed commit keeps its records pending and retries on next append",
          "[queue]") {
    test::TempDir dir;
    auto lmdb = openStore(dir / "db");
    FailingWrites store(*lmdb);
    AsioEventLoop loop;
    edged::GroupWriter writer(store, loop);
    edged::DurableQueue queue(store, writer, {.name = "decisions"});
    REQUIRE(queue.load());
    for (int i = 1; i <= 3; ++i) queue.append(event(i));
    REQUIRE(runUntil(loop, [&] { return queue.idle(); }));

    // Each round lets the writer finish what was submitted and the loop hear back.
    auto drain = [&] {
        for (int round = 0; round < 3; ++round) {
            writer.flush();
            loop.context().poll();
        }
    };
    store.failing = true;
    queue.append(event(4));  // submitted at once
    queue.append(event(5));  // waits for 4's commit, then is retried with it at once
    drain();
    CHECK(store.attempts == 4);  // 1; 2+3 together; 4 fails; 4+5 fail
    CHECK(queue.committedSeq() == 3);
    CHECK(queue.headSeq() == 5);
    CHECK(queue.pending() == 2);
    CHECK_FALSE(queue.idle());
    auto committed = queue.readCommitted(0, kAll, kAll);
    REQUIRE(committed);
    CHECK(committed->size() == 3);
    queue.ack(5);  // clamped to what is committed; its commit fails too
    CHECK(queue.acked() == 3);
    drain();
    CHECK(store.attempts == 5);  // no retry without a new append or ack: no spinning

    store.failing = false;
    CHECK(queue.append(event(6)) == 6);  // retries 4 and 5 with it
    REQUIRE(runUntil(loop, [&] { return queue.idle(); }));
    CHECK(queue.committedSeq() == 6);
    CHECK(queue.pending() == 0);
    const auto raw = rawRecords(*lmdb, "decisions");
    REQUIRE(raw.size() == 3);  // 1..3 acked and deleted
    CHECK(raw.front().first == 4);
    requireChain(raw);
}

TEST_CASE("GroupWriter: a failing write fails alone and done callbacks keep submit order",
          "[queue]") {
    test::TempDir dir;
    auto store = openStore(dir / "db");
    AsioEventLoop loop;
    edged::GroupWriter writer(*store, loop);
    std::promise<void> release;
    auto released = release.get_future().share();
    std::vector<std::pair<int, bool>> done;
    auto record = [&](int n) {
        return [&done, n](const Status& st) { done.emplace_back(n, bool(st)); };
    };
    auto put = [](std::string key) {
        return [key](store::WriteTxn& txn) { return txn.put("kv", key, "v"); };
    };

    // The first write holds the writer thread so that the next three form one group.
    writer.submit(
        [released](store::WriteTxn& txn) {
            released.wait();
            return txn.put("kv", "first", "v");
        },
        record(0));
    writer.submit(put("a"), record(1));
    writer.submit(
        [](store::WriteTxn& txn) -> Status {
            if (auto st = txn.put("kv", "b", "v"); !st) return st;
            return fail(SharedErrc::kInvalidArgument, "bad write");
        },
        record(2));
    writer.submit(put("c"), record(3));
    release.set_value();
    writer.flush();
    REQUIRE(runUntil(loop, [&] { return done.size() == 4; }));
    CHECK(done == std::vector<std::pair<int, bool>>{{0, true}, {1, true}, {2, false}, {3, true}});
    CHECK(writer.transactions() == 3);  // first, then a and c alone after the group failed
    Records keys = rawRecords(*store, "kv");
    REQUIRE(keys.size() == 3);  // first, a, c: b's put was rolled back
}

TEST_CASE("GroupWriter: destruction commits every submitted write and runs no callback after",
          "[queue]") {
    test::TempDir dir;
    auto store = openStore(dir / "db");
    AsioEventLoop loop;
    int callbacks = 0;
    {
        edged::GroupWriter writer(*store, loop);
        for (int i = 0; i < 50; ++i) {
            writer.submit(
                [i](store::WriteTxn& txn) { return txn.put("kv", std::to_string(i), "v"); },
                [&](const Status&) { ++callbacks; });
        }
    }
    CHECK(rawRecords(*store, "kv").size() == 50);
    loop.context().restart();
    loop.context().poll();
    CHECK(callbacks == 0);
}

TEST_CASE("DurableQueue: a process killed while appending reopens with an unbroken chain",
          "[queue]") {
    test::TempDir dir;
    std::uint64_t resumed_from = 0;
    for (int round = 1; round <= 3; ++round) {
        // The child appends in bursts, commits a few hundred records, then dies at once, most
        // likely with a group commit in flight on the writer thread.
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            auto store = store::LmdbStore::open(dir / "db");
            if (!store) ::_exit(10);
            AsioEventLoop loop;
            edged::GroupWriter writer(**store, loop);
            edged::DurableQueue queue(**store, writer, {.name = "decisions"});
            if (!queue.load()) ::_exit(11);
            const std::uint64_t target = queue.headSeq() + 300;
            int n = 0;
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
            loop.context().restart();
            while (queue.committedSeq() < target) {
                if (std::chrono::steady_clock::now() > deadline) ::_exit(12);
                for (int i = 0; i < 7; ++i) queue.append(event(++n, 100));
                loop.context().poll();
            }
            for (int i = 0; i < 50; ++i) queue.append(event(++n, 100));
            ::_exit(0);
        }
        int status = 0;
        REQUIRE(::waitpid(pid, &status, 0) == pid);
        REQUIRE(WIFEXITED(status));
        REQUIRE(WEXITSTATUS(status) == 0);

        auto store = openStore(dir / "db");
        const auto raw = rawRecords(*store, "decisions");
        const auto records = requireChain(raw);  // no broken link, no reused seq
        REQUIRE(records.size() >= resumed_from + 300);
        CHECK(raw.front().first == 1);
        CHECK(records.front()["prev"] == "");

        AsioEventLoop loop;
        edged::GroupWriter writer(*store, loop);
        edged::DurableQueue queue(*store, writer, {.name = "decisions"});
        REQUIRE(queue.load());
        CHECK(queue.headSeq() == raw.back().first);  // resumes from the last committed record
        CHECK(queue.append(event(-1)) == raw.back().first + 1);
        REQUIRE(runUntil(loop, [&] { return queue.idle(); }));
        auto after = queue.readCommitted(raw.back().first - 1, kAll, kAll);
        REQUIRE(after);
        REQUIRE(after->size() == 2);
        requireChain(*after);
        resumed_from = queue.headSeq();
    }
}
