#include "proxy/common/upgrade.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <string_view>

extern char** environ;

namespace bgs::upgrade {
namespace {

constexpr const char* kLockVar = "BGSWITCH_STATE_LOCK_FD";
constexpr const char* kReadyVar = "BGSWITCH_UPGRADE_READY_FD";

std::vector<std::string>& arguments() {
    static std::vector<std::string> args;
    return args;
}

std::optional<int> fd_from(const char* var) {
    const char* text = std::getenv(var);
    if (text == nullptr) {
        return std::nullopt;
    }
    char* end = nullptr;
    const long fd = std::strtol(text, &end, 10);
    ::unsetenv(var);
    if (end == text || *end != '\0' || fd < 3 || fd > 65535 || ::fcntl(fd, F_GETFD) < 0) {
        return std::nullopt;
    }
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);  // not passed further on
    return static_cast<int>(fd);
}

std::string status_text(int status) {
    if (WIFEXITED(status)) {
        return "exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return std::string("was killed by ") + strsignal(WTERMSIG(status));
    }
    return "stopped";
}

}  // namespace

void remember_arguments(int argc, char** argv) {
    arguments().assign(argv, argv + argc);
}

std::string binary_path() {
    char buf[4096];
    const auto n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) {
        return arguments().empty() ? std::string() : arguments().front();
    }
    std::string path(buf, static_cast<std::size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (path.ends_with(kDeleted)) {
        path.resize(path.size() - kDeleted.size());
    }
    return path;
}

Successor::Successor(Successor&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), ready_fd_(std::exchange(o.ready_fd_, -1)) {}

Successor::~Successor() {
    if (ready_fd_ >= 0) {
        ::close(ready_fd_);
    }
}

std::optional<std::string> Successor::wait_ready(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool pipe_closed = false;
    for (;;) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            return "the new process " + status_text(status) + " before it served";
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            break;
        }
        if (pipe_closed) {  // it closed the pipe without a word: it is about to exit
            ::poll(nullptr, 0, 20);
            continue;
        }
        pollfd p{ready_fd_, POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
        if (r > 0) {
            char byte = 0;
            const auto n = ::read(ready_fd_, &byte, 1);
            if (n == 1) {
                return std::nullopt;
            }
            if (n == 0) {
                pipe_closed = true;
            }
        }
    }
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
            return "the new process did not report that it serves within " +
                   std::to_string(timeout.count()) + " ms; it was stopped";
        }
        ::poll(nullptr, 0, 50);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    return "the new process did not report that it serves within " +
           std::to_string(timeout.count()) + " ms; it was killed";
}

std::variant<Successor, std::string> start_successor(const std::vector<int>& listeners,
                                                     int lock_fd) {
    const std::string path = binary_path();
    if (path.empty() || ::access(path.c_str(), X_OK) != 0) {
        return "cannot run " + path + ": " + std::strerror(errno);
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) {
        return std::string("pipe: ") + std::strerror(errno);
    }

    // Everything the child needs is made here: between fork and exec only
    // async-signal-safe calls may run.
    std::vector<int> sources(listeners);
    sources.push_back(lock_fd);
    sources.push_back(ready[1]);
    const int count = static_cast<int>(sources.size());
    const int n = static_cast<int>(listeners.size());
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view kv(*e);
        if (kv.starts_with("LISTEN_") || kv.starts_with(kLockVar) || kv.starts_with(kReadyVar) ||
            kv.starts_with("BGSWITCH_UPGRADE_FROM=")) {
            continue;
        }
        env_text.emplace_back(kv);
    }
    env_text.push_back("LISTEN_FDS=" + std::to_string(n));
    env_text.push_back(std::string(kLockVar) + "=" + std::to_string(3 + n));
    env_text.push_back(std::string(kReadyVar) + "=" + std::to_string(3 + n + 1));
    env_text.push_back("BGSWITCH_UPGRADE_FROM=" + std::to_string(::getpid()));
    env_text.push_back("LISTEN_PID=                    ");  // the child's PID, written in the child
    std::vector<char*> envp;
    for (auto& kv : env_text) {
        envp.push_back(kv.data());
    }
    envp.push_back(nullptr);
    char* pid_digits = env_text.back().data() + std::strlen("LISTEN_PID=");
    std::vector<std::string> args = arguments();
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<int> moved(sources.size());

    const pid_t pid = ::fork();
    if (pid < 0) {
        const int err = errno;
        ::close(ready[0]);
        ::close(ready[1]);
        return std::string("fork: ") + std::strerror(err);
    }
    if (pid == 0) {
        // Out of the way of 3.. first, then into place (dup2 clears close-on-exec).
        for (int i = 0; i < count; ++i) {
            moved[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, 3 + count);
            if (moved[i] < 0) {
                ::_exit(126);
            }
        }
        for (int i = 0; i < count; ++i) {
            if (::dup2(moved[i], 3 + i) < 0) {
                ::_exit(126);
            }
        }
        // Nothing else of the old process's: its client connections stay its own.
        ::close_range(static_cast<unsigned>(3 + count), ~0U, 0);
        char digits[24];
        int len = 0;
        for (pid_t v = ::getpid(); v > 0; v /= 10) {
            digits[len++] = static_cast<char>('0' + v % 10);
        }
        for (int i = 0; i < len; ++i) {
            pid_digits[i] = digits[len - 1 - i];
        }
        pid_digits[len] = '\0';
        ::execve(path.c_str(), argv.data(), envp.data());
        ::_exit(127);
    }
    ::close(ready[1]);
    return Successor(pid, ready[0]);
}

std::optional<int> take_state_lock_fd() {
    return fd_from(kLockVar);
}

void report_ready() {
    if (auto fd = fd_from(kReadyVar)) {
        const char byte = '1';
        [[maybe_unused]] const auto n = ::write(*fd, &byte, 1);
        ::close(*fd);
    }
}

}  // namespace bgs::upgrade
