#include "proxy/http/tunnel.hpp"

#include "proxy/common/random.hpp"
#include "proxy/http/ws_frame.hpp"

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

// Tunnels own no read buffers: a direction waits for readability, then reads
// into the worker's scratch buffer and writes straight out of it, copying only
// what the other side's socket buffer cannot take at once. Idle tunnels thus
// cost sockets and coroutine frames, not 2 x 16 KiB.
// How long a side may take to finish the frame it is in the middle of, and to
// answer our Close, once the tunnel is being closed.
constexpr auto kCloseGrace = std::chrono::seconds(2);

struct TunnelState {
    explicit TunnelState(asio::any_io_executor ex) : watchdog(std::move(ex)) {}
    Clock::time_point last_activity = Clock::now();
    int open_directions = 2;
    asio::steady_timer watchdog;
    TunnelStats stats;
};

void close_both(net::Stream& a, net::Stream& b) {
    net::error_code ignored;
    a.shutdown_both();
    b.shutdown_both();
    a.socket().cancel(ignored);
    b.socket().cancel(ignored);
}

// Close 1001 to one side: masked toward the upstream (we are its client there).
net::Task<void> send_going_away(net::Stream& to, bool to_upstream) {
    std::optional<std::array<std::uint8_t, 4>> mask;
    if (to_upstream) {
        const auto r = random_u32();
        mask = std::array<std::uint8_t, 4>{
            static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(r >> 8),
            static_cast<std::uint8_t>(r >> 16), static_cast<std::uint8_t>(r >> 24)};
    }
    const auto frame =
        ws::encode_frame(ws::kClose, ws::close_payload(ws::kGoingAway, "going away"), true, mask);
    to.expires_after(kCloseGrace);
    co_await net::write_all(to, asio::buffer(frame));
    to.shutdown_send();
}

// Sends what arrived on `from` before the tunnel began (read with the
// request or the 101). False when that failed: both sides are then closed.
net::Task<bool> flush_pending(net::Stream& from, net::Stream& to, net::beast::flat_buffer& pending,
                              ws::BoundaryTracker& frames, std::uint64_t& counter, bool websocket) {
    if (pending.size() > 0) {
        if (websocket) {
            frames.consume(static_cast<const std::uint8_t*>(pending.data().data()), pending.size());
        }
        auto ec = co_await net::write_all(to, pending.data());
        counter += pending.size();
        pending.consume(pending.size());
        if (ec) {
            close_both(from, to);
            co_return false;
        }
    }
    pending.shrink_to_fit();  // empty now: an idle tunnel holds no buffers
    co_return true;
}

// One direction. On a clean EOF the half-close is passed on and the other
// direction keeps going; on any error both sides are torn down. When a close is
// requested, a WebSocket direction forwards the rest of the frame in flight and
// then sends Close 1001 instead of the next frame.
net::Task<void> pump(net::Stream& from, net::Stream& to, net::beast::flat_buffer& pending,
                     TunnelState& st, std::uint64_t& counter, const Tunnel& control,
                     bool to_upstream) {
    auto done = [&] {
        if (--st.open_directions == 0) {
            st.watchdog.cancel();
        }
    };
    ws::BoundaryTracker frames;
    if (!co_await flush_pending(from, to, pending, frames, counter, control.websocket())) {
        done();
        co_return;
    }
    for (;;) {
        if (control.stopping()) {
            if (!control.websocket()) {
                close_both(from, to);
                done();
                co_return;
            }
            if (frames.at_boundary()) {
                co_await send_going_away(to, to_upstream);
                done();
                co_return;
            }
            from.expires_after(kCloseGrace);  // only the rest of this frame is awaited
        } else {
            // Reads wait as long as the peer is quiet; the watchdog owns idleness,
            // since one quiet direction is normal while the other is busy.
            from.expires_never();
        }
        // The bytes land in the worker's scratch buffer only once they are there,
        // and leave it before this coroutine suspends again.
        const auto scratch = net::thread_scratch();
        auto [rec, n] = co_await net::read_ready(from, scratch);
        if (rec) {
            if (control.stopping() && rec == asio::error::operation_aborted) {
                continue;  // woken by request_close; the loop top decides
            }
            if (rec == asio::error::eof && !control.stopping()) {
                to.shutdown_send();
            } else {
                close_both(from, to);
            }
            done();
            co_return;
        }
        std::size_t forward = n;
        const auto* bytes = static_cast<const std::uint8_t*>(scratch.data());
        if (control.websocket()) {
            if (control.stopping()) {
                forward = frames.consume_to_boundary(bytes, n);  // the next frame is not sent
            } else {
                frames.consume(bytes, n);
            }
        }
        st.last_activity = Clock::now();
        if (auto wec = co_await net::write_copying(to, asio::buffer(scratch.data(), forward))) {
            close_both(from, to);
            done();
            co_return;
        }
        counter += forward;
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

// After both Close frames went out: let each peer answer and close first, so
// that our close does not turn into a reset that could destroy the Close frame.
net::Task<void> discard_until_closed(net::Stream& s) {
    s.expires_after(kCloseGrace);
    for (;;) {
        auto [ec, n] = co_await net::read_ready(s, net::thread_scratch());
        if (ec) {
            co_return;
        }
    }
}

}  // namespace

void Tunnel::stop(drain::StopReason why) {
    if (stopping_) {
        return;
    }
    stopping_ = true;
    metrics_.ended(
        why == drain::StopReason::Drain ? metrics::EndReason::Drain : metrics::EndReason::Shutdown,
        websocket_ ? metrics::DrainKind::WebSocket : metrics::DrainKind::Other);
    net::error_code ignored;
    if (client_ != nullptr) {
        client_->socket().cancel(ignored);
    }
    if (upstream_ != nullptr) {
        upstream_->socket().cancel(ignored);
    }
}

net::Task<TunnelStats> Tunnel::run(net::Stream& client, net::beast::flat_buffer& client_pending,
                                   net::Stream& upstream, net::beast::flat_buffer& upstream_pending,
                                   Duration idle) {
    client_ = &client;
    upstream_ = &upstream;
    // The watchdog owns idleness from here on; a deadline only bounds closing.
    client.expires_never();
    upstream.expires_never();
    TunnelState st(client.get_executor());
    co_await (pump(client, upstream, client_pending, st, st.stats.to_upstream, *this, true) &&
              pump(upstream, client, upstream_pending, st, st.stats.to_client, *this, false) &&
              watch(client, upstream, idle, st));
    client_ = nullptr;
    upstream_ = nullptr;
    st.stats.closed_by_request = stopping_;
    if (stopping_ && websocket_) {
        co_await (discard_until_closed(client) && discard_until_closed(upstream));
    }
    co_return st.stats;
}

}  // namespace bgs::http
