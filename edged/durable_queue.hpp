#pragma once
// DurableQueue: a bounded, hash-chained queue of JSON records in the store, for the decision
// log and the telemetry queue. Records wait there until the control plane acknowledges them.
//
// Store layout (name = QueueOptions::name):
//   db "<name>"      key 8-byte big-endian seq (key order = seq order) -> record JSON text
//   db "<name>_meta" key "head_seq", "head_hash" -> last record whose fate is decided
//                                                   (stored, or dropped before it was stored)
//                    key "acked"                 -> highest seq the receiver confirmed
//                    key "dropped"               -> records dropped for space, ever
// All values in the meta db are decimal text, except head_hash (hex).
//
// Contracts:
// - Loop thread only (commits run on the GroupWriter's thread; their results come back on the
//   loop).
// - Every commit writes the records, the deletes and all meta keys in one transaction, so after
//   a crash load() resumes the chain from the last committed record: no broken link, and no seq
//   of a committed record is ever used again. Records appended but not committed are lost.
// - At most one commit of a queue is in flight; what is appended meanwhile goes into the next.
//   A failed commit keeps its work pending (and logs a warning); it is retried on the next
//   append() or ack(), at once if one came while it was in flight.
// - The queue must be destroyed before the GroupWriter; destroying it abandons work that was
//   not yet submitted (GroupWriter::flush() only covers what was submitted).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "edged/group_writer.hpp"
#include "shared/core/error.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

struct QueueOptions {
    std::string name;                   // "decisions" / "telemetry"
    std::size_t max_bytes = 64u << 20;  // bound on stored + pending record text bytes
};

class DurableQueue {
public:
    DurableQueue(store::Store& store, GroupWriter& writer, QueueOptions options);
    ~DurableQueue();
    DurableQueue(const DurableQueue&) = delete;
    DurableQueue& operator=(const DurableQueue&) = delete;

    /// Reads head seq and hash, acked seq, dropped count and the (seq, size) of every stored
    /// record. Call once, before anything else. kStore when the stored queue is inconsistent.
    [[nodiscard]] Status load();

    /// Precondition: record is a JSON object. Sets its "seq" (headSeq() + 1), "prev" (hash of
    /// the previous record, "" for the very first one ever) and "hash" (chain::recordHash),
    /// replacing members of those names, and queues it for the next group commit. Returns seq.
    /// When the queue would pass max_bytes, the oldest records (committed or pending; a record
    /// larger than max_bytes on its own included) are dropped and dropped() grows by their count.
    /// The chain is never recomputed: the first record kept after a drop names, in "prev", a
    /// record the receiver will never see, and the dropped count explains the gap.
    std::uint64_t append(nlohmann::json record);

    /// Committed records with seq > after, in seq order, as their stored JSON text: at most
    /// max_records, and no more than max_bytes of text unless the first record alone is larger
    /// (so a big record cannot block the queue). Records dropped or acked meanwhile are skipped.
    [[nodiscard]] Result<std::vector<std::pair<std::uint64_t, std::string>>> readCommitted(
        std::uint64_t after, std::size_t max_records, std::size_t max_bytes) const;

    /// The receiver stored everything up to seq: acked() becomes seq and those records are
    /// deleted, both in the next group commit. Ignores seq <= acked(); clamps to committedSeq().
    void ack(std::uint64_t seq);

    /// Called on the loop after each commit that made new records durable (e.g. to publish).
    void onCommitted(std::function<void()> fn);

    [[nodiscard]] std::uint64_t headSeq() const { return head_seq_; }  // last seq appended
    [[nodiscard]] std::uint64_t committedSeq() const { return committed_seq_; }
    [[nodiscard]] std::uint64_t acked() const { return acked_; }
    [[nodiscard]] std::uint64_t dropped() const { return dropped_; }  // ever, for space
    [[nodiscard]] std::size_t bytes() const { return bytes_; }        // stored + pending
    /// Records appended and not yet committed (queued or in a commit in flight).
    [[nodiscard]] std::size_t pending() const;
    /// True when nothing (record, ack, drop) waits for a commit and none is in flight.
    [[nodiscard]] bool idle() const;

private:
    struct Entry {  // a record counted in bytes_
        std::uint64_t seq;
        std::size_t size;
    };
    struct Batch;  // one commit's work; defined in the .cpp

    /// Drops the oldest records until bytes_ fits max_bytes.
    void makeRoom();
    /// Forgets the oldest live record: unqueues it, or deletes it in the next commit.
    void removeOldest();
    /// Submits the work waiting (if any) unless a commit is already in flight.
    void schedule();
    void finish(const std::shared_ptr<const Batch>& batch, const Status& status);
    /// Runs on the writer thread: records, deletes and every meta key, in one transaction.
    static Status writeBatch(const std::string& records_db, const std::string& meta_db,
                             const Batch& batch, store::WriteTxn& txn);

    store::Store& store_;
    GroupWriter& writer_;
    QueueOptions options_;
    std::string records_db_;
    std::string meta_db_;
    std::function<void()> on_committed_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // guards done callbacks

    std::uint64_t head_seq_ = 0;
    std::string head_hash_;
    std::uint64_t committed_seq_ = 0;
    std::uint64_t acked_ = 0;
    std::uint64_t dropped_ = 0;
    std::size_t bytes_ = 0;
    std::deque<Entry> live_;  // every record not dropped or acked, committed or not, by seq
    std::deque<std::pair<std::uint64_t, std::string>> queued_;  // not yet in a commit
    std::vector<std::uint64_t> deletes_;                        // seqs to delete in the next commit
    bool meta_dirty_ = false;  // acked_/dropped_/head changed since the last commit
    std::shared_ptr<const Batch> in_flight_;
};

}  // namespace edge::edged
