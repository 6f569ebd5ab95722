#include "controlplane/stream_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "shared/telemetry/record_chain.hpp"

namespace edge::controlplane {
namespace {

constexpr std::string_view kRecordsDb = "stream_records";
constexpr std::string_view kMetaDb = "stream_meta";
constexpr std::size_t kMaxDeviceId = 64;

Status checkIds(std::string_view device, std::string_view stream) {
    const bool device_ok = !device.empty() && device.size() <= kMaxDeviceId &&
                           std::all_of(device.begin(), device.end(), [](char c) {
                               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                           });
    if (!device_ok) {
        return fail(SharedErrc::kInvalidArgument, "device id must match [A-Za-z0-9._-]{1,64}");
    }
    if (stream != "decisions" && stream != "telemetry") {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("unknown stream '{}' (decisions or telemetry)", stream));
    }
    return {};
}

std::string streamKey(std::string_view device, std::string_view stream) {
    return fmt::format("{}/{}", device, stream);
}

/// "<device>/<stream>/" + 8-byte big-endian seq: key order is seq order within a stream.
std::string recordKey(std::string_view prefix, std::uint64_t seq) {
    std::string key(prefix);
    for (int shift = 56; shift >= 0; shift -= 8) {
        key.push_back(static_cast<char>((seq >> shift) & 0xffu));
    }
    return key;
}

std::optional<std::uint64_t> seqOf(std::string_view key, std::string_view prefix) {
    if (!key.starts_with(prefix) || key.size() != prefix.size() + 8) return std::nullopt;
    std::uint64_t seq = 0;
    for (char c : key.substr(prefix.size())) seq = (seq << 8) | static_cast<unsigned char>(c);
    return seq;
}

/// Visits the records of one stream in seq order. forEach cannot seek, so this walks from the
/// first key of the db and stops at the first key past the stream's prefix.
Status forEachRecord(const store::ReadTxn& txn, std::string_view prefix,
                     const std::function<bool(std::uint64_t, std::string_view)>& fn) {
    return txn.forEach(kRecordsDb, [&](std::string_view key, std::string_view value) {
        if (key < prefix) return true;
        if (!key.starts_with(prefix)) return false;
        auto seq = seqOf(key, prefix);
        return seq ? fn(*seq, value) : true;
    });
}

/// A string member of stored record text, or "" when the text is not such a record.
std::string memberOf(std::string_view text, const char* name) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return {};
    const auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

struct Meta {
    std::uint64_t dropped_reported = 0;
    std::uint64_t records = 0;
    std::uint64_t last_seq = 0;
};

Result<Meta> readMeta(const store::ReadTxn& txn, const std::string& key) {
    auto text = txn.get(kMetaDb, key);
    if (!text) return fail(text.error());
    Meta meta;
    if (!*text) return meta;
    try {
        const auto j = nlohmann::json::parse(**text);
        meta.dropped_reported = j.at("dropped_reported").get<std::uint64_t>();
        meta.records = j.at("records").get<std::uint64_t>();
        meta.last_seq = j.at("last_seq").get<std::uint64_t>();
    } catch (const nlohmann::json::exception& e) {
        return fail(SharedErrc::kStore,
                    fmt::format("stream meta '{}' is corrupt: {}", key, e.what()));
    }
    return meta;
}

/// A record of an incoming batch, checked on its own.
struct Incoming {
    std::uint64_t seq;
    std::string prev;
    std::string hash;
    std::string text;  // canonical, as stored
};

struct Batch {
    std::uint64_t dropped = 0;
    std::vector<Incoming> records;
};

std::unexpected<Error> invalid(std::string message) {
    return fail(SharedErrc::kInvalidArgument, std::move(message));
}

/// Everything that can be checked without the store.
Result<Batch> parseBatch(std::string_view device, std::string_view stream,
                         std::string_view payload) {
    const auto doc = nlohmann::json::parse(payload, nullptr, false);
    if (doc.is_discarded()) return fail(SharedErrc::kParse, "payload is not JSON");
    if (!doc.is_object()) return fail(SharedErrc::kParse, "payload is not a JSON object");
    const auto named = [&](const char* field, std::string_view expected) -> Status {
        const auto it = doc.find(field);
        if (it == doc.end() || !it->is_string()) {
            return fail(SharedErrc::kParse, fmt::format("payload has no string \"{}\"", field));
        }
        if (it->get_ref<const std::string&>() != expected) {
            return invalid(fmt::format("payload is for {} '{}', not '{}'", field,
                                       it->get_ref<const std::string&>(), expected));
        }
        return {};
    };
    if (auto st = named("device", device); !st) return fail(st.error());
    if (auto st = named("stream", stream); !st) return fail(st.error());
    const auto dropped = doc.find("dropped");
    if (dropped == doc.end() || !dropped->is_number_unsigned()) {
        return fail(SharedErrc::kParse, "payload has no unsigned \"dropped\"");
    }
    const auto records = doc.find("records");
    if (records == doc.end() || !records->is_array()) {
        return fail(SharedErrc::kParse, "payload has no \"records\" array");
    }
    Batch batch;
    batch.dropped = dropped->get<std::uint64_t>();
    batch.records.reserve(records->size());
    for (const auto& record : *records) {
        if (auto st = chain::checkRecord(record); !st) return fail(st.error());
        Incoming in{record.at("seq").get<std::uint64_t>(), record.at("prev").get<std::string>(),
                    record.at("hash").get<std::string>(), chain::canonicalText(record)};
        if (!batch.records.empty()) {
            const Incoming& before = batch.records.back();
            if (in.seq <= before.seq) {
                return invalid(fmt::format("seq {} does not follow seq {}", in.seq, before.seq));
            }
            if (in.seq == before.seq + 1 && in.prev != before.hash) {
                return invalid(
                    fmt::format("seq {}: prev does not match hash of seq {}", in.seq, before.seq));
            }
        }
        batch.records.push_back(std::move(in));
    }
    return batch;
}

/// Stores what of batch is new, checking it against what is stored; any error aborts.
Status storeBatch(store::WriteTxn& txn, std::string_view device, std::string_view stream,
                  const Batch& batch) {
    const std::string meta_key = streamKey(device, stream);
    const std::string prefix = meta_key + "/";
    auto meta = readMeta(txn, meta_key);
    if (!meta) return fail(meta.error());
    const Meta before = *meta;
    const auto stored = [&](std::uint64_t seq) {
        return txn.get(kRecordsDb, recordKey(prefix, seq));
    };
    const auto& records = batch.records;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const Incoming& r = records[i];
        auto existing = stored(r.seq);
        if (!existing) return fail(existing.error());
        if (*existing) {
            if (memberOf(**existing, "hash") != r.hash) {
                return invalid(
                    fmt::format("seq {}: conflicting record (stored one has another hash)", r.seq));
            }
            continue;  // received before: same hash, same content
        }
        if (r.seq > 1 && (i == 0 || records[i - 1].seq != r.seq - 1)) {
            auto pred = stored(r.seq - 1);
            if (!pred) return fail(pred.error());
            if (*pred && memberOf(**pred, "hash") != r.prev) {
                return invalid(fmt::format("seq {}: prev does not match hash of stored seq {}",
                                           r.seq, r.seq - 1));
            }
        }
        if (i + 1 == records.size() || records[i + 1].seq != r.seq + 1) {
            auto succ = stored(r.seq + 1);
            if (!succ) return fail(succ.error());
            if (*succ && memberOf(**succ, "prev") != r.hash) {
                return invalid(
                    fmt::format("seq {}: stored seq {} does not link to it", r.seq, r.seq + 1));
            }
        }
        if (auto st = txn.put(kRecordsDb, recordKey(prefix, r.seq), r.text); !st) return st;
        ++meta->records;
        meta->last_seq = std::max(meta->last_seq, r.seq);
    }
    meta->dropped_reported = std::max(meta->dropped_reported, batch.dropped);
    if (meta->records == before.records && meta->dropped_reported == before.dropped_reported &&
        meta->last_seq == before.last_seq) {
        return {};
    }
    const nlohmann::json j = {{"dropped_reported", meta->dropped_reported},
                              {"records", meta->records},
                              {"last_seq", meta->last_seq}};
    return txn.put(kMetaDb, meta_key, j.dump());
}

}  // namespace

nlohmann::json toJson(const ChainReport& r) {
    nlohmann::json gaps = nlohmann::json::array();
    for (const auto& [from, to] : r.gaps) gaps.push_back({from, to});
    return {{"records", r.records},   {"first_seq", r.first_seq},
            {"last_seq", r.last_seq}, {"dropped_reported", r.dropped_reported},
            {"gaps", gaps},           {"verified", r.verified},
            {"problems", r.problems}};
}

StreamStore::StreamStore(store::Store& store) : store_(store) {}

Result<std::uint64_t> StreamStore::ingest(std::string_view device, std::string_view stream,
                                          std::string_view payload) {
    const auto context = fmt::format("ingest {}/{}", device, stream);
    if (auto st = checkIds(device, stream); !st) return fail(std::move(st.error()).wrap("ingest"));
    auto batch = parseBatch(device, stream, payload);
    if (!batch) return fail(std::move(batch.error()).wrap(context));
    auto st =
        store_.write([&](store::WriteTxn& txn) { return storeBatch(txn, device, stream, *batch); });
    if (!st) return fail(std::move(st.error()).wrap(context));
    return batch->records.empty() ? 0 : batch->records.back().seq;
}

Result<std::vector<nlohmann::json>> StreamStore::list(std::string_view device,
                                                      std::string_view stream, std::uint64_t after,
                                                      std::size_t limit) const {
    if (auto st = checkIds(device, stream); !st) return fail(std::move(st.error()).wrap("list"));
    const std::string prefix = streamKey(device, stream) + "/";
    std::vector<nlohmann::json> out;
    std::optional<std::uint64_t> corrupt;
    if (limit == 0) return out;
    auto st = store_.read([&](const store::ReadTxn& txn) {
        return forEachRecord(txn, prefix, [&](std::uint64_t seq, std::string_view text) {
            if (seq <= after) return true;
            auto j = nlohmann::json::parse(text, nullptr, false);
            if (j.is_discarded()) {
                corrupt = seq;
                return false;
            }
            out.push_back(std::move(j));
            return out.size() < limit;
        });
    });
    const auto context = fmt::format("list {}/{}", device, stream);
    if (!st) return fail(std::move(st.error()).wrap(context));
    if (corrupt) {
        return fail(Error(make_error_code(SharedErrc::kStore),
                          fmt::format("stored record seq {} is not JSON", *corrupt))
                        .wrap(context));
    }
    return out;
}

Result<ChainReport> StreamStore::verify(std::string_view device, std::string_view stream) const {
    if (auto st = checkIds(device, stream); !st) return fail(std::move(st.error()).wrap("verify"));
    const std::string meta_key = streamKey(device, stream);
    const std::string prefix = meta_key + "/";
    ChainReport report;
    std::optional<std::string> last_hash;  // recomputed hash of the record at report.last_seq
    auto visit = [&](std::uint64_t seq, std::string_view text) {
        if (report.records == 0) {
            report.first_seq = seq;
        } else if (seq > report.last_seq + 1) {
            report.gaps.emplace_back(report.last_seq + 1, seq - 1);
            last_hash.reset();
        }
        const bool has_predecessor = report.records > 0 && seq == report.last_seq + 1;
        ++report.records;
        report.last_seq = seq;
        const auto record = nlohmann::json::parse(text, nullptr, false);
        if (record.is_discarded()) {
            report.problems.push_back(fmt::format("seq {}: stored record is not JSON", seq));
            last_hash.reset();
            return true;
        }
        if (auto st = chain::checkRecord(record); !st) {
            report.problems.push_back(st.error().what());
        } else if (record.at("seq").get<std::uint64_t>() != seq) {
            report.problems.push_back(fmt::format("seq {}: record says seq {}", seq,
                                                  record.at("seq").get<std::uint64_t>()));
        }
        const auto prev = record.find("prev");
        if (has_predecessor && last_hash &&
            (prev == record.end() || !prev->is_string() || *prev != *last_hash)) {
            report.problems.push_back(
                fmt::format("seq {}: prev does not match hash of seq {}", seq, seq - 1));
        }
        // The recomputed hash, not the stored one: an edit that kept the old "hash" is caught
        // by checkRecord above, an edit that rewrote it is caught by the next link.
        last_hash = chain::recordHash(record);
        return true;
    };
    auto st = store_.read([&](const store::ReadTxn& txn) -> Status {
        auto meta = readMeta(txn, meta_key);
        if (!meta) return fail(meta.error());
        report.dropped_reported = meta->dropped_reported;
        return forEachRecord(txn, prefix, visit);
    });
    if (!st) return fail(std::move(st.error()).wrap(fmt::format("verify {}/{}", device, stream)));
    std::uint64_t missing = 0;
    for (const auto& [from, to] : report.gaps) missing += to - from + 1;
    if (missing > report.dropped_reported) {
        report.problems.push_back(
            fmt::format("{} records missing in gaps, but the device reported only {} dropped",
                        missing, report.dropped_reported));
    }
    report.verified = report.problems.empty();
    return report;
}

}  // namespace edge::controlplane
