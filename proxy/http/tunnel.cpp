#include "proxy/http/tunnel.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>

namespace bgs::http {
namespace {

namespace asio = net::asio;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

constexpr std::size_t kTunnelBuffer = 16 * 1024;

struct TunnelState {
    explicit TunnelState(asio::any_io_executor ex) : watchdog(std::move(ex)) {}
    Clock::time_point last_activity = Clock::now();
    int open_directions = 2;
    asio::steady_timer watchdog;
    TunnelStats stats;
};

void close_both(net::Stream& a, net::Stream& b) {
    net::error_code ignored;
    a.socket().shutdown(net::tcp::socket::shutdown_both, ignored);
    b.socket().shutdown(net::tcp::socket::shutdown_both, ignored);
    a.socket().cancel(ignored);
    b.socket().cancel(ignored);
}

// One direction. On a clean EOF the half-close is passed on and the other
// direction keeps going; on any error both sides are torn down.
net::Task<void> pump(net::Stream& from, net::Stream& to, net::beast::flat_buffer& pending,
                     Duration idle, TunnelState& st, std::uint64_t& counter) {
    auto done = [&] {
        if (--st.open_directions == 0) {
            st.watchdog.cancel();
        }
    };
    if (pending.size() > 0) {
        to.expires_after(idle);
        auto ec = co_await net::write_all(to, pending.data());
        counter += pending.size();
        pending.consume(pending.size());
        if (ec) {
            close_both(from, to);
            done();
            co_return;
        }
    }
    auto buf = std::make_unique<char[]>(kTunnelBuffer);
    for (;;) {
        // Reads wait as long as the peer is quiet; the watchdog owns idleness,
        // since one quiet direction is normal while the other is busy.
        from.expires_never();
        auto [rec, n] = co_await net::read_some(from, asio::buffer(buf.get(), kTunnelBuffer));
        if (rec) {
            if (rec == asio::error::eof) {
                net::error_code ignored;
                to.socket().shutdown(net::tcp::socket::shutdown_send, ignored);
            } else {
                close_both(from, to);
            }
            done();
            co_return;
        }
        st.last_activity = Clock::now();
        to.expires_after(idle);
        if (auto wec = co_await net::write_all(to, asio::buffer(buf.get(), n))) {
            close_both(from, to);
            done();
            co_return;
        }
        counter += n;
    }
}

net::Task<void> watch(net::Stream& a, net::Stream& b, Duration idle, TunnelState& st) {
    while (st.open_directions > 0) {
        st.watchdog.expires_at(st.last_activity + idle);
        co_await st.watchdog.async_wait(asio::as_tuple(asio::use_awaitable));
        if (st.open_directions == 0) {
            co_return;
        }
        if (Clock::now() >= st.last_activity + idle) {
            close_both(a, b);
            co_return;
        }
    }
}

}  // namespace

net::Task<TunnelStats> run_tunnel(net::Stream& client, net::beast::flat_buffer& client_pending,
                                  net::Stream& upstream, net::beast::flat_buffer& upstream_pending,
                                  Duration idle) {
    TunnelState st(client.get_executor());
    co_await (pump(client, upstream, client_pending, idle, st, st.stats.to_upstream) &&
              pump(upstream, client, upstream_pending, idle, st, st.stats.to_client) &&
              watch(client, upstream, idle, st));
    co_return st.stats;
}

}  // namespace bgs::http
