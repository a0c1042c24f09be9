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
// what the other side's socket buffer cannot take at once. A quiet tunnel's
// run ends (its owner parks it: no coroutine frames either), so an idle one
// costs its sockets and a small record, not 2 x 16 KiB.
// How long a side may take to finish the frame it is in the middle of, and to
// answer our Close, once the tunnel is being closed.
constexpr auto kCloseGrace = std::chrono::seconds(2);

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

}  // namespace

// One run's shared state: which directions are quiet, whether the run ends
// to park, and (for a tunnel that cannot park) the idle watchdog.
struct Tunnel::Run {
    Run(const net::asio::any_io_executor& ex, Duration idle_for, bool parkable)
        : idle(idle_for), may_park(parkable) {
        if (!may_park) {
            watchdog.emplace(ex);
        }
    }
    Duration idle;
    bool may_park;
    bool parking = false;
    std::array<bool, 2> quiet{false, false};
    std::array<net::Stream*, 2> reading{nullptr, nullptr};  // each direction's source
    int running = 2;
    std::optional<asio::steady_timer> watchdog;

    void direction_done() {
        if (--running == 0 && watchdog) {
            watchdog->cancel();
        }
    }
};

namespace {

net::Task<void> watch(net::Stream& a, net::Stream& b, Duration idle,
                      const Clock::time_point& last_activity, const int& running,
                      asio::steady_timer& watchdog) {
    while (running > 0) {
        watchdog.expires_at(last_activity + idle);
        co_await watchdog.async_wait(asio::as_tuple(asio::use_awaitable));
        if (running == 0) {
            co_return;
        }
        if (Clock::now() >= last_activity + idle) {
            close_both(a, b);
            co_return;
        }
    }
}

}  // namespace

// One direction. On a clean EOF the half-close is passed on and the other
// direction keeps going; on any error both sides are torn down. When a close is
// requested, a WebSocket direction forwards the rest of the frame in flight and
// then sends Close 1001 instead of the next frame. In a parkable run, a
// direction quiet for kQuietAfter while the other is quiet (or done) too ends
// the run.
net::Task<void> Tunnel::pump(int dir, net::Stream& from, net::Stream& to,
                             net::beast::flat_buffer& pending, Run& run) {
    const bool to_upstream = dir == 0;
    auto& counter = to_upstream ? stats_.to_upstream : stats_.to_client;
    auto& frames = frames_[static_cast<std::size_t>(dir)];
    auto& open = open_[static_cast<std::size_t>(dir)];
    const auto other = static_cast<std::size_t>(1 - dir);
    auto end = [&](bool both) {
        if (both) {
            close_both(from, to);
            open_ = {false, false};
        } else {
            open = false;
        }
        run.direction_done();
    };
    if (!open) {
        run.direction_done();
        co_return;
    }
    if (!co_await flush_pending(from, to, pending, frames, counter, websocket_)) {
        end(true);
        co_return;
    }
    run.reading[static_cast<std::size_t>(dir)] = &from;
    for (;;) {
        if (stopping_) {
            if (!websocket_) {
                end(true);
                co_return;
            }
            if (frames.at_boundary()) {
                co_await send_going_away(to, to_upstream);
                end(false);
                co_return;
            }
            from.expires_after(kCloseGrace);  // only the rest of this frame is awaited
        } else if (run.may_park) {
            const auto now = Clock::now();
            if (now >= last_activity_ + run.idle) {
                end(true);  // nothing moved either way for timeouts.idle
                co_return;
            }
            from.expires_after(std::min<Duration>(
                std::chrono::duration_cast<Duration>(last_activity_ + run.idle - now) + Duration(1),
                kQuietAfter));
        } else {
            // Reads wait as long as the peer is quiet; the watchdog owns
            // idleness, since one quiet direction is normal while the other
            // is busy.
            from.expires_never();
        }
        // The bytes land in the worker's scratch buffer only once they are there,
        // and leave it before this coroutine suspends again.
        const auto scratch = net::thread_scratch();
        const bool read_after_stop = stopping_;
        auto [rec, n] = co_await net::read_ready(from, scratch);
        if (rec) {
            if (run.parking && !stopping_) {
                run.direction_done();  // the other direction ended the run to park
                co_return;
            }
            if (stopping_ && !read_after_stop &&
                (rec == asio::error::operation_aborted || rec == net::beast::error::timeout)) {
                // Woken by stop(), or its deadline passed as the stop came:
                // the loop top closes this side as a stop does.
                continue;
            }
            if (rec == net::beast::error::timeout && run.may_park && !stopping_) {
                run.quiet[static_cast<std::size_t>(dir)] = true;
                if (!open_[other] || run.quiet[other]) {
                    // Both quiet: the run ends here; the other direction's
                    // wait is woken to end too.
                    run.parking = true;
                    if (open_[other] && run.reading[other] != nullptr) {
                        net::error_code ignored;
                        run.reading[other]->socket().cancel(ignored);
                    }
                    run.direction_done();
                    co_return;
                }
                continue;
            }
            if (rec == asio::error::eof && !stopping_) {
                to.shutdown_send();
                end(false);
            } else {
                end(true);
            }
            co_return;
        }
        run.quiet[static_cast<std::size_t>(dir)] = false;
        std::size_t forward = n;
        const auto* bytes = static_cast<const std::uint8_t*>(scratch.data());
        if (websocket_) {
            if (stopping_) {
                forward = frames.consume_to_boundary(bytes, n);  // the next frame is not sent
            } else {
                frames.consume(bytes, n);
            }
        }
        last_activity_ = Clock::now();
        if (auto wec = co_await net::write_copying(to, asio::buffer(scratch.data(), forward))) {
            end(true);
            co_return;
        }
        counter += forward;
    }
}

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

net::Task<TunnelEnd> Tunnel::run(net::Stream& client, net::beast::flat_buffer& client_pending,
                                 net::Stream& upstream, net::beast::flat_buffer& upstream_pending,
                                 Duration idle, bool may_park) {
    client_ = &client;
    upstream_ = &upstream;
    for (;;) {
        client.expires_never();
        upstream.expires_never();
        Run run(client.get_executor(), idle, may_park && !stopping_);
        if (run.watchdog) {
            co_await (pump(0, client, upstream, client_pending, run) &&
                      pump(1, upstream, client, upstream_pending, run) &&
                      watch(client, upstream, idle, last_activity_, run.running, *run.watchdog));
        } else {
            co_await (pump(0, client, upstream, client_pending, run) &&
                      pump(1, upstream, client, upstream_pending, run));
        }
        if (!run.parking || !(open_[0] || open_[1])) {
            break;
        }
        if (!stopping_) {
            client_ = nullptr;
            upstream_ = nullptr;
            co_return TunnelEnd::Quiet;
        }
        // A stop came while the run was ending to park: a direction that had
        // already left did not close its side. One more run (not parkable
        // now) closes every side still open as a stop does, Close 1001
        // included.
    }
    client_ = nullptr;
    upstream_ = nullptr;
    stats_.closed_by_request = stopping_;
    if (stopping_ && websocket_) {
        co_await (discard_until_closed(client) && discard_until_closed(upstream));
    }
    co_return TunnelEnd::Closed;
}

}  // namespace bgs::http
