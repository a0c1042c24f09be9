// Per-worker pool of idle keep-alive connections to upstreams, and the dialer for
// new ones. Worker thread only: no locks.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/units.hpp"
#include "proxy/net/http_io.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

namespace bgs::upstream {

/// Resolved addresses of every upstream, indexed [color][upstream]. Port 0
/// marks an upstream whose name has not resolved yet (configured ports are
/// never 0).
using Endpoints = std::array<std::vector<net::tcp::endpoint>, 2>;

/// One connection to an upstream. `buffer` holds bytes read past a message.
struct Connection {
    explicit Connection(net::tcp::socket s) : stream(std::move(s)) {}
    net::Stream stream;
    net::beast::flat_buffer buffer;
    Color color = Color::Blue;
    std::size_t index = 0;
    bool reused = false;  // came from the pool rather than a fresh connect
    /// Its last response had no body by its framing (HEAD, 204, 304): an
    /// upstream that sends one anyway sends it after, so it is checked on reuse.
    bool bodiless_last = false;
    std::chrono::steady_clock::time_point idle_since{};
};

class Pool {
  public:
    /// Keeps at most `max_idle` idle connections per upstream, each for at most
    /// `idle_timeout`. The pool has its own copy of the addresses.
    Pool(Endpoints endpoints, std::size_t max_idle, Duration idle_timeout);

    /// A live idle connection to upstream (color, i), or nullptr. One that
    /// sat idle for more than a moment, or whose last response was bodiless,
    /// is checked before reuse (a non-blocking peek): connections the upstream
    /// closed meanwhile, or that hold bytes nobody asked for, are dropped here.
    std::unique_ptr<Connection> take(Color color, std::size_t i);

    /// Returns a connection whose last exchange completed cleanly.
    void give_back(std::unique_ptr<Connection> conn);

    /// Dials upstream (color, i) within `timeout`.
    net::Task<std::pair<net::error_code, std::unique_ptr<Connection>>> connect(
        net::asio::any_io_executor ex, Color color, std::size_t i, Duration timeout);

    /// Closes idle connections older than the idle timeout.
    void sweep();
    /// Closes every idle connection of `color` (drain), or of both colors.
    void close_idle(Color color);
    void close_all();
    /// While a color drains, connections of it are closed instead of pooled.
    void set_pooling(Color color, bool on) { pooling_[index(color)] = on; }

    const net::tcp::endpoint& endpoint(Color c, std::size_t i) const {
        return endpoints_[index(c)][i];
    }
    /// Upstream (c, i) is now at `ep` (its name resolved); idle connections
    /// to where it was are closed.
    void set_endpoint(Color c, std::size_t i, const net::tcp::endpoint& ep) {
        endpoints_[index(c)][i] = ep;
        idle_[index(c)][i].clear();
    }

  private:
    Endpoints endpoints_;
    std::size_t max_idle_;
    Duration idle_timeout_;
    // Most recently used at the back: taking from the back keeps warm sockets busy
    // and lets cold ones age out.
    std::array<std::vector<std::deque<std::unique_ptr<Connection>>>, 2> idle_;
    std::array<bool, 2> pooling_{true, true};
};

}  // namespace bgs::upstream
