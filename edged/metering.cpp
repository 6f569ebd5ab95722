#include "edged/metering.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>

#include <fmt/format.h>

#include "shared/core/log.hpp"

namespace edge::edged {
namespace {

constexpr std::string_view kUsageDb = "usage";
constexpr std::string_view kWindows[] = {"hour", "day", "week", "month", "total"};
constexpr std::size_t kMaxName = 128;

std::unexpected<Error> badReport(std::string message) {
    return fail(SharedErrc::kInvalidArgument, std::move(message));
}

bool isPrintableName(std::string_view s) {
    if (s.empty() || s.size() > kMaxName) return false;
    for (const unsigned char c : s) {
        if (c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

std::tm utc(std::int64_t t) {
    const std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    return tm;
}

nlohmann::json totalsToJson(const UsageTotals& t) {
    return {{"gpu_seconds", t.gpu_seconds},
            {"npu_inferences", t.npu_inferences},
            {"energy_joules", t.energy_joules},
            {"reports", t.reports}};
}

policy::Value totalsValue(const UsageTotals& t) {
    policy::Object o;
    o.emplace(policy::Value::string("gpu_seconds"), policy::Value::number(t.gpu_seconds));
    o.emplace(policy::Value::string("npu_inferences"), policy::Value::number(t.npu_inferences));
    o.emplace(policy::Value::string("energy_joules"), policy::Value::number(t.energy_joules));
    o.emplace(policy::Value::string("reports"),
              policy::Value::number(static_cast<std::int64_t>(t.reports)));
    return policy::Value::object(std::move(o));
}

/// Splits "<window>:<bucket>/<project>".
bool splitKey(std::string_view key, std::string_view& window, std::string_view& bucket,
              std::string_view& project) {
    const auto colon = key.find(':');
    if (colon == std::string_view::npos) return false;
    const auto slash = key.find('/', colon);
    if (slash == std::string_view::npos) return false;
    window = key.substr(0, colon);
    bucket = key.substr(colon + 1, slash - colon - 1);
    project = key.substr(slash + 1);
    return true;
}

}  // namespace

Result<UsageReport> parseUsageReport(std::string_view body) {
    const auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) return badReport("usage report: body must be a JSON object");
    UsageReport r;
    for (const auto& [key, value] : j.items()) {
        if (key == "project" || key == "workload" || key == "accelerator") {
            if (!value.is_string() || !isPrintableName(value.get_ref<const std::string&>())) {
                return badReport(fmt::format("usage report: \"{}\" must be a string of 1 to {} printable characters",
                                             key, kMaxName));
            }
            (key == "project" ? r.project : key == "workload" ? r.workload : r.accelerator) =
                value.get<std::string>();
        } else if (key == "gpu_seconds" || key == "npu_inferences" || key == "energy_joules") {
            if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() < 0 ||
                value.get<double>() > 1e15) {
                return badReport(fmt::format("usage report: \"{}\" must be a number from 0 to 1e15", key));
            }
            (key == "gpu_seconds" ? r.gpu_seconds : key == "npu_inferences" ? r.npu_inferences
                                                                            : r.energy_joules) =
                value.get<double>();
        } else {
            return badReport(fmt::format(
                "usage report: unknown field \"{}\" (project, workload, accelerator, gpu_seconds, "
                "npu_inferences, energy_joules)",
                key));
        }
    }
    if (r.project.empty()) return badReport("usage report: \"project\" is required");
    return r;
}

nlohmann::json toJson(const UsageReport& r) {
    return {{"project", r.project},         {"workload", r.workload},
            {"accelerator", r.accelerator}, {"gpu_seconds", r.gpu_seconds},
            {"npu_inferences", r.npu_inferences}, {"energy_joules", r.energy_joules}};
}

std::string windowBucket(std::string_view window, std::int64_t t) {
    if (window == "total") return "all";
    if (window == "week") {
        const std::int64_t day = t >= 0 ? t / 86400 : (t - 86399) / 86400;
        // 1970-01-01 was a Thursday: (day + 3) % 7 is the days since Monday.
        const std::int64_t monday = day - ((day % 7 + 7 + 3) % 7);
        const auto tm = utc(monday * 86400);
        return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    }
    const auto tm = utc(t);
    if (window == "hour") {
        return fmt::format("{:04}-{:02}-{:02}T{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour);
    }
    if (window == "day") return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    return fmt::format("{:04}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1);  // month
}

Meter::Meter(store::Store& store, GroupWriter& writer, const Clock& clock)
    : store_(store), writer_(writer), clock_(clock) {}

Status Meter::load() {
    std::map<std::string, UsageTotals> loaded;
    auto st = store_.read([&](const store::ReadTxn& txn) -> Status {
        return txn.forEach(kUsageDb, [&](std::string_view key, std::string_view value) {
            const auto j = nlohmann::json::parse(value, nullptr, false);
            if (j.is_discarded() || !j.is_object()) {
                log::warn("usage bucket '{}' is corrupt; dropped", key);
                deleted_.emplace(key);
                return true;
            }
            UsageTotals t;
            t.gpu_seconds = j.value("gpu_seconds", 0.0);
            t.npu_inferences = j.value("npu_inferences", 0.0);
            t.energy_joules = j.value("energy_joules", 0.0);
            t.reports = j.value("reports", std::uint64_t{0});
            loaded.emplace(std::string(key), t);
            return true;
        });
    });
    if (!st) return fail(std::move(st.error()).wrap("load usage"));
    totals_ = std::move(loaded);
    buckets_hour_ = -1;
    (void)rollBuckets(clock_.unixSeconds());
    if (!deleted_.empty()) persist();
    return {};
}

bool Meter::rollBuckets(std::int64_t now) {
    const auto hour = now / 3600;
    if (hour == buckets_hour_) return false;
    buckets_hour_ = hour;
    for (const auto window : kWindows) current_bucket_[std::string(window)] = windowBucket(window, now);
    for (auto it = totals_.begin(); it != totals_.end();) {
        std::string_view window, bucket, project;
        const bool current = splitKey(it->first, window, bucket, project) &&
                             current_bucket_.contains(std::string(window)) &&
                             current_bucket_[std::string(window)] == bucket;
        if (current) {
            ++it;
            continue;
        }
        deleted_.insert(it->first);
        dirty_.erase(it->first);
        it = totals_.erase(it);
    }
    cache_valid_ = false;
    ++generation_;
    return true;
}

void Meter::record(const UsageReport& report) {
    if (rollBuckets(clock_.unixSeconds()) && !deleted_.empty()) persist();
    for (const auto window : kWindows) {
        const auto key = fmt::format("{}:{}/{}", window, current_bucket_[std::string(window)], report.project);
        auto& t = totals_[key];
        t.gpu_seconds += report.gpu_seconds;
        t.npu_inferences += report.npu_inferences;
        t.energy_joules += report.energy_joules;
        t.reports += 1;
        dirty_.insert(key);
        deleted_.erase(key);
    }
    cache_valid_ = false;
    ++generation_;
    persist();
}

void Meter::persist() {
    if (writing_ || (dirty_.empty() && deleted_.empty())) return;
    std::vector<std::pair<std::string, std::string>> puts;
    for (const auto& key : dirty_) {
        if (auto it = totals_.find(key); it != totals_.end()) puts.emplace_back(key, totalsToJson(it->second).dump());
    }
    std::vector<std::string> dels(deleted_.begin(), deleted_.end());
    dirty_.clear();
    deleted_.clear();
    writing_ = true;
    writer_.submit(
        [puts, dels](store::WriteTxn& txn) -> Status {
            for (const auto& key : dels) {
                if (auto st = txn.del(kUsageDb, key); !st) return st;
            }
            for (const auto& [key, value] : puts) {
                if (auto st = txn.put(kUsageDb, key, value); !st) return st;
            }
            return {};
        },
        [this, puts, dels](const Status& st) {
            writing_ = false;
            if (!st) {
                log::warn("usage not committed (will retry): {}", st.error().what());
                for (const auto& [key, value] : puts) dirty_.insert(key);
                for (const auto& key : dels) {
                    if (!totals_.contains(key)) deleted_.insert(key);
                }
                return;  // retried with the next report
            }
            persist();
        });
}

const policy::Value& Meter::usageValue(const std::vector<std::string>& windows) {
    if (rollBuckets(clock_.unixSeconds()) && !deleted_.empty()) persist();
    if (cache_valid_ && cached_windows_ == windows) return cached_;
    std::map<std::string, policy::Object> projects;
    for (const auto& [key, t] : totals_) {
        std::string_view window, bucket, project;
        if (!splitKey(key, window, bucket, project)) continue;
        if (std::find(windows.begin(), windows.end(), window) == windows.end()) continue;
        projects[std::string(project)].emplace(policy::Value::string(std::string(window)), totalsValue(t));
    }
    policy::Object usage;
    for (auto& [project, by_window] : projects) {
        usage.emplace(policy::Value::string(project), policy::Value::object(std::move(by_window)));
    }
    cached_ = policy::Value::object(std::move(usage));
    cached_windows_ = windows;
    cache_valid_ = true;
    return cached_;
}

nlohmann::json Meter::totalsJson() {
    if (rollBuckets(clock_.unixSeconds()) && !deleted_.empty()) persist();
    nlohmann::json projects = nlohmann::json::object();
    for (const auto& [key, t] : totals_) {
        std::string_view window, bucket, project;
        if (!splitKey(key, window, bucket, project)) continue;
        auto j = totalsToJson(t);
        j["bucket"] = std::string(bucket);
        projects[std::string(project)][std::string(window)] = std::move(j);
    }
    return {{"projects", projects}, {"pending_commit", dirty_.size()}};
}

}  // namespace edge::edged
