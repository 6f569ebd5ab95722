#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char** environ;

namespace edge::test {
namespace {

using Clock = std::chrono::steady_clock;

std::string resolve(const std::string& name) {
    if (name.find('/') != std::string::npos) return name;
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return name;
}

std::vector<std::string> mergedEnv(const std::vector<std::string>& extra) {
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        const std::string entry(*e);
        const std::string key = entry.substr(0, entry.find('=') + 1);
        bool replaced = false;
        for (const auto& x : extra) replaced = replaced || x.starts_with(key);
        if (!replaced) env.push_back(entry);
    }
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

std::vector<char*> cStrings(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

// Forks and execs; out_fd/err_fd (when >= 0) become the child's stdout/stderr. Only
// async-signal-safe calls happen in the child: everything is prepared before fork().
pid_t startChild(const std::vector<std::string>& argv_in, int out_fd, int err_fd,
                 const std::vector<std::string>& extra_env) {
    if (argv_in.empty()) throw std::runtime_error("spawn: empty argv");
    std::string path = resolve(argv_in[0]);
    std::vector<std::string> args = argv_in;
    std::vector<std::string> env = mergedEnv(extra_env);
    std::vector<char*> argv = cStrings(args);
    std::vector<char*> envp = cStrings(env);
    int status_pipe[2];
    if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int err = errno;
        ::close(status_pipe[0]);
        ::close(status_pipe[1]);
        if (null_fd >= 0) ::close(null_fd);
        throw std::runtime_error(std::string("fork: ") + std::strerror(err));
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; ++sig) {
            if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
        }
        if (null_fd >= 0) ::dup2(null_fd, 0);
        if (out_fd >= 0) ::dup2(out_fd, 1);
        if (err_fd >= 0) ::dup2(err_fd, 2);
        if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            for (int fd = 3; fd < 4096; ++fd) {
                if (fd != status_pipe[1]) ::close(fd);
            }
        }
        ::execve(path.c_str(), argv.data(), envp.data());
        const int err = errno;
        [[maybe_unused]] auto n = ::write(status_pipe[1], &err, sizeof(err));
        ::_exit(127);
    }
    ::close(status_pipe[1]);
    if (null_fd >= 0) ::close(null_fd);
    int exec_errno = 0;
    ssize_t n;
    do {
        n = ::read(status_pipe[0], &exec_errno, sizeof(exec_errno));
    } while (n < 0 && errno == EINTR);
    ::close(status_pipe[0]);
    if (n > 0) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        throw std::runtime_error("exec " + path + ": " + std::strerror(exec_errno));
    }
    return pid;
}

int decode(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

Process Process::spawn(const std::vector<std::string>& argv, const std::filesystem::path& log_file,
                       const std::vector<std::string>& extra_env) {
    int log_fd = -1;
    if (!log_file.empty()) {
        log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0) {
            throw std::runtime_error("open " + log_file.string() + ": " + std::strerror(errno));
        }
    }
    try {
        const pid_t pid = startChild(argv, log_fd, log_fd, extra_env);
        if (log_fd >= 0) ::close(log_fd);
        return Process(pid);
    } catch (...) {
        if (log_fd >= 0) ::close(log_fd);
        throw;
    }
}

Process::~Process() { kill(); }

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), exit_code_(std::move(other.exit_code_)) {}

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        kill();
        pid_ = std::exchange(other.pid_, -1);
        exit_code_ = std::move(other.exit_code_);
    }
    return *this;
}

bool Process::reap(bool block) {
    if (pid_ <= 0 || exit_code_) return true;
    int status = 0;
    pid_t r;
    do {
        r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) return false;
    exit_code_ = r == pid_ ? decode(status) : -1;
    return true;
}

bool Process::running() { return pid_ > 0 && !reap(false); }

void Process::signal(int sig) {
    if (running()) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    auto pause = std::chrono::milliseconds(1);
    while (!reap(false)) {
        if (Clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(20));
    }
    return exit_code_;
}

void Process::kill() {
    if (!running()) return;
    ::kill(pid_, SIGKILL);
    reap(true);
}

std::string findProgram(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(std::string(path != nullptr ? path : "/usr/bin:/bin") + ":/usr/sbin:/sbin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        if (dir.empty()) continue;
        std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

CommandResult runCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        throw std::runtime_error("pipe failed");
    }
    pid_t pid = -1;
    try {
        pid = startChild(argv, out_pipe[1], err_pipe[1], {});
    } catch (...) {
        for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
        throw;
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    Process child(pid);
    CommandResult result{-1, {}, {}};
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    const auto end = Clock::now() + timeout;
    auto deadline = end;
    bool killed = false;
    int open_fds = 2;
    while (open_fds > 0) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            if (killed) break;  // a grandchild keeps the pipes open: give up on the rest
            child.kill();
            result.err += "\n[runCommand: timed out, killed]";
            killed = true;
            deadline = Clock::now() + std::chrono::seconds(1);
            continue;
        }
        const int r = ::poll(fds, 2, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            char buf[4096];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
            if (n > 0) {
                sinks[i]->append(buf, static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    for (auto& f : fds) {
        if (f.fd >= 0) ::close(f.fd);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    auto code = child.wait(std::max(left, std::chrono::milliseconds(0)));
    if (!code) {
        child.kill();
        code = child.wait(std::chrono::milliseconds(0));
    }
    result.exit_code = code.value_or(-1);
    return result;
}

bool waitUntil(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
               std::chrono::milliseconds poll) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        if (pred()) return true;
        if (Clock::now() >= deadline) return false;
        std::this_thread::sleep_for(poll);
    }
}

void writeFile(const std::filesystem::path& path, const std::string& text) {
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::trunc) << text;
}

void writeScript(const std::filesystem::path& path, const std::string& body) {
    writeFile(path, "#!/bin/sh\n" + body);
    std::filesystem::permissions(path, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                                           std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                                           std::filesystem::perms::others_exec);
}

std::string readFile(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int inChild(const std::function<int()>& fn) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) ::_exit(fn());
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace edge::test
