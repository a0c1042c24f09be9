// Child processes for tests that drive the real binary (their output comes
// back through a socket the deadline-bounded Socket reads), and temporary
// files removed when the test process ends.
#pragma once

#include "tests/support/test_net.hpp"

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace bgs::test {

struct Child {
    pid_t pid = -1;
    Socket output;

    Child() = default;
    Child(Child&& o) noexcept;
    Child& operator=(Child&& o) noexcept;
    ~Child();  // kills it (SIGKILL) if still running

    /// Exit code, or -1 when it did not exit within `timeout`.
    int wait(Ms timeout = 10s);
};

/// Runs `program` with `args`, and `env` added to this process's environment.
/// `in_child` runs in the child just before the exec.
Child spawn_program(const std::string& program, const std::vector<std::string>& args,
                    const std::vector<std::string>& env = {},
                    const std::function<void()>& in_child = {});

/// A service manager's notify socket (sd_notify's $NOTIFY_SOCKET), bound in
/// the test's temporary directory.
struct NotifySocket {
    NotifySocket();
    ~NotifySocket();
    NotifySocket(const NotifySocket&) = delete;
    NotifySocket& operator=(const NotifySocket&) = delete;
    /// The next message, or "" when none came within `timeout`.
    std::string next(Ms timeout = 10s);
    std::string path;
    int fd = -1;
};

/// A path in the test's temporary directory, unique to this process; the
/// file (and a state file's .lock and .tmp) is removed at exit.
std::string temp_file(const std::string& name);
/// temp_file, removed now if it exists.
std::string path_for(const std::string& name);
/// temp_file holding `text`.
std::string write_file(const std::string& name, const std::string& text);

}  // namespace bgs::test
