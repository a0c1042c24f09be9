#include "proxy/health/health_checker.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/health/http_probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace bgs::health {

namespace asio = net::asio;

HealthChecker::HealthChecker(const config::Config& cfg, OnFlip on_flip)
    : cfg_(cfg), on_flip_(std::move(on_flip)) {}

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
    ex_ = ex;
}

void HealthChecker::watch(Color color, routing::UpstreamPtr up, bool probe_now) {
    if (stopping_ || !ex_ || timers_.contains(up->id)) {
        return;
    }
    std::erase_if(timers_, [](const auto& entry) { return entry.second.use_count() == 1; });
    auto timer = std::make_shared<asio::steady_timer>(*ex_);
    timers_.emplace(up->id, timer);
    asio::co_spawn(*ex_, probe_loop(color, std::move(up), std::move(timer), probe_now),
                   [](std::exception_ptr e) {
                       if (e) {
                           log().error("a health check loop ended by an exception");
                       }
                   });
}

void HealthChecker::stop() {
    stopping_ = true;
    for (auto& [id, t] : timers_) {
        t->cancel();
    }
}

net::Task<void> HealthChecker::probe_loop(Color color, routing::UpstreamPtr up,
                                          std::shared_ptr<asio::steady_timer> timer_owner,
                                          bool probe_now) {
    auto& timer = *timer_owner;
    Streak streak;
    if (!probe_now) {
        timer.expires_after(cfg_.health.interval);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    while (!stopping_ && !up->retired.load()) {
        ProbeRequest req;
        req.target = cfg_.health.path;
        req.tls = up->tls.load();
        auto r = co_await probe(up->endpoint, req, cfg_.health.timeout);
        if (stopping_ || up->retired.load()) {
            co_return;
        }
        up->probed();
        const auto& expect = cfg_.health.expect_status;
        const bool passed =
            r.responded && std::find(expect.begin(), expect.end(), r.status) != expect.end();
        if (apply(streak, passed, up->healthy, cfg_.health)) {
            if (passed) {
                log().info("upstream {} of {} is healthy", up->name, to_string(color));
            } else {
                log().warn("upstream {} of {} is unhealthy: {}", up->name, to_string(color),
                           r.responded ? "status " + std::to_string(r.status) : r.error);
            }
            if (on_flip_) {
                on_flip_(color, up);
            }
        }
        timer.expires_after(cfg_.health.interval);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

}  // namespace bgs::health
