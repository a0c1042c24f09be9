// Classifies the error codes that sockets, timers and Beast's parsers give
// into the kinds of bgs::ProxyError. Pure; any thread.
#pragma once

#include "proxy/common/error.hpp"

#include <boost/system/error_code.hpp>

namespace bgs::net {

/// The kind of a failed operation's error: deadlines are Timeout, resets,
/// broken pipes and early ends of stream are Reset, a refused connect is
/// Refused, size limits are Limit, and malformed messages are Protocol.
ErrorKind classify(const boost::system::error_code& ec);

/// A peer that simply went away (EOF, reset, a write to a closed socket, our
/// own cancellation): worth a debug line, not a warning.
bool is_benign_disconnect(const boost::system::error_code& ec);

}  // namespace bgs::net
