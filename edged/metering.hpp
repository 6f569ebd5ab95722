#pragma once
// Meter: accelerator usage reported by the local runtime, accumulated per project and window
// (hour, day, week, month, total; UTC calendar buckets) in LMDB, so budgets keep biting offline
// and across restarts.
//
// Durability: record() updates the in-memory totals at once (the next decision sees them) and
// queues the changed buckets for the group writer; a commit carries every change made while the
// previous one ran. A power cut loses at most the reports of the commit in flight (typically a
// few milliseconds), never a committed one (docs/enforcement.md).
// Loop thread only.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edged/group_writer.hpp"
#include "shared/core/clock.hpp"
#include "shared/policy/value.hpp"
#include "shared/store/store.hpp"

namespace edge::edged {

struct UsageReport {
    std::string project;
    std::string workload;
    std::string accelerator;  // "gpu", "npu", "asic", … (free text, reported back)
    double gpu_seconds = 0;
    double npu_inferences = 0;
    double energy_joules = 0;
};

struct UsageTotals {
    double gpu_seconds = 0;
    double npu_inferences = 0;
    double energy_joules = 0;
    std::uint64_t reports = 0;
};

/// Parses a POST /v1/usage body; errors (SharedErrc::kInvalidArgument) say which field is wrong.
[[nodiscard]] Result<UsageReport> parseUsageReport(std::string_view body);
[[nodiscard]] nlohmann::json toJson(const UsageReport& report);

/// The bucket id of `window` at unix time `t`: "2026-11-29T05" (hour), "2026-11-29" (day),
/// "2026-11-23" (week: the date of its Monday), "2026-11" (month), "all" (total).
[[nodiscard]] std::string windowBucket(std::string_view window, std::int64_t t);

class Meter {
public:
    Meter(store::Store& store, GroupWriter& writer, const Clock& clock);

    /// Reads the current buckets from the store; buckets of past windows are dropped.
    [[nodiscard]] Status load();
    /// Adds a report to the current bucket of every window.
    void record(const UsageReport& report);

    /// data.edge.usage: {project: {window: {gpu_seconds, npu_inferences, energy_joules, reports}}}
    /// for the given windows' current buckets. Cached until the next record or bucket change.
    [[nodiscard]] const policy::Value& usageValue(const std::vector<std::string>& windows);
    /// GET /v1/usage: every window's current bucket per project, with the bucket ids.
    [[nodiscard]] nlohmann::json totalsJson();
    /// Grows whenever usageValue() may change (a report, a bucket rolling over).
    [[nodiscard]] std::uint64_t generation() const { return generation_; }
    /// Changes not yet committed (for status and tests).
    [[nodiscard]] std::size_t pending() const { return dirty_.size(); }

private:
    void persist();
    [[nodiscard]] bool rollBuckets(std::int64_t now);

    store::Store& store_;
    GroupWriter& writer_;
    const Clock& clock_;
    /// key "<window>:<bucket>/<project>" -> totals; only current buckets are kept.
    std::map<std::string, UsageTotals> totals_;
    std::set<std::string> dirty_;    // keys changed since the last submitted commit
    std::set<std::string> deleted_;  // keys of past buckets to delete
    bool writing_ = false;
    std::int64_t buckets_hour_ = -1;  // the hour the bucket ids were computed for
    std::map<std::string, std::string> current_bucket_;  // window -> bucket id
    policy::Value cached_;
    std::vector<std::string> cached_windows_;
    bool cache_valid_ = false;
    std::uint64_t generation_ = 0;
};

}  // namespace edge::edged
