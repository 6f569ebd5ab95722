#pragma once
// Internal: JSON text written as Go's encoding/json writes it (what OPA's json.marshal prints),
// shared by Value::toJson and the encoding builtins.
#include <string>
#include <string_view>

#include "shared/policy/value.hpp"

namespace edge::policy::detail {

/// MarshalIndent's layout: every element on its own line, starting with prefix and one indent
/// per level; ": " after object keys.
struct JsonIndent {
    std::string_view prefix;
    std::string_view indent;
};

/// Appends v as JSON: sets as arrays in set order, object members sorted by their key text,
/// non-string keys written as their compact JSON text. Compact unless `indent` is given.
void appendJson(std::string& out, const Value& v, const JsonIndent* indent = nullptr);

/// A JSON string literal escaped as Go does: control characters, '"', '\\', the HTML
/// characters '<' '>' '&', U+2028 and U+2029; invalid UTF-8 bytes become \ufffd.
void appendJsonString(std::string& out, std::string_view s);

/// The member name an object key gets in JSON: a string key itself, any other key its compact
/// JSON text (1 -> "1", [1, 2] -> "[1,2]").
[[nodiscard]] std::string jsonKey(const Value& key);

}  // namespace edge::policy::detail
