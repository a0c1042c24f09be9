// One upstream address of a color, shared by the control thread (which creates
// it, probes it and retires it) and the workers (which route to it). A name in
// the upstream list gives one Upstream per address it resolves to; an IP
// literal gives exactly one. Immutable but for its two flags.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/net/tls.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bgs::routing {

/// TLS to an upstream: its color's context and the name its certificate must
/// carry (also the SNI).
struct TlsTarget {
    std::shared_ptr<const net::tls::ClientContext> context;
    std::string name;
};

struct Upstream {
    Upstream(config::HostPort configured, boost::asio::ip::tcp::endpoint endpoint, bool healthy);
    Upstream(const Upstream&) = delete;
    Upstream& operator=(const Upstream&) = delete;

    /// Unique in this process and never reused: what drains and pools match on.
    const std::uint64_t id;
    /// The list entry it came from ("app-green:8080" or "10.0.0.7:8080").
    const config::HostPort configured;
    /// `configured` as text: the Host an HTTP/1.0 request without one gets.
    const std::string authority;
    const boost::asio::ip::tcp::endpoint endpoint;
    /// "10.0.0.7:8080", or "[::1]:8080".
    const std::string address;
    /// How status, metrics and logs name it: the address for an IP literal,
    /// "app-green:8080 (172.18.0.5)" for a name.
    const std::string name;
    /// Written by the health checker and the switch gate, read by the router
    /// (relaxed: a stale read only routes one request to a peer that just
    /// changed state, which the retry covers).
    std::atomic<bool> healthy;
    /// Set once it left its color's list: its probes stop.
    std::atomic<bool> retired{false};
    /// When its last health probe (checker or gate) answered or failed, in
    /// system-clock milliseconds; 0 before the first.
    std::atomic<std::int64_t> probed_at_ms{0};

    /// Marks a probe done now.
    void probed() {
        probed_at_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count(),
                           std::memory_order_relaxed);
    }
    /// Its color's TLS (null: plain TCP). Read at each new connection; a
    /// reload may replace it.
    std::atomic<std::shared_ptr<const TlsTarget>> tls;
};

using UpstreamPtr = std::shared_ptr<Upstream>;
/// The upstreams of one color in rotation, in list order.
using Members = std::vector<UpstreamPtr>;

/// The next upstream of `members` in round-robin order after `cursor`
/// (advanced), preferring healthy ones and skipping `exclude`. When none is
/// healthy every upstream is a candidate: stale health must not turn into
/// certain 502s. nullopt when there is no candidate.
std::optional<std::size_t> pick(const Members& members, std::size_t& cursor,
                                std::optional<std::size_t> exclude = std::nullopt);

}  // namespace bgs::routing
