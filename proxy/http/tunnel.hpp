// Byte relay for upgraded connections (WebSocket and other Upgrade protocols),
// after the upstream's 101. Worker thread only.
#pragma once

#include "proxy/common/units.hpp"
#include "proxy/net/http_io.hpp"

#include <cstdint>

namespace bgs::http {

struct TunnelStats {
    std::uint64_t to_upstream = 0;
    std::uint64_t to_client = 0;
};

/// Relays bytes both ways until both sides have closed, either side fails, or
/// nothing moved for `idle`. Bytes already buffered on either side are sent
/// first. A half-close is passed on (shutdown of the sending side). Closing
/// either stream from outside (stop) ends the tunnel.
net::Task<TunnelStats> run_tunnel(net::Stream& client, net::beast::flat_buffer& client_pending,
                                  net::Stream& upstream, net::beast::flat_buffer& upstream_pending,
                                  Duration idle);

}  // namespace bgs::http
