// SPEC section 13, the canary, under real traffic: the share of new sessions,
// stickiness by cookie and by header, WebSockets following the choice,
// completion, ending it, the observation's rollback, and its durability.
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"
#include "tests/support/ws_util.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <cmath>

namespace bgs::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
const std::string kToken = "canary-token";

config::Config canary_config(std::uint16_t blue, std::uint16_t green) {
    auto cfg = test_config({blue}, {green});
    cfg.admin.token = kToken;
    cfg.health.interval = 100ms;
    cfg.switching.drain_timeout = 1s;
    return cfg;
}

AdminAnswer call(RunningProxy& p, const std::string& method, const std::string& path,
                 const std::string& body = "") {
    return admin_call(p.server->admin_port(), method, path, body, kToken);
}

json::object status(RunningProxy& p) {
    return json::parse(call(p, "GET", "/v1/status").body).as_object();
}

json::object canary(RunningProxy& p, const std::string& body, int expect = 200) {
    const auto a = call(p, "POST", "/v1/canary", body);
    EXPECT_EQ(a.status, expect) << a.body;
    return json::parse(a.body).as_object();
}

// One exchange on a keep-alive connection: the upstream's name and the
// Set-Cookie the proxy added, if any.
struct Answer {
    std::string color;
    std::optional<std::string> cookie;
};

Answer get(Socket& c, const std::string& extra = "") {
    c.send("GET / HTTP/1.1\r\nHost: a\r\n" + extra + "\r\n");
    const auto m = read_response(c);
    EXPECT_EQ(m.status, 200);
    return {m.body, m.header("Set-Cookie")};
}

// "bgswitch_color=green.7; Path=/; ..." -> "bgswitch_color=green.7"
std::string cookie_pair(const std::string& set_cookie) {
    return set_cookie.substr(0, set_cookie.find(';'));
}

// How many of `n` fresh sessions (no cookie) landed on green.
int fresh_sessions_on_green(std::uint16_t port, int n) {
    auto c = Socket::connect(port);
    int green = 0;
    for (int i = 0; i < n; ++i) {
        const auto a = get(c);
        green += a.color == "green" ? 1 : 0;
        EXPECT_TRUE(a.cookie.has_value());
    }
    return green;
}

// Within five standard deviations of a binomial's mean: fails by chance once
// in a few million runs.
void expect_share(int hits, int n, double p) {
    const double mean = n * p;
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_GT(hits, mean - 5 * sd) << hits << " of " << n;
    EXPECT_LT(hits, mean + 5 * sd) << hits << " of " << n;
}

TEST(CanaryTest, SendsItsShareOfFreshSessionsAndTellsEachItsColor) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(canary_config(blue.port(), green.port()));

    // No canary: no cookie is set.
    {
        auto c = Socket::connect(proxy.port());
        const auto a = get(c);
        EXPECT_EQ(a.color, "blue");
        EXPECT_FALSE(a.cookie);
    }
    const auto started = canary(proxy, R"({"to":"green","percent":10,"reason":"v2 canary"})");
    EXPECT_EQ(started.at("result"), "canary");
    EXPECT_EQ(started.at("percent"), 10);
    EXPECT_TRUE(started.contains("gates"));
    const auto version = started.at("version").as_int64();

    expect_share(fresh_sessions_on_green(proxy.port(), 2000), 2000, 0.10);

    auto c = Socket::connect(proxy.port());
    const auto a = get(c);
    ASSERT_TRUE(a.cookie);
    EXPECT_EQ(a.cookie->rfind("bgswitch_color=" + a.color + "." + std::to_string(version), 0), 0u)
        << *a.cookie;
    EXPECT_NE(a.cookie->find("; Path=/"), std::string::npos);
    EXPECT_NE(a.cookie->find("; HttpOnly"), std::string::npos);
    EXPECT_NE(a.cookie->find("; SameSite=Lax"), std::string::npos);
    EXPECT_EQ(a.cookie->find("Secure"), std::string::npos);  // not over plain TCP

    const auto s = status(proxy);
    EXPECT_EQ(s.at("active"), "blue");
    EXPECT_EQ(s.at("canary").at("to"), "green");
    EXPECT_EQ(s.at("canary").at("percent"), 10);
    const auto metrics = call(proxy, "GET", "/metrics").body;
    EXPECT_NE(metrics.find("\nbgswitch_canary_percent 10\n"), std::string::npos);
    const auto events = json::parse(call(proxy, "GET", "/v1/history").body).at("events");
    const auto& e = events.as_array().front().as_object();
    EXPECT_EQ(e.at("action"), "canary");
    EXPECT_EQ(e.at("result"), "canary");
    EXPECT_EQ(e.at("percent"), 10);
    EXPECT_EQ(e.at("to"), "green");
    EXPECT_EQ(e.at("reason"), "v2 canary");
}

TEST(CanaryTest, ASessionKeepsItsColorAcrossRequestsAndAPercentIncrease) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(canary_config(blue.port(), green.port()));
    canary(proxy, R"({"to":"green","percent":30})");

    // Sessions, each with the cookie its first answer set.
    std::vector<std::pair<std::string, std::string>> sessions;  // cookie, color
    auto c = Socket::connect(proxy.port());
    while (sessions.size() < 40) {
        const auto a = get(c);
        ASSERT_TRUE(a.cookie);
        sessions.emplace_back(cookie_pair(*a.cookie), a.color);
    }
    const auto on_green = std::count_if(sessions.begin(), sessions.end(),
                                        [](const auto& s) { return s.second == "green"; });
    ASSERT_GT(on_green, 0);
    ASSERT_LT(on_green, 40);

    auto replay = [&](int times) {
        for (const auto& [cookie, color] : sessions) {
            for (int i = 0; i < times; ++i) {
                const auto a = get(c, "Cookie: theme=dark; " + cookie + "; lang=en\r\n");
                ASSERT_EQ(a.color, color) << cookie;
                ASSERT_FALSE(a.cookie);  // a known session gets no new cookie
            }
        }
    };
    replay(100);
    canary(proxy, R"({"to":"green","percent":80})");
    replay(5);  // the epoch stayed: every session kept its color

    // A tester asking for the canary by hand.
    EXPECT_EQ(get(c, "Cookie: bgswitch_color=green\r\n").color, "green");
    EXPECT_EQ(get(c, "Cookie: bgswitch_color=blue\r\n").color, "blue");

    // Ended: every session is back on blue, whatever its cookie says.
    const auto ended = canary(proxy, R"({"percent":0})");
    EXPECT_EQ(ended.at("result"), "canary_ended");
    EXPECT_EQ(ended.at("percent"), 0);
    for (const auto& [cookie, color] : sessions) {
        const auto a = get(c, "Cookie: " + cookie + "\r\n");
        EXPECT_EQ(a.color, "blue");
        EXPECT_FALSE(a.cookie);
    }
    EXPECT_TRUE(status(proxy).at("canary").is_null());

    // A new canary: the old one's cookies are stale and are assigned afresh.
    canary(proxy, R"({"to":"green","percent":50})");
    int renewed = 0;
    for (const auto& [cookie, color] : sessions) {
        renewed += get(c, "Cookie: " + cookie + "\r\n").cookie ? 1 : 0;
    }
    EXPECT_EQ(renewed, static_cast<int>(sessions.size()));
}

TEST(CanaryTest, TheStickyHeaderKeepsAUserOnOneColorByItsHash) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = canary_config(blue.port(), green.port());
    cfg.switching.canary.sticky_header = "X-User-Id";
    RunningProxy proxy(cfg);
    canary(proxy, R"({"to":"green","percent":20})");

    auto c = Socket::connect(proxy.port());
    std::map<std::string, std::string> first;
    int green_users = 0;
    for (int u = 0; u < 1000; ++u) {
        const auto id = "user-" + std::to_string(u);
        const auto a = get(c, "X-User-Id: " + id + "\r\n");
        EXPECT_FALSE(a.cookie);  // the header is the session
        first[id] = a.color;
        green_users += a.color == "green" ? 1 : 0;
    }
    expect_share(green_users, 1000, 0.20);
    for (int u = 0; u < 1000; u += 7) {
        const auto id = "user-" + std::to_string(u);
        for (int i = 0; i < 3; ++i) {
            EXPECT_EQ(get(c, "X-User-Id: " + id + "\r\n").color, first[id]);
        }
    }
    // Raised: every user on green stays there, more join.
    canary(proxy, R"({"to":"green","percent":60})");
    int now_green = 0;
    for (const auto& [id, color] : first) {
        const auto a = get(c, "X-User-Id: " + id + "\r\n");
        if (color == "green") {
            EXPECT_EQ(a.color, "green") << id;
        }
        now_green += a.color == "green" ? 1 : 0;
    }
    expect_share(now_green, 1000, 0.60);
}

TEST(CanaryTest, WebSocketsFollowTheSessionsColor) {
    WsUpstreamLog blue_log, green_log;
    ScriptedUpstream blue(ws_app("blue", blue_log));
    ScriptedUpstream green(ws_app("green", green_log));
    RunningProxy proxy(canary_config(blue.port(), green.port()));
    const auto started = canary(proxy, R"({"to":"green","percent":5})");
    const auto epoch = std::to_string(started.at("version").as_int64());

    auto ws = Socket::connect(proxy.port());
    ws.send(
        "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Cookie: bgswitch_color=green." +
        epoch + "\r\n\r\n");
    const auto m = read_response(ws, 5s, true);
    ASSERT_EQ(m.status, 101);
    EXPECT_FALSE(m.header("Set-Cookie"));
    EXPECT_TRUE(eventually([&] { return green_log.connections.load() == 1; }));
    EXPECT_EQ(blue_log.connections.load(), 0);

    // Ending the canary drains green's WebSockets: 1001 after drain_timeout.
    canary(proxy, R"({"percent":0})");
    EXPECT_EQ(read_frame(ws, 5s).close_code(), 1001);
}

TEST(CanaryTest, SwitchCompletesItAndRollbackEndsIt) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(canary_config(blue.port(), green.port()));

    // Refusals.
    EXPECT_EQ(call(proxy, "POST", "/v1/canary", R"({"to":"blue","percent":10})").status, 409);
    EXPECT_EQ(call(proxy, "POST", "/v1/canary", R"({"to":"green"})").status, 400);
    EXPECT_EQ(call(proxy, "POST", "/v1/canary", R"({"to":"green","percent":101})").status, 400);
    EXPECT_EQ(call(proxy, "POST", "/v1/canary", R"({"to":"green","percent":-1})").status, 400);
    EXPECT_EQ(canary(proxy, R"({"percent":0})").at("result"), "no_canary");
    EXPECT_EQ(canary(proxy, R"({"to":"green","percent":10,"dry_run":true})").at("result"),
              "dry_run_passed");
    EXPECT_TRUE(status(proxy).at("canary").is_null());

    // Rollback during a canary: no color moves.
    canary(proxy, R"({"to":"green","percent":10})");
    const auto rb = json::parse(call(proxy, "POST", "/v1/rollback").body).as_object();
    EXPECT_EQ(rb.at("result"), "canary_ended");
    EXPECT_EQ(status(proxy).at("active"), "blue");
    EXPECT_TRUE(status(proxy).at("canary").is_null());
    {
        auto c = Socket::connect(proxy.port());
        for (int i = 0; i < 50; ++i) {
            const auto a = get(c);
            EXPECT_EQ(a.color, "blue");
            EXPECT_FALSE(a.cookie);
        }
    }

    // A switch to the canary's color completes it.
    canary(proxy, R"({"to":"green","percent":50})");
    const auto sw = call(proxy, "POST", "/v1/switch", R"({"to":"green"})");
    ASSERT_EQ(sw.status, 200) << sw.body;
    const auto swo = json::parse(sw.body).as_object();
    EXPECT_EQ(swo.at("result"), "switched");
    EXPECT_EQ(swo.at("percent"), 100);
    const auto s = status(proxy);
    EXPECT_EQ(s.at("active"), "green");
    EXPECT_TRUE(s.at("canary").is_null());
    EXPECT_NE(call(proxy, "GET", "/metrics").body.find("\nbgswitch_canary_percent 0\n"),
              std::string::npos);
    auto c = Socket::connect(proxy.port());
    for (int i = 0; i < 20; ++i) {
        const auto a = get(c, "Cookie: bgswitch_color=blue\r\n");
        EXPECT_EQ(a.color, "green");
        EXPECT_FALSE(a.cookie);
    }
}

TEST(CanaryTest, AFailingGateRefusesIt) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    auto cfg = canary_config(blue.port(), dead_port());
    RunningProxy proxy(cfg);
    const auto a = call(proxy, "POST", "/v1/canary", R"({"to":"green","percent":10})");
    EXPECT_EQ(a.status, 412) << a.body;
    EXPECT_TRUE(json::parse(a.body).as_object().contains("gates"));
    EXPECT_TRUE(status(proxy).at("canary").is_null());
}

// A version that answers its health checks but fails real requests.
ScriptedUpstream::Handler broken_app() {
    return [](Socket& s, ScriptedUpstream& self) {
        while (auto req = self.next_request(s)) {
            const bool health = req->target == "/health";
            s.send(http_response(health ? 200 : 500, health ? "ok" : "broken"));
        }
    };
}

TEST(CanaryTest, AFailingShareIsEndedByTheObservation) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(broken_app());
    auto cfg = canary_config(blue.port(), green.port());
    cfg.switching.auto_rollback.window = 1s;
    cfg.switching.auto_rollback.min_requests = 10;
    RunningProxy proxy(cfg);
    const auto started = canary(proxy, R"({"to":"green","percent":50,"observe":"30s"})");
    EXPECT_TRUE(started.contains("observe_until"));
    EXPECT_EQ(status(proxy).at("observation").at("canary"), true);

    // Fresh sessions: half get green's 500s (LoadLoop would count them as
    // failures; this loop only drives traffic).
    std::atomic<bool> stop{false};
    std::thread traffic([&] {
        while (!stop) {
            try {
                auto c = Socket::connect(proxy.port());
                for (int i = 0; i < 20 && !stop; ++i) {
                    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                    read_response(c);
                }
            } catch (const std::exception&) {
            }
        }
    });
    const bool ended = eventually([&] { return status(proxy).at("canary").is_null(); }, 15s);
    stop = true;
    traffic.join();
    ASSERT_TRUE(ended);
    const auto s = status(proxy);
    EXPECT_EQ(s.at("active"), "blue");
    EXPECT_EQ(s.at("last_observation").at("result"), "rolled_back");
    const auto events = json::parse(call(proxy, "GET", "/v1/history").body).at("events");
    const auto& e = events.as_array().front().as_object();
    EXPECT_EQ(e.at("action"), "auto_rollback");
    EXPECT_EQ(e.at("result"), "canary_ended");
    EXPECT_EQ(e.at("source"), "observer");
    EXPECT_EQ(e.at("percent"), 0);
    const auto metrics = call(proxy, "GET", "/metrics").body;
    EXPECT_NE(metrics.find("\nbgswitch_canary_percent 0\n"), std::string::npos);
    EXPECT_NE(metrics.find("\nbgswitch_auto_rollbacks_total 1\n"), std::string::npos);
    auto c = Socket::connect(proxy.port());
    EXPECT_EQ(get(c).color, "blue");
}

TEST(CanaryTest, SurvivesARestart) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = canary_config(blue.port(), green.port());
    std::string cookie;
    {
        RunningProxy proxy(cfg);
        canary(proxy, R"({"to":"green","percent":25})");
        auto c = Socket::connect(proxy.port());
        while (cookie.empty()) {
            const auto a = get(c);
            if (a.color == "green") {
                cookie = cookie_pair(*a.cookie);
            }
        }
    }
    RunningProxy again(cfg);
    const auto s = status(again);
    EXPECT_EQ(s.at("canary").at("percent"), 25);
    EXPECT_EQ(s.at("canary").at("to"), "green");
    auto c = Socket::connect(again.port());
    for (int i = 0; i < 10; ++i) {
        const auto a = get(c, "Cookie: " + cookie + "\r\n");
        EXPECT_EQ(a.color, "green");
        EXPECT_FALSE(a.cookie);
    }
}

}  // namespace
}  // namespace bgs::test
