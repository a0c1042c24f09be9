// Byte relay for upgraded connections (WebSocket and other Upgrade protocols),
// after the upstream's 101. For WebSockets it follows frame boundaries in both
// directions so that a drain or shutdown can end the tunnel with a Close frame
// (1001, going away) to each side without cutting a frame. Worker thread only.
#pragma once

#include "proxy/common/units.hpp"
#include "proxy/net/http_io.hpp"

#include <cstdint>

namespace bgs::http {

struct TunnelStats {
    std::uint64_t to_upstream = 0;
    std::uint64_t to_client = 0;
    bool closed_by_request = false;  // ended through TunnelControl::request_close
};

/// The session's handle on its running tunnel.
class TunnelControl {
  public:
    bool websocket = false;

    /// Ends the tunnel: a WebSocket gets Close 1001 on both sides at the next
    /// frame boundary, anything else is closed. Safe before the tunnel starts.
    void request_close();
    bool close_requested() const { return close_requested_; }

  private:
    friend net::Task<TunnelStats> run_tunnel(net::Stream&, net::beast::flat_buffer&, net::Stream&,
                                             net::beast::flat_buffer&, Duration, TunnelControl&);
    bool close_requested_ = false;
    net::Stream* client_ = nullptr;
    net::Stream* upstream_ = nullptr;
};

/// Relays bytes both ways until both sides have closed, either side fails,
/// nothing moved for `idle`, or `control` asks for the end. Bytes already
/// buffered on either side are sent first; a half-close is passed on.
net::Task<TunnelStats> run_tunnel(net::Stream& client, net::beast::flat_buffer& client_pending,
                                  net::Stream& upstream, net::beast::flat_buffer& upstream_pending,
                                  Duration idle, TunnelControl& control);

}  // namespace bgs::http
