#include "proxy/net/listen.hpp"

#include "proxy/common/logging.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

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

Task<void> pause_after_accept_failure(AcceptBackoff& backoff, const error_code& ec,
                                      std::string_view what) {
    const auto step = backoff.failed(AcceptBackoff::Clock::now());
    if (step.log) {
        log().warn("{} failed: {} (waiting {} ms; {} more failures since the last report)", what,
                   ec.message(), step.wait.count(), step.suppressed);
    }
    asio::steady_timer pause(co_await asio::this_coro::executor, step.wait);
    co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
}

}  // namespace bgs::net
