#include "edged/group_writer.hpp"

#include <exception>

#include <sys/resource.h>
#include <unistd.h>
#include <string>
#include <utility>

namespace edge::edged {

GroupWriter::GroupWriter(store::Store& store, EventLoop& loop, std::chrono::milliseconds min_interval)
    : store_(store), loop_(loop), min_interval_(min_interval), thread_([this] { run(); }) {}

GroupWriter::~GroupWriter() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    work_.notify_one();
    thread_.join();  // run() drains the queue before it returns
    std::lock_guard lock(completions_->mutex);
    completions_->closed = true;
    completions_->ready.clear();
}

void GroupWriter::submit(WriteFn write, DoneFn done) {
    {
        std::lock_guard lock(mutex_);
        queue_.push_back(Item{std::move(write), std::move(done)});
        ++submitted_count_;
    }
    work_.notify_one();
}

void GroupWriter::flush() {
    std::unique_lock lock(mutex_);
    const std::uint64_t target = submitted_count_;
    ++flush_waiters_;
    work_.notify_one();  // cuts a min_interval wait short
    finished_.wait(lock, [&] { return finished_count_ >= target; });
    --flush_waiters_;
}

std::uint64_t GroupWriter::transactions() const {
    std::lock_guard lock(mutex_);
    return transactions_;
}

void GroupWriter::run() {
    // Slightly below the loop thread (nice 5: about a third of the loop's weight when both
    // want the CPU), so a commit's CPU time (page copies, the filesystem's fsync work) does not
    // hold up a request being answered. Not lower: starved commits are what a crash takes, and
    // DecisionSettings::max_uncommitted turns a writer that falls behind into 503s, not loss.
    (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 5);
    for (;;) {
        std::vector<Item> group;
        {
            std::unique_lock lock(mutex_);
            work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping, and everything is drained
            group.swap(queue_);
        }
        const auto started = std::chrono::steady_clock::now();
        std::vector<Status> statuses = commit(group);
        {
            // The done callbacks go through one shared FIFO, so they run in submit order
            // whatever order the loop runs posted functions in.
            std::lock_guard lock(completions_->mutex);
            for (std::size_t i = 0; i < group.size(); ++i) {
                if (group[i].done) {
                    completions_->ready.emplace_back(std::move(group[i].done),
                                                     std::move(statuses[i]));
                }
            }
        }
        loop_.post([completions = completions_] {
            std::deque<std::pair<DoneFn, Status>> ready;
            {
                std::lock_guard lock(completions->mutex);
                if (completions->closed) return;
                ready.swap(completions->ready);
            }
            for (auto& [done, status] : ready) done(status);
        });
        {
            std::lock_guard lock(mutex_);
            finished_count_ += group.size();
        }
        finished_.notify_all();
        if (min_interval_.count() > 0) {
            std::unique_lock lock(mutex_);
            work_.wait_until(lock, started + min_interval_, [&] { return stopping_ || flush_waiters_ > 0; });
        }
    }
}

Status GroupWriter::writeOne(const WriteFn& write, store::WriteTxn& txn) {
    // A throwing fn must not take the writer thread (and the process) down with it.
    try {
        return write(txn);
    } catch (const std::exception& e) {
        return fail(SharedErrc::kStore, std::string("write threw: ") + e.what());
    }
}

std::vector<Status> GroupWriter::commit(std::vector<Item>& group) {
    auto count_transaction = [&] {
        std::lock_guard lock(mutex_);
        ++transactions_;
    };
    Status all = store_.write([&](store::WriteTxn& txn) -> Status {
        for (const auto& item : group) {
            if (auto st = writeOne(item.write, txn); !st) return st;
        }
        return {};
    });
    if (all) {
        count_transaction();
        return std::vector<Status>(group.size());
    }
    if (group.size() == 1) return {std::move(all)};
    // Find out which write failed: each alone, so the good ones still commit.
    std::vector<Status> statuses;
    statuses.reserve(group.size());
    for (const auto& item : group) {
        statuses.push_back(
            store_.write([&](store::WriteTxn& txn) { return writeOne(item.write, txn); }));
        if (statuses.back()) count_transaction();
    }
    return statuses;
}

}  // namespace edge::edged
