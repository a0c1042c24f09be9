#include "tests/support/child_process.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>

namespace bgs::test {

Child::Child(Child&& o) noexcept : pid(std::exchange(o.pid, -1)), output(std::move(o.output)) {}

Child& Child::operator=(Child&& o) noexcept {
    if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
    pid = std::exchange(o.pid, -1);
    output = std::move(o.output);
    return *this;
}

Child::~Child() {
    if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
}

int Child::wait(Ms timeout) {
    int status = 0;
    const bool exited =
        eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
    if (!exited) {
        return -1;
    }
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Child spawn_program(const std::string& program, const std::vector<std::string>& args,
                    const std::vector<std::string>& env, const std::function<void()>& in_child) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) {
        throw std::runtime_error("socketpair");
    }
    Child c;
    c.pid = ::fork();
    if (c.pid == 0) {
        ::dup2(fds[1], 1);
        ::dup2(fds[1], 2);
        ::close(fds[0]);
        ::close(fds[1]);
        for (const auto& kv : env) {
            const auto eq = kv.find('=');
            ::setenv(kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str(), 1);
        }
        if (in_child) {
            in_child();
        }
        std::vector<char*> argv;
        std::string binary = program;
        argv.push_back(binary.data());
        std::vector<std::string> copy = args;
        for (auto& a : copy) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        ::execv(binary.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    c.output = Socket(fds[0]);
    return c;
}

NotifySocket::NotifySocket() : path(path_for("notify.sock")) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::runtime_error("bind " + path);
    }
}

NotifySocket::~NotifySocket() {
    ::close(fd);
}

std::string NotifySocket::next(Ms timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
        return "";
    }
    char buf[512];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

namespace {

// Every file the tests name is removed (with a state file's lock and
// temporary file) when the process ends.
struct TempFiles {
    ~TempFiles() {
        for (const auto& p : paths) {
            for (const char* suffix : {"", ".lock", ".tmp"}) {
                std::remove((p + suffix).c_str());
            }
        }
    }
    std::vector<std::string> paths;
};

}  // namespace

std::string temp_file(const std::string& name) {
    static TempFiles files;
    auto path = ::testing::TempDir() + "/" + name + "_" + std::to_string(::getpid());
    files.paths.push_back(path);
    return path;
}

std::string path_for(const std::string& name) {
    const auto path = temp_file(name);
    std::remove(path.c_str());
    return path;
}

std::string write_file(const std::string& name, const std::string& text) {
    const auto path = temp_file(name);
    std::ofstream(path) << text;
    return path;
}

}  // namespace bgs::test
