// Upgrading bgswitch in place (SPEC section 9): the running process starts
// the binary now at its path with its own arguments and hands over its
// listening sockets and its state-file lock as inherited descriptors.
//
// Why inherited descriptors and not SCM_RIGHTS over a Unix socket: the new
// process is our own child, started by us, so descriptors it inherits across
// exec need no socket, no path and no permissions on a state directory; and
// the listening sockets arrive through the same protocol systemd's socket
// activation uses ($LISTEN_FDS, $LISTEN_PID, descriptors 3..), which the
// start-up path already speaks. The lock is inherited the same way: a flock
// belongs to the open file, so the new process holds it from its first
// instruction and the old one's exit does not release it.
//
// The new process reports that it serves by writing to a pipe the old one
// waits on ($BGSWITCH_UPGRADE_READY_FD); only then does the old one stop
// accepting and shut down. No Asio here.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace bgs::upgrade {

/// The arguments this process was started with (main() records them).
void remember_arguments(int argc, char** argv);

/// The path of the running binary's file as it was started: /proc/self/exe,
/// without the " (deleted)" the kernel adds once a new binary replaced it.
std::string binary_path();

/// The new process, started and not yet known to serve.
class Successor {
  public:
    Successor(pid_t pid, int ready_fd) : pid_(pid), ready_fd_(ready_fd) {}
    Successor(Successor&& o) noexcept;
    Successor& operator=(Successor&&) = delete;
    ~Successor();

    pid_t pid() const { return pid_; }

    /// Waits until it reports that it serves (nullopt), or says why it will
    /// not: it exited (with its status), or `timeout` passed (then it is
    /// stopped). Blocking.
    std::optional<std::string> wait_ready(std::chrono::milliseconds timeout);

  private:
    pid_t pid_;
    int ready_fd_;
};

/// Starts binary_path() with the remembered arguments, passing `listeners`
/// (as descriptors 3.. with $LISTEN_FDS) and `lock_fd` ($BGSWITCH_STATE_LOCK_FD).
/// The error in words when it could not be started.
std::variant<Successor, std::string> start_successor(const std::vector<int>& listeners,
                                                     int lock_fd);

/// In the new process: the state-file lock the old one passed, if any (taken
/// once; the variable is cleared).
std::optional<int> take_state_lock_fd();

/// In the new process, once it serves: tells the old one (nothing when this
/// process was not started by an upgrade).
void report_ready();

}  // namespace bgs::upgrade
