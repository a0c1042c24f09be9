// Active health checks: every upstream in rotation is probed every
// health.interval; after healthy_threshold passes or unhealthy_threshold
// failures in a row its healthy flag flips (read by the router), the
// transition is logged and reported. An upstream's probes end once it is
// retired. Control thread only.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/upstream.hpp"

#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

namespace bgs::health {

class HealthChecker {
  public:
    /// Called after an upstream's flag flipped.
    using OnFlip = std::function<void(Color, const routing::UpstreamPtr&)>;

    /// `cfg` is read at every probe (a reload may change it in place).
    HealthChecker(const config::Config& cfg, OnFlip on_flip);

    /// Binds the checker to the control thread's executor.
    void start(const net::asio::any_io_executor& ex);
    /// Starts probing `up`: at once with `probe_now`, else one interval from
    /// now (so that a restart does not hit every upstream at the same instant).
    void watch(Color color, routing::UpstreamPtr up, bool probe_now);
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
    net::Task<void> probe_loop(Color color, routing::UpstreamPtr up,
                               std::shared_ptr<net::asio::steady_timer> timer, bool probe_now);

    const config::Config& cfg_;
    OnFlip on_flip_;
    std::optional<net::asio::any_io_executor> ex_;
    // By upstream id; shared with the upstream's loop, which never touches
    // the map (its frame may outlive this object at shutdown): an entry
    // whose loop ended is dropped on the next watch().
    std::map<std::uint64_t, std::shared_ptr<net::asio::steady_timer>> timers_;
    bool stopping_ = false;
};

}  // namespace bgs::health
