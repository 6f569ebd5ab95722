#pragma once
// Child processes for tests: the real programs, mosquitto, command-line tools.
// Children get stdin from /dev/null, default signal dispositions and an empty signal mask, and
// no file descriptors of the test other than stdout/stderr.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace edge::test {

struct CommandResult;

class Process {
public:
    /// argv[0] is a path (or a name looked up in PATH); stdout+stderr are appended to log_file
    /// when given (else inherited); extra_env "K=V" entries are added to (or replace in) the
    /// environment. Throws std::runtime_error when the program cannot be started.
    static Process spawn(const std::vector<std::string>& argv,
                         const std::filesystem::path& log_file = {},
                         const std::vector<std::string>& extra_env = {});

    Process() = default;
    ~Process();  // SIGKILL + reap if still running
    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    /// Reaps the child if it has exited.
    bool running();
    void signal(int sig);
    /// Exit code (128+signal if killed by a signal); nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    /// SIGKILL and reap.
    void kill();

private:
    friend CommandResult runCommand(const std::vector<std::string>&, std::chrono::milliseconds);
    explicit Process(pid_t pid) : pid_(pid) {}
    bool reap(bool block);

    pid_t pid_ = -1;
    std::optional<int> exit_code_;
};

struct CommandResult {
    int exit_code;    // 128+signal if killed (a timeout kills with SIGKILL)
    std::string out;  // stdout
    std::string err;  // stderr
};

/// The executable name in PATH, then in /usr/sbin and /sbin (mke2fs, debugfs), as a path;
/// empty when there is none.
std::string findProgram(const std::string& name);

/// Runs argv to completion, capturing stdout and stderr.
CommandResult runCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// Runs fn in a forked child and returns its exit code (fn's return value, or 128+signal): for
/// crash tests, where the child _exits mid-operation. Throws std::runtime_error when fork or
/// waitpid fails (a failed test either way).
int inChild(const std::function<int()>& fn);

/// Polls pred until it returns true (-> true) or timeout passes (-> false).
bool waitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll = std::chrono::milliseconds(50));

/// The whole file, or "" if it cannot be read.
std::string readFile(const std::filesystem::path& path);
/// Replaces a file's contents, creating its folder when missing.
void writeFile(const std::filesystem::path& path, const std::string& text);
/// writeFile of "#!/bin/sh\n" + body, made executable (a stand-in for a tool in unit tests).
void writeScript(const std::filesystem::path& path, const std::string& body);

}  // namespace edge::test
