#include "proxy/health/gates.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/health/http_probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <memory>

namespace bgs::health {
namespace {

namespace asio = net::asio;
using Clock = std::chrono::steady_clock;

// What gather's checks share: their results and how many are still running.
template <typename T>
struct GatherState {
    GatherState(net::asio::any_io_executor e, std::vector<T> r)
        : results(std::move(r)), left(results.size()), done(e) {}
    std::vector<T> results;
    std::size_t left;
    net::asio::steady_timer done;
};

template <typename T>
net::Task<void> run_check(std::shared_ptr<GatherState<T>> s, std::size_t slot, net::Task<T> task) {
    try {
        s->results[slot] = co_await std::move(task);
    } catch (const std::exception& e) {
        s->results[slot].error = std::string("check failed: ") + e.what();
        log().error("a gate check failed by an exception: {}", e.what());
    } catch (...) {
        s->results[slot].error = "check failed: unknown exception";
        log().error("a gate check failed by an unknown exception");
    }
    if (--s->left == 0) {
        s->done.cancel();
    }
}

}  // namespace

template <typename T>
net::Task<std::vector<T>> gather(std::vector<net::Task<T>> tasks, std::vector<T> failed) {
    if (tasks.empty()) {
        co_return std::vector<T>{};
    }
    auto ex = co_await asio::this_coro::executor;
    auto shared = std::make_shared<GatherState<T>>(ex, std::move(failed));
    shared->done.expires_at(std::chrono::steady_clock::time_point::max());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        asio::co_spawn(ex, run_check<T>(shared, i, std::move(tasks[i])), [](std::exception_ptr e) {
            if (e) {  // only the bookkeeping above could throw; it does not
                log().critical("gate bookkeeping ended by an exception");
                std::terminate();
            }
        });
    }
    while (shared->left > 0) {
        co_await shared->done.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return std::move(shared->results);
}

template net::Task<std::vector<HealthGateResult>> gather(std::vector<net::Task<HealthGateResult>>,
                                                         std::vector<HealthGateResult>);
template net::Task<std::vector<SmokeResult>> gather(std::vector<net::Task<SmokeResult>>,
                                                    std::vector<SmokeResult>);

namespace {

net::Task<HealthGateResult> probe_one(const config::Health& h, routing::UpstreamPtr up) {
    HealthGateResult out;
    out.upstream = up->name;
    const auto ep = up->endpoint;
    ProbeRequest req;
    req.target = h.path;
    req.tls = up->tls.load();
    auto r = co_await probe(ep, req, h.timeout);
    out.status = r.status;
    out.latency_ms = r.latency_ms;
    if (!r.responded) {
        out.error = r.error;
    } else if (std::find(h.expect_status.begin(), h.expect_status.end(), r.status) ==
               h.expect_status.end()) {
        out.error = "status " + std::to_string(r.status) + " is not expected";
    } else {
        out.healthy = true;
    }
    co_return out;
}

net::Task<SmokeResult> smoke_one(const config::SmokeCheck& check, Duration timeout,
                                 routing::UpstreamPtr up) {
    const auto ep = up->endpoint;
    ProbeRequest req;
    req.method = check.method;
    req.target = check.path;
    req.headers = check.headers;
    req.body = check.body;
    req.tls = up->tls.load();
    SmokeResult out;
    out.check = check.name;
    out.upstream = up->name;
    // A flaky endpoint gets `retries` more tries, each after retry_interval:
    // the result is the last try's.
    for (unsigned attempt = 0;; ++attempt) {
        auto r = co_await probe(ep, req, timeout);
        out.status = r.status;
        out.latency_ms = r.latency_ms;
        out.tries = attempt + 1;
        out.error = r.responded ? smoke_mismatch(check, r.status, r.headers, r.body, r.latency_ms)
                                : r.error;
        out.passed = out.error.empty();
        if (out.passed || attempt >= check.retries) {
            break;
        }
        asio::steady_timer pause(co_await asio::this_coro::executor, check.retry_interval);
        co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return out;
}

}  // namespace

std::string smoke_mismatch(const config::SmokeCheck& check, unsigned status,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body, double latency_ms) {
    const auto& x = check.expect;
    if (status != x.status) {
        return "status " + std::to_string(status) + ", expected " + std::to_string(x.status);
    }
    if (x.body_contains && body.find(*x.body_contains) == std::string::npos) {
        return "body does not contain " + *x.body_contains;
    }
    for (const auto& [name, value] : x.headers) {
        std::string lower(name);
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        auto it = headers.find(lower);
        if (it == headers.end()) {
            return "header " + name + " missing";
        }
        if (it->second != value) {
            return "header " + name + " is \"" + it->second + "\", expected \"" + value + "\"";
        }
    }
    if (x.max_latency && latency_ms > static_cast<double>(x.max_latency->count())) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "took %.1fms, more than max_latency %s", latency_ms,
                      format_duration(*x.max_latency).c_str());
        return buf;
    }
    return {};
}

net::Task<std::vector<HealthGateResult>> probe_health(const config::Config& cfg,
                                                      const routing::Members& members) {
    std::vector<net::Task<HealthGateResult>> tasks;
    std::vector<HealthGateResult> failed;
    for (const auto& up : members) {
        tasks.push_back(probe_one(cfg.health, up));
        failed.emplace_back().upstream = up->name;
    }
    co_return co_await gather(std::move(tasks), std::move(failed));
}

net::Task<std::vector<SmokeResult>> run_smoke(const config::Config& cfg,
                                              const routing::Members& members) {
    std::vector<net::Task<SmokeResult>> tasks;
    std::vector<SmokeResult> failed;
    for (const auto& check : cfg.smoke) {
        // A check slower than its max_latency has failed; no need to wait longer.
        const Duration timeout = check.expect.max_latency
                                     ? *check.expect.max_latency + std::chrono::milliseconds(100)
                                     : cfg.timeouts.upstream_response;
        for (const auto& up : members) {
            tasks.push_back(smoke_one(check, timeout, up));
            auto& f = failed.emplace_back();
            f.check = check.name;
            f.upstream = up->name;
        }
    }
    co_return co_await gather(std::move(tasks), std::move(failed));
}

std::string first_failure(const GateReport& g) {
    if (!g.health_passed && g.health.empty()) {
        return "health: no upstream address (no name of the list resolves)";
    }
    if (!g.health_passed) {
        std::string out = "health: " + std::to_string(g.healthy) + " of " +
                          std::to_string(g.health.size()) + " upstreams healthy, " +
                          std::to_string(g.required) + " required";
        for (const auto& h : g.health) {
            if (!h.healthy) {
                out += "; " + h.upstream + ": " + h.error;
                break;
            }
        }
        return out;
    }
    for (const auto& s : g.smoke) {
        if (!s.passed) {
            return "smoke check " + s.check + " on " + s.upstream + ": " + s.error +
                   (s.tries > 1 ? " (" + std::to_string(s.tries) + " tries)" : "");
        }
    }
    return {};
}

net::Task<GateReport> run_gates(const config::Config& cfg, const routing::Members& members,
                                bool with_smoke) {
    GateReport report;
    auto t0 = Clock::now();
    report.health = co_await probe_health(cfg, members);
    for (const auto& m : members) {
        m->probed();
    }
    report.health_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    const auto total = static_cast<unsigned>(report.health.size());
    // At least one, whatever min_healthy says: a color without a healthy
    // upstream (or without an address at all) never takes traffic.
    report.required = std::max(1u, cfg.switching.min_healthy ? *cfg.switching.min_healthy : total);
    report.healthy = static_cast<unsigned>(std::count_if(report.health.begin(), report.health.end(),
                                                         [](const auto& r) { return r.healthy; }));
    report.health_passed = report.healthy >= report.required;
    if (report.health_passed) {
        // A fresh probe is as good as the checker's, both ways: upstreams
        // that joined just before the switch serve at once, and one that
        // failed (stalled, dead) takes no traffic when the color goes live
        // with fewer than all (min_healthy); the checker brings it back.
        for (std::size_t i = 0; i < members.size(); ++i) {
            members[i]->healthy.store(report.health[i].healthy);
        }
    }
    if (!report.health_passed || !with_smoke || cfg.smoke.empty()) {
        report.smoke_ran = with_smoke && report.health_passed;
        report.smoke_passed = report.smoke_ran;
        co_return report;
    }
    report.smoke_ran = true;
    t0 = Clock::now();
    report.smoke = co_await run_smoke(cfg, members);
    report.smoke_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    report.smoke_passed = std::all_of(report.smoke.begin(), report.smoke.end(),
                                      [](const auto& r) { return r.passed; });
    co_return report;
}

}  // namespace bgs::health
