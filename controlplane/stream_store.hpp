#pragma once
// StreamStore: the control plane's idempotent store of the hash-chained record streams devices
// send (their decision log and telemetry queue; see shared/telemetry/record_chain.hpp).
//
// Store layout:
//   db "stream_records" key "<device>/<stream>/" + 8-byte big-endian seq -> record JSON text
//   db "stream_meta"    key "<device>/<stream>"
//                       -> {"dropped_reported":N,"records":N,"last_seq":N}
// Device ids are [A-Za-z0-9._-]{1,64}; streams are "decisions" or "telemetry".
//
// Contracts:
// - ingest() is all or nothing: it validates the whole batch (against what is stored too) and
//   writes in one transaction; a bad batch changes nothing.
// - list() and verify() scan "stream_records" from its first key (the Store has no range seek),
//   stopping once past the stream: cost grows with the records of devices sorted before it.
// - Thread-safe as far as the Store is (every call is one transaction).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shared/core/error.hpp"
#include "shared/store/store.hpp"

namespace edge::controlplane {

struct ChainReport {
    std::uint64_t records = 0;
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::uint64_t dropped_reported = 0;  // highest "dropped" the device reported for the stream
    /// Missing seq ranges [from, to] between first_seq and last_seq.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> gaps;
    /// Every stored record's hash recomputes, every record whose predecessor is stored links
    /// to it, and the total gap size is at most dropped_reported.
    bool verified = false;
    std::vector<std::string> problems;  // "seq 17: prev does not match hash of seq 16"
};

[[nodiscard]] nlohmann::json toJson(const ChainReport& report);

class StreamStore {
public:
    explicit StreamStore(store::Store& store);

    /// payload: {"device":"<id>","stream":"<stream>","dropped":N,"records":[{record},...]} with
    /// records in strictly increasing seq order. Checks that device and stream match the
    /// arguments, that each record passes chain::checkRecord, and that every record whose
    /// predecessor (in the batch or stored) or successor (stored) exists links to it. Stores the
    /// records not stored yet (a batch received twice stores nothing new; a stored record with a
    /// different hash is a "conflicting record" error) and raises dropped_reported to "dropped".
    /// Returns the seq to acknowledge: the batch's last seq (0 for a batch without records).
    /// Errors: kParse (not JSON, wrong shape), kInvalidArgument (bad id, mismatch, broken or
    /// conflicting chain), kStore.
    [[nodiscard]] Result<std::uint64_t> ingest(std::string_view device, std::string_view stream,
                                               std::string_view payload);

    /// Up to limit stored records with seq > after, in seq order, parsed.
    [[nodiscard]] Result<std::vector<nlohmann::json>> list(std::string_view device,
                                                           std::string_view stream,
                                                           std::uint64_t after,
                                                           std::size_t limit) const;

    /// Re-checks every stored record of the stream; problems are reported, not errors. Errors
    /// only for a bad id (kInvalidArgument) or the store (kStore).
    [[nodiscard]] Result<ChainReport> verify(std::string_view device,
                                             std::string_view stream) const;

private:
    store::Store& store_;
};

}  // namespace edge::controlplane
