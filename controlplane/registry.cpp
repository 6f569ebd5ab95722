#include "controlplane/registry.hpp"

#include <fmt/format.h>

namespace edge::controlplane {
namespace {

constexpr std::string_view kDesiredDb = "desired";

nlohmann::json toJson(const DesiredRecord& r) {
    return {{"version", r.version},       {"content_digest", r.content_digest},
            {"issued_at", r.issued_at},   {"expires_at", r.expires_at},
            {"jws", r.jws},               {"retry", r.retry}};
}

Result<DesiredRecord> fromJson(std::string_view key, std::string_view text) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return fail(SharedErrc::kStore, fmt::format("desired record '{}' is corrupt", key));
    }
    try {
        return DesiredRecord{j.at("version").get<std::uint64_t>(),
                             j.at("content_digest").get<std::string>(),
                             j.at("issued_at").get<std::int64_t>(),
                             j.at("expires_at").get<std::int64_t>(), j.at("jws").get<std::string>(),
                             j.value("retry", std::uint64_t{0})};
    } catch (const nlohmann::json::exception& e) {
        return fail(SharedErrc::kStore, fmt::format("desired record '{}': {}", key, e.what()));
    }
}

}  // namespace

Status Registry::load() {
    std::map<std::string, DesiredRecord> loaded;
    Status inner;
    auto st = store_.read([&](const store::ReadTxn& txn) -> Status {
        return txn.forEach(kDesiredDb, [&](std::string_view key, std::string_view value) {
            auto record = fromJson(key, value);
            if (!record) {
                inner = fail(record.error());
                return false;
            }
            loaded.emplace(std::string(key), std::move(*record));
            return true;
        });
    });
    if (!st) return st;
    if (!inner) return inner;
    desired_ = std::move(loaded);
    return {};
}

const DesiredRecord* Registry::desiredFor(const std::string& id) const {
    auto it = desired_.find(id);
    return it == desired_.end() ? nullptr : &it->second;
}

Status Registry::commitDesired(const std::map<std::string, DesiredRecord>& changed) {
    if (changed.empty()) return {};
    auto st = store_.write([&](store::WriteTxn& txn) -> Status {
        for (const auto& [id, record] : changed) {
            if (auto put = txn.put(kDesiredDb, id, toJson(record).dump()); !put) return put;
        }
        return {};
    });
    if (!st) return st;
    for (const auto& [id, record] : changed) desired_[id] = record;
    return {};
}

bool Registry::applyStatus(const std::string& id, std::string_view payload) {
    const auto j = nlohmann::json::parse(payload, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("state") || !j["state"].is_string()) {
        return false;
    }
    auto& status = reported_[id];
    status.online = j["state"] == "online";
    if (j.contains("applied_version") && j["applied_version"].is_number_unsigned()) {
        status.applied_version = j["applied_version"].get<std::uint64_t>();
    }
    if (j.contains("bundle_digest") && j["bundle_digest"].is_string()) {
        status.bundle_digest = j["bundle_digest"].get<std::string>();
    }
    if (j.contains("time") && j["time"].is_number_integer()) {
        status.last_seen = j["time"].get<std::int64_t>();
    }
    if (j.contains("last_error")) status.last_error = j["last_error"];
    // The last word on updates stays when the will (which says nothing about them) arrives.
    if (j.contains("ota") && j["ota"].is_object()) status.ota = j["ota"];
    return true;
}

const ReportedStatus* Registry::reportedFor(const std::string& id) const {
    auto it = reported_.find(id);
    return it == reported_.end() ? nullptr : &it->second;
}

}  // namespace edge::controlplane
