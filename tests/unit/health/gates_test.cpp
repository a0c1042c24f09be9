#include "proxy/health/gates.hpp"
#include "proxy/health/health_checker.hpp"
#include "proxy/metrics/metrics.hpp"

#include <gtest/gtest.h>

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
    m.drain_closed(metrics::DrainKind::WebSocket);
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
             "# TYPE bgswitch_request_duration_seconds histogram\n",
         }) {
        EXPECT_NE(text.find(line), std::string::npos) << line;
    }
}

}  // namespace
}  // namespace bgs::health
