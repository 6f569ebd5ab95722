#pragma once
// Hash-chained records, shared by the device (edged's durable queues) and the control plane
// (which stores and verifies what devices send).
//
// A record is a JSON object with at least:
//   "seq"  unsigned, 1 for the first record of a stream, +1 for each next one
//   "prev" the "hash" of the record with seq-1 ("" for the very first record ever)
//   "hash" recordHash() of the record itself
// The canonical form hashed is nlohmann's compact dump(): object keys sorted, no whitespace.
// Strings that are not valid UTF-8 are hashed (and must be stored) with U+FFFD in their place,
// which is what a receiver re-parsing the stored text sees.
#include <nlohmann/json.hpp>
#include <string>

#include "shared/core/error.hpp"

namespace edge::chain {

/// Lowercase hex SHA-256 of the compact dump of record without its "hash" member.
[[nodiscard]] std::string recordHash(const nlohmann::json& record);

/// The canonical text of record (compact dump, invalid UTF-8 replaced): what is stored and sent.
[[nodiscard]] std::string canonicalText(const nlohmann::json& record);

/// Checks one record on its own: an object with unsigned "seq" >= 1, string "prev" and string
/// "hash" equal to recordHash(record). kParse for a wrong shape, kInvalidArgument for a hash
/// that does not recompute. Links between records are the caller's business.
[[nodiscard]] Status checkRecord(const nlohmann::json& record);

}  // namespace edge::chain
