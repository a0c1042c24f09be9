// Opening a listening socket: open, SO_REUSEADDR (and SO_REUSEPORT when several
// workers share the address), bind, listen. Any thread, before the acceptor is used.
#pragma once

#include "proxy/net/http_io.hpp"

namespace bgs::net {

/// Makes `acceptor` listen on `ep`. On failure returns the error and the name of
/// the step that failed ("bind", ...) in `step`.
error_code open_listener(tcp::acceptor& acceptor, const tcp::endpoint& ep, bool reuse_port,
                         const char** step);

}  // namespace bgs::net
