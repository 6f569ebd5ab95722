#pragma once
// Running external tools (fw_printenv, grub-editenv, the reboot and health commands) safely:
// argv goes straight to exec (posix_spawn, never a shell), stdin is /dev/null, output is
// captured up to a bound, the run has a deadline, and every error names the command.
//
// Blocking; call from a worker thread. Thread-safe (no shared state), but the caller's other
// file descriptors must be close-on-exec to stay out of the child (this file also closes every
// descriptor above 2 in the child where the C library allows it).
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "shared/core/clock.hpp"
#include "shared/core/error.hpp"

namespace edge::firmware {

struct CommandOptions {
    std::chrono::milliseconds timeout{10'000};
    /// Per stream (stdout, stderr). More than this is an error: a tool that floods is broken.
    std::size_t max_output = 256 * 1024;
};

struct CommandOutput {
    int exit_code = -1;  // 128+signal when the command died of a signal
    std::string out;
    std::string err;
};

/// "fw_setenv BOOT_ORDER 'A B'": argv for messages, quoted where needed.
[[nodiscard]] std::string describeCommand(const std::vector<std::string>& argv);

/// Runs argv[0] (a path, or a name looked up in PATH) to completion. The command runs in its own
/// process group; on timeout or too much output the whole group is killed (SIGKILL).
/// Errors (kCommand): empty argv, cannot start, timed out, output over the bound.
/// A non-zero exit is not an error here (see runChecked).
[[nodiscard]] Result<CommandOutput> runCommand(const Clock& clock,
                                               const std::vector<std::string>& argv,
                                               const CommandOptions& options = {});

/// runCommand, and a non-zero exit is a kCommand error naming the command, its exit status and
/// the first line of its stderr. Returns stdout.
[[nodiscard]] Result<std::string> runChecked(const Clock& clock,
                                             const std::vector<std::string>& argv,
                                             const CommandOptions& options = {});

}  // namespace edge::firmware
