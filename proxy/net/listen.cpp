#include "proxy/net/listen.hpp"

#include <boost/asio/socket_base.hpp>

#include <sys/socket.h>

namespace bgs::net {

error_code open_listener(tcp::acceptor& acceptor, const tcp::endpoint& ep, bool reuse_port,
                         const char** step) {
    using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
    error_code ec;
    *step = "open";
    acceptor.open(ep.protocol(), ec);
    if (ec) {
        return ec;
    }
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (reuse_port) {
        *step = "SO_REUSEPORT";
        acceptor.set_option(ReusePort(true), ec);
        if (ec) {
            return ec;
        }
    }
    *step = "bind";
    acceptor.bind(ep, ec);
    if (ec) {
        return ec;
    }
    *step = "listen";
    acceptor.listen(asio::socket_base::max_listen_connections, ec);
    return ec;
}

}  // namespace bgs::net
