#pragma once
// Internal: each builtins_*.cpp file adds its functions to the table findBuiltin() searches.
#include <vector>

#include "shared/policy/builtins.hpp"

namespace edge::policy::detail {

void addOperatorBuiltins(std::vector<Builtin>& out);     // builtins_ops.cpp: arithmetic, comparison, numbers, aggregates, types, casts
void addCollectionBuiltins(std::vector<Builtin>& out);   // builtins_collections.cpp: array.*, object.*, sets, json.filter/remove/patch
void addEncodingBuiltins(std::vector<Builtin>& out);     // builtins_encoding.cpp: json.*, yaml.*, base64*, urlquery, hex
void addStringBuiltins(std::vector<Builtin>& out);       // builtins_strings.cpp: strings, sprintf, format_int
void addRegexBuiltins(std::vector<Builtin>& out);        // builtins_regex.cpp: regex.*, glob.*
void addTimeBuiltins(std::vector<Builtin>& out);         // builtins_time.cpp: time.*
void addUnavailableBuiltins(std::vector<Builtin>& out);  // builtins_unavailable.cpp: known to OPA, not offered here

}  // namespace edge::policy::detail
