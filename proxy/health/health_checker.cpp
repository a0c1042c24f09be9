#include "proxy/health/health_checker.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/health/http_probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace bgs::health {

namespace asio = net::asio;

HealthChecker::HealthChecker(const config::Config& cfg, routing::Router& router,
                             upstream::Endpoints& endpoints, NameResolver resolve,
                             OnResolved on_resolved)
    : cfg_(cfg),
      router_(router),
      endpoints_(endpoints),
      resolve_(std::move(resolve)),
      on_resolved_(std::move(on_resolved)) {}

bool HealthChecker::try_resolve(Color color, std::size_t i) {
    auto& ep = endpoints_[index(color)][i];
    if (ep.port() != 0) {
        return true;
    }
    const auto& hp = cfg_.group(color).upstreams[i];
    const auto address = resolve_(hp.host);
    net::error_code ec;
    const auto ip = address ? asio::ip::make_address(*address, ec) : asio::ip::address{};
    if (!address || ec) {
        return false;  // logged once at start; tried again next interval
    }
    ep = net::tcp::endpoint(ip, hp.port);
    log().info("upstream {} of {} resolved to {}; it joins after {} passing probes", hp.to_string(),
               to_string(color), ip.to_string(), cfg_.health.healthy_threshold);
    on_resolved_(color, i, ep);
    return true;
}

bool HealthChecker::apply(Streak& streak, bool passed, std::atomic<bool>& healthy,
                          const config::Health& h) {
    if (passed) {
        streak.failures = 0;
        ++streak.passes;
        if (!healthy.load() && streak.passes >= h.healthy_threshold) {
            healthy.store(true);
            return true;
        }
    } else {
        streak.passes = 0;
        ++streak.failures;
        if (healthy.load() && streak.failures >= h.unhealthy_threshold) {
            healthy.store(false);
            return true;
        }
    }
    return false;
}

void HealthChecker::start(const asio::any_io_executor& ex) {
    for (Color c : kColors) {
        for (std::size_t i = 0; i < endpoints_[index(c)].size(); ++i) {
            timers_.push_back(std::make_unique<asio::steady_timer>(ex));
            asio::co_spawn(ex, watch(c, i, *timers_.back()), [](std::exception_ptr e) {
                if (e) {
                    log().error("a health check loop ended by an exception");
                }
            });
        }
    }
}

void HealthChecker::stop() {
    stopping_ = true;
    for (auto& t : timers_) {
        t->cancel();
    }
}

net::Task<void> HealthChecker::watch(Color color, std::size_t i, asio::steady_timer& timer) {
    auto& up = router_.upstream(color, i);
    Streak streak;
    // Upstreams start out healthy; the first probe comes one interval after
    // start, so a restart does not hit every upstream at the same instant.
    timer.expires_after(cfg_.health.interval);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    while (!stopping_) {
        if (!try_resolve(color, i)) {
            timer.expires_after(cfg_.health.interval);
            co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            continue;
        }
        ProbeRequest req;
        req.target = cfg_.health.path;
        auto r = co_await probe(endpoints_[index(color)][i], req, cfg_.health.timeout);
        if (stopping_) {
            co_return;
        }
        const auto& expect = cfg_.health.expect_status;
        const bool passed =
            r.responded && std::find(expect.begin(), expect.end(), r.status) != expect.end();
        if (apply(streak, passed, up.healthy, cfg_.health)) {
            if (passed) {
                log().info("upstream {} of {} is healthy again", up.address, to_string(color));
            } else {
                log().warn("upstream {} of {} is unhealthy: {}", up.address, to_string(color),
                           r.responded ? "status " + std::to_string(r.status) : r.error);
            }
        }
        timer.expires_after(cfg_.health.interval);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

}  // namespace bgs::health
