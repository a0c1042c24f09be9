// Opening a listening socket: open, SO_REUSEADDR (and SO_REUSEPORT when several
// workers share the address), bind, listen; and what an accept loop does after a
// failed accept. Any thread, before the acceptor is used; the pause on the
// loop's own executor.
#pragma once

#include "proxy/common/backoff.hpp"
#include "proxy/net/http_io.hpp"

#include <string_view>

namespace bgs::net {

/// Makes `acceptor` listen on `ep`. On failure returns the error and the name of
/// the step that failed ("bind", ...) in `step`.
error_code open_listener(tcp::acceptor& acceptor, const tcp::endpoint& ep, bool reuse_port,
                         const char** step);

/// After a failed accept (EMFILE and friends): records it in `backoff`, logs
/// it when the backoff says so (naming `what`, e.g. "admin accept"), and waits
/// the backoff's pause, so the loop neither spins nor floods the log; the
/// connection stays in the backlog until descriptors are free.
Task<void> pause_after_accept_failure(AcceptBackoff& backoff, const error_code& ec,
                                      std::string_view what);

}  // namespace bgs::net
