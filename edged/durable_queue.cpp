#include "edged/durable_queue.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <iterator>
#include <optional>

#include "shared/core/log.hpp"
#include "shared/telemetry/record_chain.hpp"

namespace edge::edged {

/// One commit's work, immutable once submitted: the writer thread reads it, the loop keeps it
/// to put the work back if the commit fails.
struct DurableQueue::Batch {
    std::vector<std::pair<std::uint64_t, std::string>> records;  // seq, text
    std::vector<std::uint64_t> deletes;
    std::uint64_t head_seq = 0;
    std::string head_hash;
    std::uint64_t acked = 0;
    std::uint64_t dropped = 0;
};

namespace {

constexpr std::string_view kHeadSeq = "head_seq";
constexpr std::string_view kHeadHash = "head_hash";
constexpr std::string_view kAcked = "acked";
constexpr std::string_view kDropped = "dropped";

std::string seqKey(std::uint64_t seq) {
    std::string key(8, '\0');
    for (int i = 7; i >= 0; --i) {
        key[static_cast<std::size_t>(i)] = static_cast<char>(seq & 0xffu);
        seq >>= 8;
    }
    return key;
}

std::optional<std::uint64_t> seqFromKey(std::string_view key) {
    if (key.size() != 8) return std::nullopt;
    std::uint64_t seq = 0;
    for (char c : key) seq = (seq << 8) | static_cast<unsigned char>(c);
    return seq;
}

Result<std::uint64_t> parseCount(const std::optional<std::string>& text, std::string_view what) {
    if (!text) return 0;
    std::uint64_t value = 0;
    const auto* end = text->data() + text->size();
    auto [ptr, ec] = std::from_chars(text->data(), end, value);
    if (ec != std::errc() || ptr != end || text->empty()) {
        return fail(SharedErrc::kStore, fmt::format("meta '{}' is not a number", what));
    }
    return value;
}

}  // namespace

DurableQueue::DurableQueue(store::Store& store, GroupWriter& writer, QueueOptions options)
    : store_(store),
      writer_(writer),
      options_(std::move(options)),
      records_db_(options_.name),
      meta_db_(options_.name + "_meta") {}

DurableQueue::~DurableQueue() = default;

Status DurableQueue::load() {
    std::optional<std::string> head_seq, head_hash, acked, dropped;
    std::deque<Entry> live;
    bool bad_key = false;
    auto st = store_.read([&](const store::ReadTxn& txn) -> Status {
        const std::pair<std::string_view, std::optional<std::string>*> slots[] = {
            {kHeadSeq, &head_seq}, {kHeadHash, &head_hash}, {kAcked, &acked}, {kDropped, &dropped}};
        for (auto [key, slot] : slots) {
            auto value = txn.get(meta_db_, key);
            if (!value) return fail(value.error());
            *slot = std::move(*value);
        }
        return txn.forEach(records_db_, [&](std::string_view key, std::string_view value) {
            const auto seq = seqFromKey(key);
            if (!seq) {
                bad_key = true;
                return false;
            }
            live.push_back(Entry{*seq, value.size()});
            return true;
        });
    });
    const auto context = fmt::format("load queue '{}'", options_.name);
    if (!st) return fail(std::move(st.error()).wrap(context));
    if (bad_key) {
        return fail(Error(make_error_code(SharedErrc::kStore), "bad record key").wrap(context));
    }
    auto head = parseCount(head_seq, kHeadSeq);
    auto acked_seq = parseCount(acked, kAcked);
    auto dropped_count = parseCount(dropped, kDropped);
    for (auto* r : {&head, &acked_seq, &dropped_count}) {
        if (!*r) return fail(std::move(r->error()).wrap(context));
    }
    if (!live.empty() && live.back().seq > *head) {
        return fail(Error(make_error_code(SharedErrc::kStore),
                          fmt::format("record {} is past the head {}", live.back().seq, *head))
                        .wrap(context));
    }
    if (*head > 0 && !head_hash) {
        return fail(Error(make_error_code(SharedErrc::kStore), "head hash missing").wrap(context));
    }

    head_seq_ = committed_seq_ = *head;
    head_hash_ = head_hash.value_or("");
    acked_ = *acked_seq;
    dropped_ = *dropped_count;
    live_ = std::move(live);
    bytes_ = 0;
    for (const auto& e : live_) bytes_ += e.size;
    // An ack deletes its records in the same commit, so none should remain; forget any that do.
    while (!live_.empty() && live_.front().seq <= acked_) removeOldest();
    makeRoom();  // max_bytes may have shrunk since the records were written
    return {};
}

std::uint64_t DurableQueue::append(nlohmann::json record) {
    assert(record.is_object());
    const std::uint64_t seq = head_seq_ + 1;
    record.erase("hash");
    record["seq"] = seq;
    record["prev"] = head_hash_;
    std::string hash = chain::recordHash(record);
    record["hash"] = hash;
    std::string text = chain::canonicalText(record);

    head_seq_ = seq;
    head_hash_ = std::move(hash);
    meta_dirty_ = true;
    live_.push_back(Entry{seq, text.size()});
    bytes_ += text.size();
    queued_.emplace_back(seq, std::move(text));
    makeRoom();
    schedule();
    return seq;
}

void DurableQueue::makeRoom() {
    std::uint64_t dropped_now = 0;
    while (bytes_ > options_.max_bytes && !live_.empty()) {
        removeOldest();
        ++dropped_now;
    }
    if (dropped_now > 0) {
        // Counted always (status, every batch); logged as a warning at the first drop and at
        // every 10,000th after it, so a full queue is loud without flooding the log.
        const bool loud = dropped_ == 0 || dropped_ / 10000 != (dropped_ + dropped_now) / 10000;
        dropped_ += dropped_now;
        if (loud) {
            log::warn("queue '{}' full ({} bytes): dropping the oldest records, {} dropped in all",
                      options_.name, options_.max_bytes, dropped_);
        }
    }
}

void DurableQueue::removeOldest() {
    const Entry oldest = live_.front();
    live_.pop_front();
    bytes_ -= oldest.size;
    meta_dirty_ = true;
    if (!queued_.empty() && queued_.front().first == oldest.seq) {
        queued_.pop_front();  // never written
    } else {
        deletes_.push_back(oldest.seq);  // stored, or being stored by the commit in flight
    }
}

void DurableQueue::ack(std::uint64_t seq) {
    seq = std::min(seq, committed_seq_);
    if (seq <= acked_) return;
    acked_ = seq;
    meta_dirty_ = true;
    while (!live_.empty() && live_.front().seq <= seq) removeOldest();
    schedule();
}

void DurableQueue::onCommitted(std::function<void()> fn) { on_committed_ = std::move(fn); }

std::size_t DurableQueue::pending() const {
    auto first_pending = std::partition_point(
        live_.begin(), live_.end(), [&](const Entry& e) { return e.seq <= committed_seq_; });
    return static_cast<std::size_t>(std::distance(first_pending, live_.end()));
}

bool DurableQueue::idle() const {
    return !in_flight_ && queued_.empty() && deletes_.empty() && !meta_dirty_;
}

void DurableQueue::schedule() {
    if (in_flight_ || (queued_.empty() && deletes_.empty() && !meta_dirty_)) return;
    auto batch = std::make_shared<Batch>();
    batch->records.assign(std::make_move_iterator(queued_.begin()),
                          std::make_move_iterator(queued_.end()));
    queued_.clear();
    batch->deletes = std::move(deletes_);
    deletes_.clear();
    batch->head_seq = head_seq_;
    batch->head_hash = head_hash_;
    batch->acked = acked_;
    batch->dropped = dropped_;
    meta_dirty_ = false;
    in_flight_ = batch;
    // The write runs on the writer thread: it captures the batch and names, never this.
    writer_.submit(
        [batch, records_db = records_db_, meta_db = meta_db_](store::WriteTxn& txn) {
            return writeBatch(records_db, meta_db, *batch, txn);
        },
        [this, alive = std::weak_ptr<bool>(alive_), batch](const Status& status) {
            if (!alive.expired()) finish(batch, status);
        });
}

void DurableQueue::finish(const std::shared_ptr<const Batch>& batch, const Status& status) {
    in_flight_.reset();
    if (status) {
        committed_seq_ = batch->head_seq;
        schedule();  // what was appended while this commit ran
        if (!batch->records.empty() && on_committed_) on_committed_();
        return;
    }
    // An append, ack or drop since this commit was submitted is the retry it was owed; with
    // none, wait for the next one rather than spin on a store that keeps failing.
    const bool retry_now = meta_dirty_;
    log::warn("queue '{}': commit failed ({} records stay pending, retry {}): {}", options_.name,
              batch->records.size(), retry_now ? "now" : "on the next append",
              status.error().what());
    // Put the work back. Records dropped while the commit ran stay dropped (their deletes are
    // already queued and harmless); the rest go before anything appended since.
    const std::uint64_t first_live = live_.empty() ? head_seq_ + 1 : live_.front().seq;
    auto kept = std::find_if(batch->records.begin(), batch->records.end(),
                             [&](const auto& r) { return r.first >= first_live; });
    queued_.insert(queued_.begin(), kept, batch->records.end());
    deletes_.insert(deletes_.end(), batch->deletes.begin(), batch->deletes.end());
    meta_dirty_ = true;
    if (retry_now) schedule();
}

Result<std::vector<std::pair<std::uint64_t, std::string>>> DurableQueue::readCommitted(
    std::uint64_t after, std::size_t max_records, std::size_t max_bytes) const {
    std::vector<std::pair<std::uint64_t, std::string>> out;
    // Records before the first live one were dropped or acked; their deletes may not have been
    // committed yet.
    if (live_.empty() || max_records == 0 || after >= committed_seq_) return out;
    const std::uint64_t from = std::max(after + 1, live_.front().seq);
    const std::uint64_t to = committed_seq_;
    std::size_t total = 0;
    auto st = store_.read([&](const store::ReadTxn& txn) {
        // forEach starts at the first key; acked records are deleted, so that is close to from.
        return txn.forEach(records_db_, [&](std::string_view key, std::string_view value) {
            const auto seq = seqFromKey(key);
            if (!seq || *seq < from) return true;
            if (*seq > to) return false;
            if (!out.empty() && total + value.size() > max_bytes) return false;
            total += value.size();
            out.emplace_back(*seq, std::string(value));
            return out.size() < max_records;
        });
    });
    if (!st) return fail(std::move(st.error()).wrap(fmt::format("read queue '{}'", options_.name)));
    return out;
}

Status DurableQueue::writeBatch(const std::string& records_db, const std::string& meta_db,
                                const Batch& batch, store::WriteTxn& txn) {
    for (const auto& [seq, text] : batch.records) {
        if (auto st = txn.put(records_db, seqKey(seq), text); !st) return st;
    }
    for (auto seq : batch.deletes) {
        if (auto st = txn.del(records_db, seqKey(seq)); !st) return st;
    }
    const std::pair<std::string_view, std::string> meta[] = {
        {kHeadSeq, std::to_string(batch.head_seq)},
        {kHeadHash, batch.head_hash},
        {kAcked, std::to_string(batch.acked)},
        {kDropped, std::to_string(batch.dropped)},
    };
    for (const auto& [key, value] : meta) {
        if (auto st = txn.put(meta_db, key, value); !st) return st;
    }
    return {};
}

}  // namespace edge::edged
