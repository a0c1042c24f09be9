// What bgswitch does for systemd, without linking libsystemd: the sd_notify
// protocol (a datagram to $NOTIFY_SOCKET: READY=1, RELOADING=1, STOPPING=1,
// STATUS=...) and socket activation (listening sockets passed as descriptors
// 3.. with $LISTEN_FDS for this $LISTEN_PID). Both do nothing when systemd
// did not start the process.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

struct sockaddr;

namespace bgs::systemd {

/// Sends `state` ("READY=1\nSTATUS=...") to the service manager; false when
/// there is none or the datagram could not be sent. Any thread.
bool notify(std::string_view state);

/// The listening sockets systemd passed to this process (descriptors 3..),
/// taken once: the variables are cleared so that children do not see them.
/// Start-up only.
std::vector<int> take_listen_fds();

/// Of `fds`, the one bound to exactly `address` (compared with getsockname),
/// removed from `fds`. Start-up only.
std::optional<int> claim_fd(std::vector<int>& fds, const sockaddr* address, unsigned length);

/// Every one of `fds` bound to exactly `address` (an upgrade passes one
/// socket per worker for each address), removed from `fds`.
std::vector<int> claim_fds(std::vector<int>& fds, const sockaddr* address, unsigned length);

}  // namespace bgs::systemd
