// Byte relay for upgraded connections (WebSocket and other Upgrade protocols),
// after the upstream's 101. For WebSockets it follows frame boundaries in both
// directions so that a drain or shutdown can end the tunnel with a Close frame
// (1001, going away) to each side without cutting a frame. Worker thread only.
#pragma once

#include "proxy/common/units.hpp"
#include "proxy/drain/session_registry.hpp"
#include "proxy/metrics/metrics.hpp"
#include "proxy/net/http_io.hpp"

#include <cstdint>

namespace bgs::http {

struct TunnelStats {
    std::uint64_t to_upstream = 0;
    std::uint64_t to_client = 0;
    bool closed_by_request = false;  // ended through Tunnel::stop
};

/// An upgraded connection after the upstream's 101: the session hands its two
/// streams to a Tunnel, which relays bytes until the end and owns what
/// stopping means for it (WebSockets end with Close 1001 on both sides at a
/// frame boundary, other protocols are closed). Worker thread only.
class Tunnel {
  public:
    Tunnel(bool websocket, metrics::Metrics& metrics) : websocket_(websocket), metrics_(metrics) {}
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    /// Relays bytes both ways until both sides have closed, either side fails,
    /// nothing moved for `idle`, or stop() asks for the end. Bytes already
    /// buffered on either side are sent first; a half-close is passed on.
    net::Task<TunnelStats> run(net::Stream& client, net::beast::flat_buffer& client_pending,
                               net::Stream& upstream, net::beast::flat_buffer& upstream_pending,
                               Duration idle);

    /// Ends the tunnel for `why`, once (counted under its reason). Safe before
    /// run() starts: the tunnel then ends as soon as it runs.
    void stop(drain::StopReason why);

    bool websocket() const { return websocket_; }
    bool stopping() const { return stopping_; }

  private:
    bool websocket_;
    metrics::Metrics& metrics_;
    bool stopping_ = false;
    net::Stream* client_ = nullptr;  // while running, to wake its reads
    net::Stream* upstream_ = nullptr;
};

}  // namespace bgs::http
