// Active health checks: every upstream of both colors is probed every
// health.interval; after healthy_threshold passes or unhealthy_threshold
// failures in a row its Upstream::healthy flag flips (read by the router) and
// the transition is logged. Control thread only.
#pragma once

#include "proxy/common/name_resolver.hpp"
#include "proxy/config/config.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/router.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace bgs::health {

class HealthChecker {
  public:
    /// Called when the name of upstream (color, i) resolved after start.
    using OnResolved = std::function<void(Color, std::size_t, const net::tcp::endpoint&)>;

    /// An upstream whose endpoint has port 0 did not resolve at start: it
    /// stays unhealthy, and its name is tried again every health.interval
    /// with `resolve`; once it resolves, `endpoints` is updated, `on_resolved`
    /// called, and its probes begin.
    HealthChecker(const config::Config& cfg, routing::Router& router,
                  upstream::Endpoints& endpoints, NameResolver resolve, OnResolved on_resolved);

    /// Starts one probe loop per upstream on `ex`.
    void start(const net::asio::any_io_executor& ex);
    /// Ends the loops (a probe in progress finishes within its timeout).
    void stop();

    /// Consecutive-result bookkeeping, exposed for tests: applies one probe
    /// result and returns true when the upstream's state flipped.
    struct Streak {
        unsigned passes = 0;
        unsigned failures = 0;
    };
    static bool apply(Streak& streak, bool passed, std::atomic<bool>& healthy,
                      const config::Health& h);

  private:
    net::Task<void> watch(Color color, std::size_t i, net::asio::steady_timer& timer);
    /// For an upstream not resolved yet: one try; true once it has an address.
    bool try_resolve(Color color, std::size_t i);

    const config::Config& cfg_;
    routing::Router& router_;
    upstream::Endpoints& endpoints_;
    NameResolver resolve_;
    OnResolved on_resolved_;
    std::vector<std::unique_ptr<net::asio::steady_timer>> timers_;
    bool stopping_ = false;
};

}  // namespace bgs::health
