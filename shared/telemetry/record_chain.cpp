#include "shared/telemetry/record_chain.hpp"

#include <fmt/format.h>

#include "security/crypto.hpp"

namespace edge::chain {

std::string canonicalText(const nlohmann::json& record) {
    return record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string recordHash(const nlohmann::json& record) {
    if (!record.is_object() || !record.contains("hash")) {
        return security::sha256Hex(canonicalText(record));
    }
    nlohmann::json without = record;
    without.erase("hash");
    return security::sha256Hex(canonicalText(without));
}

Status checkRecord(const nlohmann::json& record) {
    if (!record.is_object()) return fail(SharedErrc::kParse, "record is not a JSON object");
    const auto seq = record.find("seq");
    if (seq == record.end() || !seq->is_number_integer() ||
        (!seq->is_number_unsigned() && seq->get<std::int64_t>() < 0)) {
        return fail(SharedErrc::kParse, "record has no unsigned \"seq\"");
    }
    const auto number = seq->get<std::uint64_t>();
    if (number == 0) return fail(SharedErrc::kParse, "record \"seq\" must be at least 1");
    const auto prev = record.find("prev");
    if (prev == record.end() || !prev->is_string()) {
        return fail(SharedErrc::kParse,
                    fmt::format("seq {}: record has no string \"prev\"", number));
    }
    const auto hash = record.find("hash");
    if (hash == record.end() || !hash->is_string()) {
        return fail(SharedErrc::kParse,
                    fmt::format("seq {}: record has no string \"hash\"", number));
    }
    if (hash->get_ref<const std::string&>() != recordHash(record)) {
        return fail(SharedErrc::kInvalidArgument,
                    fmt::format("seq {}: hash does not match the record's content", number));
    }
    return {};
}

}  // namespace edge::chain
