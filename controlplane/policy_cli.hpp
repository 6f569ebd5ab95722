#pragma once
// `edgectl policy eval` and `edgectl policy test`: the Rego engine for operators and for the CI
// of fleet repositories, shaped like `opa eval` and `opa test`.
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace edge::controlplane {

struct PolicyEvalArgs {
    std::vector<std::filesystem::path> paths;  // .rego files, data .json/.yaml files, or folders
    std::optional<std::filesystem::path> input;
    std::string query;
    bool strict = false;
};

/// Prints {"result": […]} (or {} when undefined) to out; errors to err. Returns the exit code.
int policyEval(const PolicyEvalArgs& args, std::ostream& out, std::ostream& err);
/// Runs every test_* rule under paths; prints PASS/FAIL lines and a summary. Exit code 0 when
/// all pass, 1 when any fails, 2 on load or compile errors.
int policyTest(const std::vector<std::filesystem::path>& paths, bool verbose, std::ostream& out,
               std::ostream& err);

}  // namespace edge::controlplane
