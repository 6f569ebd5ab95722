#include "firmware/command.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "firmware/errors.hpp"
#include "shared/core/fs.hpp"

extern char** environ;

namespace edge::firmware {
namespace {

using Fd = fs::UniqueFd;

// Owns the spawn attributes and file actions.
struct SpawnSetup {
    posix_spawn_file_actions_t actions{};
    posix_spawnattr_t attr{};
    SpawnSetup() {
        posix_spawn_file_actions_init(&actions);
        posix_spawnattr_init(&attr);
    }
    ~SpawnSetup() {
        posix_spawn_file_actions_destroy(&actions);
        posix_spawnattr_destroy(&attr);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
};

int decodeStatus(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// Kills the child's process group and reaps the child.
void killAndReap(pid_t pid) {
    ::kill(-pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}

std::string firstLine(std::string_view text) {
    while (!text.empty() && (text.front() == '\n' || text.front() == ' ')) text.remove_prefix(1);
    const auto nl = text.find('\n');
    return std::string(text.substr(0, std::min<std::size_t>(nl, 300)));
}

}  // namespace

std::string describeCommand(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& arg : argv) {
        if (!out.empty()) out += ' ';
        const bool plain = !arg.empty() && arg.find_first_of(" \t\n'\"\\$`") == std::string::npos;
        out += plain ? arg : "'" + arg + "'";
    }
    return out;
}

Result<CommandOutput> runCommand(const Clock& clock, const std::vector<std::string>& argv,
                                 const CommandOptions& options) {
    if (argv.empty() || argv.front().empty()) {
        return fail(FirmwareErrc::kCommand, "run command: empty argv");
    }
    const std::string name = describeCommand(argv);
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        return fail(FirmwareErrc::kCommand,
                    fmt::format("'{}': pipe: {}", name, std::strerror(errno)));
    }
    Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        return fail(FirmwareErrc::kCommand,
                    fmt::format("'{}': pipe: {}", name, std::strerror(errno)));
    }
    Fd err_read(err_pipe[0]), err_write(err_pipe[1]);

    SpawnSetup setup;
    posix_spawn_file_actions_addopen(&setup.actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&setup.actions, out_write.get(), 1);
    posix_spawn_file_actions_adddup2(&setup.actions, err_write.get(), 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);
#endif
    sigset_t none;
    sigemptyset(&none);
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&setup.attr, &none);
    posix_spawnattr_setsigdefault(&setup.attr, &all);
    posix_spawnattr_setpgroup(&setup.attr, 0);
    posix_spawnattr_setflags(
        &setup.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);

    std::vector<char*> cargv;
    cargv.reserve(argv.size() + 1);
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);

    pid_t pid = -1;
    const int rc = ::posix_spawnp(&pid, argv.front().c_str(), &setup.actions, &setup.attr,
                                  cargv.data(), environ);
    if (rc != 0) {
        return fail(FirmwareErrc::kCommand,
                    fmt::format("'{}': cannot start: {}", name, std::strerror(rc)));
    }
    out_write.reset();
    err_write.reset();

    CommandOutput result;
    const auto deadline = clock.steady() + options.timeout;
    pollfd fds[2] = {{out_read.get(), POLLIN, 0}, {err_read.get(), POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_streams = 2;
    while (open_streams > 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.steady())
                .count();
        if (left <= 0) {
            killAndReap(pid);
            return fail(FirmwareErrc::kCommand,
                        fmt::format("'{}' timed out after {} ms and was killed", name,
                                    options.timeout.count()));
        }
        const int r = ::poll(fds, 2, static_cast<int>(std::min<long long>(left, 1000)));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            const int err = errno;
            killAndReap(pid);
            return fail(FirmwareErrc::kCommand,
                        fmt::format("'{}': poll: {}", name, std::strerror(err)));
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                fds[i].fd = -1;  // closed with its Fd owner below
                --open_streams;
                continue;
            }
            sinks[i]->append(buf, static_cast<std::size_t>(n));
            if (sinks[i]->size() > options.max_output) {
                killAndReap(pid);
                return fail(FirmwareErrc::kCommand,
                            fmt::format("'{}' wrote more than {} bytes and was killed", name,
                                        options.max_output));
            }
        }
    }
    // Both streams are closed; the command should be exiting. Wait for it within the deadline.
    while (true) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            result.exit_code = decodeStatus(status);
            break;
        }
        if (r < 0 && errno != EINTR) {
            return fail(FirmwareErrc::kCommand,
                        fmt::format("'{}': wait: {}", name, std::strerror(errno)));
        }
        if (clock.steady() >= deadline) {
            killAndReap(pid);
            return fail(FirmwareErrc::kCommand,
                        fmt::format("'{}' timed out after {} ms and was killed", name,
                                    options.timeout.count()));
        }
        ::poll(nullptr, 0, 5);
    }
    return result;
}

Result<std::string> runChecked(const Clock& clock, const std::vector<std::string>& argv,
                               const CommandOptions& options) {
    auto result = runCommand(clock, argv, options);
    if (!result) return fail(std::move(result.error()));
    if (result->exit_code != 0) {
        const auto detail = firstLine(result->err.empty() ? result->out : result->err);
        return fail(FirmwareErrc::kCommand,
                    fmt::format("'{}' exited with status {}{}{}", describeCommand(argv),
                                result->exit_code, detail.empty() ? "" : ": ", detail));
    }
    return std::move(result->out);
}

}  // namespace edge::firmware
