// Active health checks: every upstream of both colors is probed every
// health.interval; after healthy_threshold passes or unhealthy_threshold
// failures in a row its Upstream::healthy flag flips (read by the router) and
// the transition is logged. Control thread only.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/router.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <vector>

namespace bgs::health {

class HealthChecker {
  public:
    HealthChecker(const config::Config& cfg, routing::Router& router,
                  const upstream::Endpoints& endpoints);

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

    const config::Config& cfg_;
    routing::Router& router_;
    const upstream::Endpoints& endpoints_;
    std::vector<std::unique_ptr<net::asio::steady_timer>> timers_;
    bool stopping_ = false;
};

}  // namespace bgs::health
