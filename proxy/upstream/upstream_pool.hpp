// Per-worker pool of idle keep-alive connections to upstreams, and the dialer for
// new ones. Worker thread only: no locks.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/units.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/upstream.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

namespace bgs::upstream {

/// One connection to an upstream. `buffer` holds bytes read past a message.
struct Connection {
    explicit Connection(net::tcp::socket s) : stream(std::move(s)) {}
    net::Stream stream;
    net::beast::flat_buffer buffer;
    Color color = Color::Blue;
    routing::UpstreamPtr upstream;
    std::size_t index = 0;  // of upstream in its color's members when it was dialled
    bool reused = false;    // came from the pool rather than a fresh connect
    /// Its last response had no body by its framing (HEAD, 204, 304): an
    /// upstream that sends one anyway sends it after, so it is checked on reuse.
    bool bodiless_last = false;
    std::chrono::steady_clock::time_point idle_since{};
};

class Pool {
  public:
    /// Keeps at most `max_idle` idle connections per upstream, each for at most
    /// `idle_timeout`. Starts with no members.
    Pool(std::size_t max_idle, Duration idle_timeout);

    /// The upstreams of `color` in rotation on this worker, in the order the
    /// round-robin walks them (routing::pick).
    const routing::Members& members(Color c) const { return members_[index(c)]; }
    /// Replaces the members of `color`: idle connections to upstreams that
    /// stay are kept, those to upstreams that left are closed, and connections
    /// in use to them are not pooled again.
    void set_members(Color c, routing::Members members);
    void set_idle_timeout(Duration d) { idle_timeout_ = d; }

    /// A live idle connection to member i of `color`, or nullptr. One that
    /// sat idle for more than a moment, or whose last response was bodiless,
    /// is checked before reuse (a non-blocking peek): connections the upstream
    /// closed meanwhile, or that hold bytes nobody asked for, are dropped here.
    std::unique_ptr<Connection> take(Color color, std::size_t i);

    /// Returns a connection whose last exchange completed cleanly.
    void give_back(std::unique_ptr<Connection> conn);

    /// Dials member i of `color` within `timeout`.
    net::Task<std::pair<net::error_code, std::unique_ptr<Connection>>> connect(
        net::asio::any_io_executor ex, Color color, std::size_t i, Duration timeout);

    /// Closes idle connections older than the idle timeout.
    void sweep();
    /// Closes every idle connection of `color` (drain), or of both colors.
    void close_idle(Color color);
    void close_all();
    /// While a color drains, connections of it are closed instead of pooled.
    void set_pooling(Color color, bool on) { pooling_[index(color)] = on; }

  private:
    std::array<routing::Members, 2> members_;
    std::size_t max_idle_;
    Duration idle_timeout_;
    // Most recently used at the back: taking from the back keeps warm sockets busy
    // and lets cold ones age out.
    std::array<std::vector<std::deque<std::unique_ptr<Connection>>>, 2> idle_;
    std::array<bool, 2> pooling_{true, true};
};

}  // namespace bgs::upstream
