// Byte relay for upgraded connections (WebSocket and other Upgrade protocols),
// after the upstream's 101. For WebSockets it follows frame boundaries in both
// directions so that a drain or shutdown can end the tunnel with a Close frame
// (1001, going away) to each side without cutting a frame. Worker thread only.
#pragma once

#include "proxy/common/units.hpp"
#include "proxy/drain/session_registry.hpp"
#include "proxy/http/ws_frame.hpp"
#include "proxy/metrics/metrics.hpp"
#include "proxy/net/http_io.hpp"

#include <array>
#include <chrono>
#include <cstdint>

namespace bgs::http {

struct TunnelStats {
    std::uint64_t to_upstream = 0;
    std::uint64_t to_client = 0;
    bool closed_by_request = false;  // ended through Tunnel::stop
};

/// How a run of the tunnel ended.
enum class TunnelEnd {
    Closed,  // both sides are done (or torn down)
    Quiet,   // nothing moved either way for a moment: the caller may park it
};

/// An upgraded connection after the upstream's 101: the relay between the
/// client's and the upstream's stream, and what stopping means for it
/// (WebSockets end with Close 1001 on both sides at a frame boundary, other
/// protocols are closed). Its state (frame trackers, half-closes, counters,
/// the last activity) outlives a run, so a quiet tunnel can be parked between
/// runs and resumed. Worker thread only.
class Tunnel {
  public:
    Tunnel(bool websocket, metrics::Metrics& metrics) : websocket_(websocket), metrics_(metrics) {}
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    /// Relays bytes both ways until both sides have closed, either side fails,
    /// nothing moved for `idle`, or stop() asks for the end (Closed). With
    /// `may_park`, it also returns (Quiet) once neither side has sent
    /// anything for kQuietAfter; run it again when either is readable. Bytes
    /// already buffered on either side are sent first; a half-close is passed
    /// on.
    net::Task<TunnelEnd> run(net::Stream& client, net::beast::flat_buffer& client_pending,
                             net::Stream& upstream, net::beast::flat_buffer& upstream_pending,
                             Duration idle, bool may_park);

    /// Ends the tunnel for `why`, once (counted under its reason). Safe while
    /// it does not run: it then ends as soon as it runs again.
    void stop(drain::StopReason why);

    bool websocket() const { return websocket_; }
    bool stopping() const { return stopping_; }
    const TunnelStats& stats() const { return stats_; }
    /// Direction `dir` (0: client to upstream, 1: back) may still carry bytes.
    bool open(int dir) const { return open_[static_cast<std::size_t>(dir)]; }
    /// When a byte last moved (or the tunnel began).
    std::chrono::steady_clock::time_point last_activity() const { return last_activity_; }

    /// How long both sides must be quiet before a parkable run returns.
    static constexpr auto kQuietAfter = std::chrono::milliseconds(100);

  private:
    struct Run;
    net::Task<void> pump(int dir, net::Stream& from, net::Stream& to,
                         net::beast::flat_buffer& pending, Run& run);

    bool websocket_;
    metrics::Metrics& metrics_;
    bool stopping_ = false;
    net::Stream* client_ = nullptr;  // while running, to wake its reads
    net::Stream* upstream_ = nullptr;
    TunnelStats stats_;
    std::chrono::steady_clock::time_point last_activity_ = std::chrono::steady_clock::now();
    // Per direction (0: client to upstream, 1: upstream to client).
    std::array<ws::BoundaryTracker, 2> frames_;
    std::array<bool, 2> open_{true, true};  // not yet ended by its sender
};

}  // namespace bgs::http
