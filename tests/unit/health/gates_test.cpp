#include "proxy/health/gates.hpp"
#include "proxy/health/health_checker.hpp"
#include "proxy/metrics/metrics.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <stdexcept>

namespace bgs::health {
namespace {

TEST(SmokeTest, ExpectationsTable) {
    config::SmokeCheck c;
    c.name = "x";
    c.expect.status = 200;
    c.expect.body_contains = "\"status\":\"ok\"";
    c.expect.headers = {{"Content-Type", "application/json"}};
    c.expect.max_latency = std::chrono::milliseconds(500);
    const std::map<std::string, std::string> json{{"content-type", "application/json"}};
    const std::string ok = R"({"status":"ok"})";
    EXPECT_EQ(smoke_mismatch(c, 200, json, ok, 12), "");
    EXPECT_EQ(smoke_mismatch(c, 503, json, ok, 12), "status 503, expected 200");
    EXPECT_EQ(smoke_mismatch(c, 200, json, "{}", 12), "body does not contain \"status\":\"ok\"");
    EXPECT_EQ(smoke_mismatch(c, 200, {}, ok, 12), "header Content-Type missing");
    EXPECT_EQ(smoke_mismatch(c, 200, {{"content-type", "text/html"}}, ok, 12),
              "header Content-Type is \"text/html\", expected \"application/json\"");
    EXPECT_EQ(smoke_mismatch(c, 200, json, ok, 612.5), "took 612.5ms, more than max_latency 500ms");
}

TEST(HealthCheckerTest, ThresholdsFlipStateOnlyAfterConsecutiveResults) {
    config::Health h;
    h.healthy_threshold = 2;
    h.unhealthy_threshold = 3;
    std::atomic<bool> healthy{true};
    HealthChecker::Streak s;
    EXPECT_FALSE(HealthChecker::apply(s, false, healthy, h));
    EXPECT_FALSE(HealthChecker::apply(s, false, healthy, h));
    EXPECT_FALSE(HealthChecker::apply(s, true, healthy, h));  // a pass resets the failures
    EXPECT_FALSE(HealthChecker::apply(s, false, healthy, h));
    EXPECT_FALSE(HealthChecker::apply(s, false, healthy, h));
    EXPECT_TRUE(HealthChecker::apply(s, false, healthy, h));
    EXPECT_FALSE(healthy.load());
    EXPECT_FALSE(HealthChecker::apply(s, true, healthy, h));
    EXPECT_TRUE(HealthChecker::apply(s, true, healthy, h));
    EXPECT_TRUE(healthy.load());
}

TEST(MetricsTest, RendersCountersAndCumulativeBuckets) {
    metrics::Metrics m;
    m.observe(Color::Blue, 200, 0.003);
    m.observe(Color::Blue, 204, 0.2);
    m.observe(Color::Blue, 502, 20.0);
    m.ended(metrics::EndReason::Drain, metrics::DrainKind::WebSocket);
    m.ended(metrics::EndReason::Shutdown, metrics::DrainKind::Stream);
    metrics::Metrics::Gauges g;
    g.active = Color::Green;
    g.version = 7;
    g.connections[index(Color::Green)] = {0, 40, 2};
    g.upstreams.push_back({Color::Green, "127.0.0.1:9101", true});
    g.switches["switched"] = 7;
    const auto text = m.render(g);
    for (const char* line : {
             "bgswitch_active_color{color=\"green\"} 1\n",
             "bgswitch_active_color{color=\"blue\"} 0\n",
             "bgswitch_state_version 7\n",
             "bgswitch_requests_total{color=\"blue\",code=\"2xx\"} 2\n",
             "bgswitch_requests_total{color=\"blue\",code=\"5xx\"} 1\n",
             "bgswitch_request_duration_seconds_bucket{color=\"blue\",le=\"0.005\"} 1\n",
             "bgswitch_request_duration_seconds_bucket{color=\"blue\",le=\"0.25\"} 2\n",
             "bgswitch_request_duration_seconds_bucket{color=\"blue\",le=\"10\"} 2\n",
             "bgswitch_request_duration_seconds_bucket{color=\"blue\",le=\"+Inf\"} 3\n",
             "bgswitch_request_duration_seconds_count{color=\"blue\"} 3\n",
             "bgswitch_connections{color=\"green\",kind=\"upgraded\"} 40\n",
             "bgswitch_upstream_healthy{color=\"green\",upstream=\"127.0.0.1:9101\"} 1\n",
             "bgswitch_switches_total{result=\"switched\"} 7\n",
             "bgswitch_drain_closed_total{kind=\"websocket\"} 1\n",
             "bgswitch_drain_closed_total{kind=\"stream\"} 0\n",
             "bgswitch_shutdown_closed_total{kind=\"stream\"} 1\n",
             "# TYPE bgswitch_request_duration_seconds histogram\n",
         }) {
        EXPECT_NE(text.find(line), std::string::npos) << line;
    }
}

HealthGateResult result_for(std::string upstream, bool healthy) {
    HealthGateResult r;
    r.upstream = std::move(upstream);
    r.healthy = healthy;
    return r;
}

net::Task<HealthGateResult> healthy_check() {
    co_return result_for("a", true);
}

net::Task<HealthGateResult> throwing_check() {
    throw std::runtime_error("probe exploded");
    co_return HealthGateResult{};
}

// A check that throws is a failed check with its reason, and the gate still
// answers: before, one exception left the gate waiting (and the switcher busy,
// so every later switch got 409).
TEST(GatherTest, ACheckThatThrowsIsAFailedCheckAndTheGateStillAnswers) {
    net::asio::io_context io;
    std::vector<net::Task<HealthGateResult>> tasks;
    tasks.push_back(throwing_check());
    tasks.push_back(healthy_check());
    std::vector<HealthGateResult> failed{result_for("b", false), result_for("a", false)};
    auto done =
        net::asio::co_spawn(io, gather(std::move(tasks), std::move(failed)), net::asio::use_future);
    io.run_for(std::chrono::seconds(5));
    ASSERT_EQ(done.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    const auto results = done.get();
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0].upstream, "b");
    EXPECT_FALSE(results[0].healthy);
    EXPECT_EQ(results[0].error, "check failed: probe exploded");
    EXPECT_TRUE(results[1].healthy);
}

}  // namespace
}  // namespace bgs::health
