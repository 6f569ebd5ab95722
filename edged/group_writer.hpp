#pragma once
// GroupWriter: runs store writes on one background thread with group commit. Every write
// submitted while the previous transaction was committing goes into ONE next transaction, so a
// burst of small writes costs one fsync instead of one each.
//
// Contracts:
// - submit() and flush() are thread-safe; transactions() may be read from any thread.
// - A write fn runs on the writer thread, inside a transaction shared with other writes: it must
//   only touch the transaction and data it owns (capture by value), never loop-thread state.
//   It must not call submit() or flush() (the writer thread would wait for itself).
// - If the shared transaction fails (any fn returns an error, or the commit fails), each write
//   of the group is retried alone, so one bad write does not fail the others; each done gets
//   the status of its own write. A fn may therefore run twice; only the successful run's
//   changes are committed.
// - done callbacks are posted to the EventLoop and run on the loop thread in submit order.
// - The destructor (call it on the loop thread, and keep the store alive until it returns)
//   commits or fails every write already submitted, then returns; the done callbacks of those
//   writes are not run once it has returned.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "shared/core/error.hpp"
#include "shared/loop/event_loop.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

class GroupWriter {
public:
    using WriteFn = std::function<Status(store::WriteTxn&)>;
    using DoneFn = std::function<void(const Status&)>;

    /// min_interval spaces transactions out: after one commits, the next starts no sooner than
    /// min_interval after it started (flush() and shutdown skip the wait). A longer interval
    /// puts more writes in each fsync; what waits is lost on power loss, so keep it short.
    GroupWriter(store::Store& store, EventLoop& loop,
                std::chrono::milliseconds min_interval = std::chrono::milliseconds(0));
    ~GroupWriter();
    GroupWriter(const GroupWriter&) = delete;
    GroupWriter& operator=(const GroupWriter&) = delete;

    /// Queues write for the next group commit; done (may be empty) runs on the loop afterwards.
    void submit(WriteFn write, DoneFn done);
    /// Blocks until every write submitted before the call is committed or failed (for shutdown
    /// and tests). Runs no done callbacks itself: those still need the loop to turn.
    void flush();
    /// Transactions committed so far (group and single retries), for benchmarks and tests.
    [[nodiscard]] std::uint64_t transactions() const;

private:
    struct Item {
        WriteFn write;
        DoneFn done;
    };
    /// Finished writes waiting for the loop; shared with posted callbacks so that they stay
    /// safe to run after the writer is gone (closed then makes them do nothing).
    struct Completions {
        std::mutex mutex;
        std::deque<std::pair<DoneFn, Status>> ready;
        bool closed = false;
    };

    void run();
    /// Commits group and returns one status per item.
    std::vector<Status> commit(std::vector<Item>& group);
    Status writeOne(const WriteFn& write, store::WriteTxn& txn);

    store::Store& store_;
    EventLoop& loop_;
    const std::chrono::milliseconds min_interval_;
    int flush_waiters_ = 0;  // guarded by mutex_: a flush() in progress skips min_interval
    std::shared_ptr<Completions> completions_ = std::make_shared<Completions>();

    mutable std::mutex mutex_;
    std::condition_variable work_;      // queue_ gained items, or stopping_
    std::condition_variable finished_;  // finished_count_ grew
    std::vector<Item> queue_;
    std::uint64_t submitted_count_ = 0;
    std::uint64_t finished_count_ = 0;
    std::uint64_t transactions_ = 0;
    bool stopping_ = false;
    std::thread thread_;  // last: starts after everything it uses exists
};

}  // namespace edge::edged
