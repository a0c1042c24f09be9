// SPEC section 10 under real traffic: the observation after a switch, its
// verdicts, the rollback it makes on its own (and the one it cannot make),
// stopping it, and smoke checks that retry.
#include "proxy/demo/demo_upstream.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace bgs::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
const std::string kToken = "observe-token";

// A version that answers its health and smoke checks but fails real requests.
ScriptedUpstream::Handler broken_app() {
    return [](Socket& s, ScriptedUpstream& self) {
        while (auto req = self.next_request(s)) {
            const bool health = req->target == "/health";
            s.send(http_response(health ? 200 : 500, health ? "ok" : "broken"));
        }
    };
}

config::Config observed_config(std::uint16_t blue, std::uint16_t green) {
    auto cfg = test_config({blue}, {green});
    cfg.admin.token = kToken;
    cfg.health.interval = 100ms;
    cfg.switching.drain_timeout = 1s;
    cfg.switching.observe = 20s;
    cfg.switching.auto_rollback.window = 1s;
    cfg.switching.auto_rollback.min_requests = 20;
    return cfg;
}

AdminAnswer call(RunningProxy& p, const std::string& method, const std::string& path,
                 const std::string& body = "") {
    return admin_call(p.server->admin_port(), method, path, body, kToken);
}

json::object status(RunningProxy& p) {
    return json::parse(call(p, "GET", "/v1/status").body).as_object();
}

std::string body_of_next_request(std::uint16_t port) {
    auto c = Socket::connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    return read_response(c).body;
}

TEST(ObserveTest, AVersionThatFailsIsRolledBackByItself) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(broken_app());
    RunningProxy proxy(observed_config(blue.port(), green.port()));
    LoadLoop load(proxy.port(), 4);
    ASSERT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"green","reason":"v2"})").status, 200);
    EXPECT_EQ(status(proxy).at("state"), "observing");

    ASSERT_TRUE(eventually([&] { return status(proxy).at("active") == "blue"; }, 10s));
    load.stop();
    const auto s = status(proxy);
    EXPECT_TRUE(s.at("observation").is_null());
    const auto& last = s.at("last_observation").as_object();
    EXPECT_EQ(last.at("result"), "rolled_back");
    EXPECT_EQ(last.at("color"), "green");
    EXPECT_EQ(last.at("verdict"), "failing");
    EXPECT_GT(last.at("error_ratio").as_double(), 0.5);

    const auto events = json::parse(call(proxy, "GET", "/v1/history").body).at("events");
    const auto& rollback = events.as_array().front().as_object();
    EXPECT_EQ(rollback.at("action"), "auto_rollback");
    EXPECT_EQ(rollback.at("result"), "switched");
    EXPECT_EQ(rollback.at("source"), "observer");
    const std::string reason(rollback.at("reason").as_string());
    EXPECT_EQ(reason.rfind("5xx ratio 1 > 0.05 over 1s (", 0), 0u) << reason;
    const auto metrics = call(proxy, "GET", "/metrics").body;
    EXPECT_NE(metrics.find("bgswitch_auto_rollbacks_total 1"), std::string::npos);
    EXPECT_NE(metrics.find("bgswitch_observe_state 0"), std::string::npos);
    EXPECT_EQ(body_of_next_request(proxy.port()), "blue");
}

TEST(ObserveTest, AGoodVersionEndsOkAndTooFewRequestsAreInconclusive) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = observed_config(blue.port(), green.port());
    RunningProxy proxy(cfg);
    {
        LoadLoop load(proxy.port(), 4);
        ASSERT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"green","observe":"2s"})").status,
                  200);
        ASSERT_TRUE(eventually([&] { return status(proxy).at("observation").is_null(); }, 10s));
        load.stop();
        EXPECT_EQ(load.failures(), 0);
    }
    auto last = status(proxy).at("last_observation").as_object();
    EXPECT_EQ(last.at("result"), "ok");
    EXPECT_EQ(status(proxy).at("active"), "green");

    // No traffic at all: nothing to judge, and never a rollback.
    ASSERT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"blue","observe":"1500ms"})").status, 200);
    ASSERT_TRUE(eventually([&] { return status(proxy).at("observation").is_null(); }, 10s));
    last = status(proxy).at("last_observation").as_object();
    EXPECT_EQ(last.at("result"), "inconclusive");
    EXPECT_EQ(status(proxy).at("active"), "blue");
}

// Long streams are counted but not timed: an SSE client that stays longer
// than max_p99 does not make a version look slow.
TEST(ObserveTest, StreamsDoNotCountAsSlowRequests) {
    demo::DemoUpstream blue(Color::Blue, "127.0.0.1", 0);
    demo::DemoUpstream green(Color::Green, "127.0.0.1", 0, std::chrono::milliseconds(100));
    auto cfg = observed_config(blue.port(), green.port());
    cfg.switching.auto_rollback.max_p99 = 200ms;
    cfg.switching.auto_rollback.min_requests = 5;
    RunningProxy proxy(cfg);
    ASSERT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"green","observe":"3s"})").status, 200);
    LoadLoop load(proxy.port(), 2, "/color");
    for (int i = 0; i < 3; ++i) {  // streams of about 600 ms each
        auto c = Socket::connect(proxy.port());
        c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
        for (int events = 0; events < 6;) {
            const auto got = c.read_some(5s);
            for (std::size_t at = got.find("data:"); at != std::string::npos;
                 at = got.find("data:", at + 1)) {
                ++events;
            }
        }
    }
    ASSERT_TRUE(eventually([&] { return status(proxy).at("observation").is_null(); }, 10s));
    load.stop();
    const auto last = status(proxy).at("last_observation").as_object();
    EXPECT_EQ(last.at("result"), "ok") << json::serialize(last);
    EXPECT_LT(last.at("p99_ms").to_number<double>(), 200.0);
    EXPECT_EQ(status(proxy).at("active"), "green");
}

TEST(ObserveTest, StopAndAManualRollbackEndIt) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(observed_config(blue.port(), green.port()));
    EXPECT_EQ(call(proxy, "POST", "/v1/observe/stop").status, 409);
    ASSERT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"green"})").status, 200);
    const auto r = call(proxy, "POST", "/v1/observe/stop");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body).at("observation").at("result"), "stopped");
    EXPECT_EQ(status(proxy).at("state"), "draining");
    EXPECT_EQ(call(proxy, "GET", "/v1/observe/stop").status, 405);

    ASSERT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"blue"})").status, 200);
    ASSERT_EQ(call(proxy, "POST", "/v1/rollback", R"({"skip_smoke":true})").status, 200);
    EXPECT_EQ(status(proxy).at("last_observation").at("result"), "ended_by_switch");
    EXPECT_TRUE(status(proxy).at("observation").is_null());
    EXPECT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"blue","observe":"soon"})").status, 400);
}

// The old color went away meanwhile: the rollback is refused by its health
// gate, the failing version stays, and the status says why.
TEST(ObserveTest, WithTheOldColorDownTheNewOneStaysAndSaysWhy) {
    auto blue = std::make_unique<ScriptedUpstream>(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(broken_app());
    RunningProxy proxy(observed_config(blue->port(), green.port()));
    ASSERT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"green"})").status, 200);
    blue.reset();
    LoadLoop load(proxy.port(), 2);
    ASSERT_TRUE(eventually(
        [&] {
            const auto ob = status(proxy).at("observation");
            return ob.is_object() && ob.as_object().contains("note");
        },
        10s));
    load.stop();
    const auto ob = status(proxy).at("observation").as_object();
    EXPECT_EQ(ob.at("verdict"), "failing");
    EXPECT_NE(std::string(ob.at("note").as_string()).find("rollback refused: health"),
              std::string::npos)
        << json::serialize(ob);
    EXPECT_EQ(status(proxy).at("active"), "green");
    const auto events = json::parse(call(proxy, "GET", "/v1/history").body).at("events");
    EXPECT_EQ(events.as_array().front().at("action"), "auto_rollback");
    EXPECT_EQ(events.as_array().front().at("result"), "gate_failed");
}

// A smoke endpoint that fails its first answer: with retries the switch
// passes; without, it is refused and the history names the check.
TEST(ObserveTest, SmokeChecksRetryAFlakyEndpoint) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    std::atomic<int> smoke_calls{0};
    ScriptedUpstream green([&](Socket& s, ScriptedUpstream& self) {
        while (auto req = self.next_request(s)) {
            const bool flaky = req->target == "/smoke" && smoke_calls.fetch_add(1) % 2 == 0;
            s.send(http_response(flaky ? 503 : 200, "green"));
        }
    });
    auto cfg = observed_config(blue.port(), green.port());
    cfg.switching.observe = 0s;
    config::SmokeCheck smoke;
    smoke.name = "flaky";
    smoke.path = "/smoke";
    cfg.smoke.push_back(smoke);
    {
        RunningProxy proxy(cfg);
        const auto r = call(proxy, "POST", "/v1/switch", R"({"to":"green"})");
        EXPECT_EQ(r.status, 412);
        const auto events = json::parse(call(proxy, "GET", "/v1/history").body).at("events");
        const std::string failure(events.as_array().front().at("failure").as_string());
        EXPECT_EQ(failure.rfind("smoke check flaky on 127.0.0.1:", 0), 0u) << failure;
    }
    smoke_calls = 0;
    cfg.smoke.front().retries = 2;
    cfg.smoke.front().retry_interval = 50ms;
    cfg.state_file = fresh_state_path();
    RunningProxy proxy(cfg);
    const auto r = call(proxy, "POST", "/v1/switch", R"({"to":"green"})");
    ASSERT_EQ(r.status, 200) << r.body;
    const auto check = json::parse(r.body).at("gates").at("smoke").at("checks").at(0);
    EXPECT_EQ(check.at("tries"), 2);
    EXPECT_EQ(smoke_calls.load(), 2);
}

}  // namespace
}  // namespace bgs::test
