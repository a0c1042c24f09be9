// The client side of the proxy: one coroutine per accepted connection, on the
// worker that accepted it. Worker thread only.
#pragma once

#include "proxy/net/http_io.hpp"
#include "proxy/net/tls.hpp"
#include "proxy/routing/router.hpp"

namespace bgs::worker {
class Worker;
}

namespace bgs::http {

/// Serves every request of one client connection until it closes, times out or
/// the worker stops. Never throws on I/O errors; owns the socket. `peer` is the
/// client's address as accept() reported it. With `tls`, the connection
/// begins with a TLS handshake, within timeouts.header_read.
net::Task<void> serve_connection(worker::Worker& worker, net::tcp::socket socket,
                                 net::tcp::endpoint peer, routing::Audience audience,
                                 std::shared_ptr<const net::tls::ServerContext> tls = nullptr);

}  // namespace bgs::http
