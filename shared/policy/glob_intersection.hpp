#pragma once
// Internal: regex.globs_match, after github.com/yashtewari/glob-intersection (which OPA uses):
// whether two "globs" — literals, `.` (any character), sets `[a-z0-9]` (no negation), each
// optionally followed by `*` or `+`, `\` escaping the next character — match a common string.
// Decided on the product of the two patterns' automata, in time proportional to the product
// of their lengths (each pattern is capped at 4096 tokens).
#include <string_view>

#include "shared/core/error.hpp"

namespace edge::policy::detail {

/// Errors carry the library's texts: "input:<glob>, pos:<n>, <reason>: the input provided is
/// invalid".
[[nodiscard]] Result<bool> globsIntersect(std::string_view a, std::string_view b);

}  // namespace edge::policy::detail
