// SPEC section 3, row by row, and section 4's durability: the admin API
// against an in-process bgswitch in front of scripted blue and green apps.
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <thread>

namespace bgs::test {
namespace {

namespace json = boost::json;
const std::string kToken = "test-token";

json::object parse(const std::string& body) {
    return json::parse(body).as_object();
}

std::string color_of_next_request(std::uint16_t port) {
    auto c = Socket::connect(port);
    c.send("GET /which HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    return read_response(c).body;
}

config::Config app_config(std::uint16_t blue, std::uint16_t green) {
    auto cfg = test_config({blue}, {green});
    cfg.admin.token = kToken;
    config::SmokeCheck smoke;
    smoke.name = "health-json";
    smoke.path = "/api/v1/health";
    smoke.expect.body_contains = R"("status":"ok")";
    cfg.smoke.push_back(smoke);
    cfg.switching.drain_timeout = std::chrono::seconds(1);
    return cfg;
}

class AdminTest : public ::testing::Test {
  protected:
    AdminTest()
        : blue_(ScriptedUpstream::app("blue")),
          green_(ScriptedUpstream::app("green")),
          proxy_(app_config(blue_.port(), green_.port())) {}

    AdminAnswer call(const std::string& method, const std::string& path,
                     const std::string& body = "") {
        return admin_call(proxy_.server->admin_port(), method, path, body, kToken);
    }

    ScriptedUpstream blue_;
    ScriptedUpstream green_;
    RunningProxy proxy_;
};

TEST_F(AdminTest, HealthzAndMetricsNeedNoToken) {
    auto h = admin_call(proxy_.server->admin_port(), "GET", "/healthz");
    EXPECT_EQ(h.status, 200);
    EXPECT_EQ(parse(h.body).at("status"), "ok");
    auto m = admin_call(proxy_.server->admin_port(), "GET", "/metrics");
    EXPECT_EQ(m.status, 200);
    EXPECT_NE(m.content_type.find("text/plain"), std::string::npos);
    EXPECT_NE(m.body.find("bgswitch_active_color{color=\"blue\"} 1"), std::string::npos) << m.body;
    EXPECT_NE(m.body.find("\nbgswitch_access_log_dropped_total 0\n"), std::string::npos) << m.body;
}

TEST_F(AdminTest, EveryOtherEndpointNeedsTheToken) {
    const auto port = proxy_.server->admin_port();
    for (auto [method, path] : {std::pair{"GET", "/v1/status"},
                                {"GET", "/v1/history"},
                                {"POST", "/v1/switch"},
                                {"POST", "/v1/rollback"}}) {
        auto none = admin_call(port, method, path, R"({"to":"green"})");
        EXPECT_EQ(none.status, 401) << path;
        EXPECT_TRUE(parse(none.body).contains("error"));
        auto wrong = admin_call(port, method, path, R"({"to":"green"})", "test-tokeX");
        EXPECT_EQ(wrong.status, 401) << path;
    }
    EXPECT_EQ(color_of_next_request(proxy_.port()), "blue");  // nothing moved
}

TEST(AdminAllowTest, SourceOutsideTheAllowListGets403) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = app_config(blue.port(), green.port());
    std::string why;
    cfg.admin.allow = {*config::Cidr::parse("10.0.0.0/8", &why)};
    RunningProxy proxy(std::move(cfg));
    auto r = admin_call(proxy.server->admin_port(), "GET", "/v1/status", "", kToken);
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(parse(r.body).at("error"), "source address not allowed");
    EXPECT_EQ(admin_call(proxy.server->admin_port(), "GET", "/healthz").status, 200);
}

TEST_F(AdminTest, StatusDocument) {
    auto r = call("GET", "/v1/status");
    ASSERT_EQ(r.status, 200);
    auto s = parse(r.body);
    EXPECT_EQ(s.at("active"), "blue");
    EXPECT_TRUE(s.at("previous").is_null());
    EXPECT_EQ(s.at("version").to_number<int>(), 1);
    EXPECT_EQ(s.at("state"), "steady");
    const auto& green = s.at("colors").at("green").as_object();
    EXPECT_EQ(std::string(green.at("upstreams").at(0).at("address").as_string()),
              "127.0.0.1:" + std::to_string(green_.port()));
    EXPECT_EQ(green.at("upstreams").at(0).at("healthy"), true);
    for (const char* k : {"in_flight", "upgraded", "streams"}) {
        EXPECT_EQ(green.at(k).to_number<int>(), 0) << k;
    }
    EXPECT_FALSE(green.contains("draining"));
    EXPECT_EQ(s.at("backend"), "file");
}

TEST_F(AdminTest, FleetCallsOutsideFleetModeAreRefused) {
    const auto fleet = call("GET", "/v1/fleet");
    EXPECT_EQ(fleet.status, 404);
    EXPECT_NE(fleet.body.find("not in fleet mode"), std::string::npos) << fleet.body;
    const auto sw = call("POST", "/v1/switch", R"({"to":"green","wait_fleet":"5s"})");
    EXPECT_EQ(sw.status, 400) << sw.body;
    EXPECT_NE(sw.body.find("fleet mode"), std::string::npos) << sw.body;
    EXPECT_EQ(call("PUT", "/v1/colors/green/upstreams",
                   R"({"upstreams":["127.0.0.1:1"],"wait_fleet":"5s"})")
                  .status,
              400);
    EXPECT_EQ(color_of_next_request(proxy_.port()), "blue");
    EXPECT_NE(call("GET", "/metrics").body.find("bgswitch_state_backend_up 1"), std::string::npos);
}

TEST_F(AdminTest, SwitchMovesTrafficAndReportsTheGates) {
    auto r = call("POST", "/v1/switch", R"({"to":"green","reason":"deploy v1.4.2"})");
    ASSERT_EQ(r.status, 200) << r.body;
    auto o = parse(r.body);
    EXPECT_EQ(o.at("result"), "switched");
    EXPECT_EQ(o.at("from"), "blue");
    EXPECT_EQ(o.at("to"), "green");
    EXPECT_EQ(o.at("version").to_number<int>(), 2);
    const auto& gates = o.at("gates").as_object();
    EXPECT_EQ(gates.at("passed"), true);
    EXPECT_EQ(gates.at("health").at("upstreams").as_array().size(), 1u);
    EXPECT_EQ(gates.at("smoke").at("checks").at(0).at("check"), "health-json");
    EXPECT_EQ(color_of_next_request(proxy_.port()), "green");

    auto s = parse(call("GET", "/v1/status").body);
    EXPECT_EQ(s.at("active"), "green");
    EXPECT_EQ(s.at("previous"), "blue");
    EXPECT_EQ(s.at("state"), "draining");
    EXPECT_TRUE(s.at("colors").at("blue").as_object().contains("draining"));
    EXPECT_EQ(s.at("last_switch").at("result"), "switched");
}

TEST_F(AdminTest, AlreadyActiveAndDryRun) {
    auto same = call("POST", "/v1/switch", R"({"to":"blue"})");
    EXPECT_EQ(same.status, 200);
    EXPECT_EQ(parse(same.body).at("result"), "already_active");

    auto dry = call("POST", "/v1/switch", R"({"to":"green","dry_run":true})");
    ASSERT_EQ(dry.status, 200) << dry.body;
    EXPECT_EQ(parse(dry.body).at("result"), "dry_run_passed");
    EXPECT_TRUE(parse(dry.body).contains("gates"));
    EXPECT_EQ(color_of_next_request(proxy_.port()), "blue");
    EXPECT_EQ(parse(call("GET", "/v1/status").body).at("version").to_number<int>(), 1);
}

TEST_F(AdminTest, BadBodiesGet400) {
    const char* bodies[] = {R"({"to":"purple"})",
                            R"({"to":"green","colour":1})",
                            R"({"to":7})",
                            "{not json",
                            R"({"reason":"x"})",
                            R"(["green"])",
                            R"({"to":"green","drain_timeout":"soon"})",
                            R"({"to":"green","dry_run":"yes"})",
                            ""};
    for (const char* b : bodies) {
        auto r = call("POST", "/v1/switch", b);
        EXPECT_EQ(r.status, 400) << b;
        EXPECT_TRUE(parse(r.body).contains("error")) << b;
    }
    EXPECT_EQ(color_of_next_request(proxy_.port()), "blue");
}

TEST_F(AdminTest, ExpectVersionGuardsAgainstRaces) {
    auto stale = call("POST", "/v1/switch", R"({"to":"green","expect_version":6})");
    EXPECT_EQ(stale.status, 409);
    EXPECT_EQ(parse(stale.body).at("current_version").to_number<int>(), 1);
    auto ok = call("POST", "/v1/switch", R"({"to":"green","expect_version":1})");
    EXPECT_EQ(ok.status, 200);
}

TEST_F(AdminTest, RollbackGoesBackToThePreviousColor) {
    auto none = call("POST", "/v1/rollback");
    EXPECT_EQ(none.status, 409);
    ASSERT_EQ(call("POST", "/v1/switch", R"({"to":"green"})").status, 200);
    auto back = call("POST", "/v1/rollback", R"({"skip_smoke":true,"reason":"bad deploy"})");
    ASSERT_EQ(back.status, 200) << back.body;
    auto o = parse(back.body);
    EXPECT_EQ(o.at("result"), "switched");
    EXPECT_EQ(o.at("to"), "blue");
    EXPECT_EQ(o.at("gates").at("smoke").at("ran"), false);
    EXPECT_EQ(color_of_next_request(proxy_.port()), "blue");
}

TEST_F(AdminTest, HistoryIsNewestFirstWithSourceReasonAndTimings) {
    ASSERT_EQ(call("POST", "/v1/switch", R"({"to":"green","reason":"r1"})").status, 200);
    ASSERT_EQ(call("POST", "/v1/rollback", R"({"reason":"r2"})").status, 200);
    auto h = parse(call("GET", "/v1/history").body);
    const auto& events = h.at("events").as_array();
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].at("action"), "rollback");
    EXPECT_EQ(events[0].at("reason"), "r2");
    EXPECT_EQ(events[1].at("action"), "switch");
    EXPECT_EQ(events[1].at("from"), "blue");
    EXPECT_EQ(events[1].at("to"), "green");
    EXPECT_EQ(events[1].at("result"), "switched");
    EXPECT_EQ(events[1].at("source"), "127.0.0.1");
    EXPECT_TRUE(events[1].at("gates").at("health_us").is_number());
    EXPECT_EQ(events[1].at("dry_run"), false);
    EXPECT_TRUE(events[1].as_object().contains("time"));
}

TEST_F(AdminTest, WrongMethodsAndPathsAndOversizedBodies) {
    auto m = call("DELETE", "/v1/status");
    EXPECT_EQ(m.status, 405);
    EXPECT_EQ(call("GET", "/v1/switch").status, 405);
    EXPECT_EQ(call("GET", "/v2/nothing").status, 404);
    auto big = call("POST", "/v1/switch",
                    R"({"to":"green","reason":")" + std::string(100000, 'x') + "\"}");
    EXPECT_EQ(big.status, 413);
    EXPECT_EQ(color_of_next_request(proxy_.port()), "blue");
    // A header over the limit is 431, like on the data path.
    auto huge = Socket::connect(proxy_.server->admin_port());
    huge.send("GET /v1/status HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(20000, 'x') +
              "\r\n\r\n");
    EXPECT_EQ(read_response(huge).status, 431);
}

// A source outside admin.allow is judged at accept: it may read /healthz and
// /metrics (a kubelet, a scraper) but nothing else, and its connections are
// few and short, so that a flood of them cannot hold the admin endpoint or the
// process's descriptors.
TEST(AdminAccessTest, SourcesOutsideTheAllowListGetAShortSmallBudget) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = app_config(blue.port(), green.port());
    std::string why;
    cfg.admin.allow = {*config::Cidr::parse("127.0.0.1/32", &why)};
    RunningProxy proxy(cfg);
    const auto port = proxy.server->admin_port();

    auto outsider_get = [&](const std::string& path) {
        auto s = Socket::connect(port, "127.0.0.2");
        s.send("GET " + path + " HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + kToken +
               "\r\n\r\n");
        return read_response(s).status;
    };
    EXPECT_EQ(outsider_get("/v1/status"), 403);
    EXPECT_EQ(outsider_get("/healthz"), 200);
    EXPECT_EQ(outsider_get("/metrics"), 200);

    // Outsiders that send nothing are closed within their 2 s budget, and the
    // allowed caller is served meanwhile.
    std::vector<Socket> idle;
    for (int i = 0; i < 40; ++i) {
        idle.push_back(Socket::connect(port, "127.0.0.2"));
    }
    EXPECT_EQ(admin_call(port, "GET", "/v1/status", "", kToken).status, 200);
    for (auto& s : idle) {
        EXPECT_TRUE(s.closed_within(5s));
    }
}

// A server whose configuration was made in code without a token refuses
// every authenticated endpoint instead of opening them.
TEST(AdminAccessTest, NoTokenMeansNoAccess) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    auto cfg = test_config({blue.port()}, {blue.port()});
    cfg.admin.token.clear();
    RunningProxy proxy(cfg);
    EXPECT_EQ(admin_call(proxy.server->admin_port(), "GET", "/v1/status").status, 401);
    EXPECT_EQ(
        admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})").status,
        401);
    EXPECT_EQ(color_of_next_request(proxy.port()), "blue");
}

TEST_F(AdminTest, MetricsFollowSwitches) {
    color_of_next_request(proxy_.port());
    ASSERT_EQ(call("POST", "/v1/switch", R"({"to":"green"})").status, 200);
    auto m = admin_call(proxy_.server->admin_port(), "GET", "/metrics").body;
    for (const char* line : {"bgswitch_active_color{color=\"green\"} 1", "bgswitch_state_version 2",
                             "bgswitch_requests_total{color=\"blue\",code=\"2xx\"} 1",
                             "bgswitch_switches_total{result=\"switched\"} 1",
                             "bgswitch_request_duration_seconds_count{color=\"blue\"} 1",
                             "bgswitch_connections{color=\"green\",kind=\"upgraded\"} 0",
                             "bgswitch_drain_closed_total{kind=\"websocket\"} 0"}) {
        EXPECT_NE(m.find(line), std::string::npos) << line << "\n" << m;
    }
    EXPECT_NE(m.find("bgswitch_upstream_healthy{color=\"green\",upstream=\"127.0.0.1:" +
                     std::to_string(green_.port()) + "\"} 1"),
              std::string::npos);
}

// --- gates -----------------------------------------------------------------

TEST(GateTest, FailingHealthGives412AndTrafficStays) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream sick([](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            s.send(http_response(req->target == "/health" ? 503 : 200, "green"));
        }
    });
    RunningProxy proxy(app_config(blue.port(), sick.port()));
    auto r =
        admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})", kToken);
    EXPECT_EQ(r.status, 412);
    auto o = parse(r.body);
    EXPECT_EQ(o.at("error"), "gate failed");
    const auto& up = o.at("gates").at("health").at("upstreams").at(0);
    EXPECT_EQ(up.at("healthy"), false);
    EXPECT_EQ(up.at("status").to_number<int>(), 503);
    EXPECT_EQ(o.at("gates").at("smoke").at("ran"), false);
    EXPECT_EQ(color_of_next_request(proxy.port()), "blue");
    // Durations are whole microseconds, never a double in exponent form.
    EXPECT_TRUE(up.at("latency_us").is_number());
    EXPECT_FALSE(up.at("latency_us").is_double());
    EXPECT_EQ(r.body.find("E-"), std::string::npos) << r.body;
    auto h = parse(admin_call(proxy.server->admin_port(), "GET", "/v1/history", "", kToken).body);
    EXPECT_EQ(h.at("events").at(0).at("result"), "gate_failed");
    EXPECT_EQ(h.at("events").at(0).at("dry_run"), false);

    // A failed dry run says it was one, and which check failed with its reason.
    auto dry = admin_call(proxy.server->admin_port(), "POST", "/v1/switch",
                          R"({"to":"green","dry_run":true})", kToken);
    EXPECT_EQ(dry.status, 412);
    h = parse(admin_call(proxy.server->admin_port(), "GET", "/v1/history", "", kToken).body);
    const auto& ev = h.at("events").at(0);
    EXPECT_EQ(ev.at("result"), "gate_failed");
    EXPECT_EQ(ev.at("dry_run"), true);
    const std::string failure(ev.at("failure").as_string());
    EXPECT_NE(failure.find("health: 0 of 1 upstreams healthy, 1 required"), std::string::npos)
        << failure;
    EXPECT_NE(failure.find("status 503 is not expected"), std::string::npos) << failure;
}

TEST(GateTest, HealthyButFailingSmokeNeverGetsTraffic) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream liar([](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            s.send(
                http_response(200, req->target == "/health" ? "ok" : R"({"status":"degraded"})"));
        }
    });
    RunningProxy proxy(app_config(blue.port(), liar.port()));
    std::atomic<bool> stop{false};
    std::atomic<int> wrong{0};
    std::thread load([&] {
        while (!stop) {
            if (color_of_next_request(proxy.port()) != "blue") {
                ++wrong;
            }
        }
    });
    auto r =
        admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})", kToken);
    stop = true;
    load.join();
    EXPECT_EQ(r.status, 412);
    const auto answer = parse(r.body);
    const auto& check = answer.at("gates").at("smoke").at("checks").at(0);
    EXPECT_EQ(check.at("passed"), false);
    EXPECT_NE(std::string(check.at("error").as_string()).find("body does not contain"),
              std::string::npos);
    EXPECT_EQ(wrong.load(), 0);
    // The liar only ever saw the gate's own requests.
    for (const auto& req : liar.requests()) {
        EXPECT_TRUE(req.target == "/health" || req.target == "/api/v1/health") << req.target;
    }
}

TEST(GateTest, MinHealthyCountsUpstreams) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = app_config(blue.port(), green.port());
    cfg.colors[index(Color::Green)].upstreams.push_back({"127.0.0.1", dead_port()});
    RunningProxy all(cfg);  // min_healthy: all -> 1 of 2 is not enough
    auto r =
        admin_call(all.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})", kToken);
    EXPECT_EQ(r.status, 412);
    EXPECT_EQ(parse(r.body).at("gates").at("health").at("healthy").to_number<int>(), 1);
    EXPECT_EQ(parse(r.body).at("gates").at("health").at("required").to_number<int>(), 2);
}

TEST(GateTest, TwoConcurrentSwitchesOneWinsOneGets409) {
    std::promise<void> release;
    auto released = release.get_future().share();
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream slow([released](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->target == "/health") {
                released.wait();  // holds the first switch inside its health gate
            }
            s.send(http_response(200, R"({"status":"ok"})"));
        }
    });
    RunningProxy proxy(app_config(blue.port(), slow.port()));
    const auto port = proxy.server->admin_port();
    auto first = std::async(std::launch::async, [&] {
        return admin_call(port, "POST", "/v1/switch", R"({"to":"green"})", kToken);
    });
    ASSERT_TRUE(eventually([&] { return slow.request_count() >= 1; }));
    auto second = admin_call(port, "POST", "/v1/switch", R"({"to":"green"})", kToken);
    EXPECT_EQ(second.status, 409);
    EXPECT_EQ(parse(admin_call(port, "GET", "/v1/status", "", kToken).body).at("state"),
              "switching");
    release.set_value();
    EXPECT_EQ(first.get().status, 200);
}

TEST(HealthCheckTest, AnUnhealthyUpstreamLeavesTheRotationAndComesBack) {
    std::atomic<bool> sick{true};
    ScriptedUpstream good(ScriptedUpstream::app("good"));
    ScriptedUpstream flaky([&sick](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            const bool health = req->target == "/health";
            s.send(http_response(health && sick ? 503 : 200, health ? "" : "flaky"));
        }
    });
    auto cfg = app_config(good.port(), dead_port());
    cfg.colors[index(Color::Blue)].upstreams.push_back({"127.0.0.1", flaky.port()});
    cfg.health.interval = std::chrono::milliseconds(50);
    cfg.health.unhealthy_threshold = 2;
    cfg.health.healthy_threshold = 1;
    RunningProxy proxy(std::move(cfg));
    const auto port = proxy.server->admin_port();
    auto flaky_healthy = [&] {
        auto s = parse(admin_call(port, "GET", "/v1/status", "", kToken).body);
        return s.at("colors").at("blue").at("upstreams").at(1).at("healthy").as_bool();
    };
    ASSERT_TRUE(eventually([&] { return !flaky_healthy(); }));
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(color_of_next_request(proxy.port()), "good");
    }
    EXPECT_NE(admin_call(port, "GET", "/metrics")
                  .body.find("bgswitch_upstream_healthy{color=\"blue\",upstream=\"127.0.0.1:" +
                             std::to_string(flaky.port()) + "\"} 0"),
              std::string::npos);
    sick = false;
    ASSERT_TRUE(eventually([&] { return flaky_healthy(); }));
    std::set<std::string> seen;
    for (int i = 0; i < 6; ++i) {
        seen.insert(color_of_next_request(proxy.port()));
    }
    EXPECT_EQ(seen, (std::set<std::string>{"good", "flaky"}));
}

// --- durable state ---------------------------------------------------------

TEST(StateTest, WrittenBeforeTheCallReturnsAndKeptAcrossRestarts) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = app_config(blue.port(), green.port());
    const auto state_path = cfg.state_file;
    {
        RunningProxy proxy(cfg);
        ASSERT_EQ(admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})",
                             kToken)
                      .status,
                  200);
        std::ifstream in(state_path);
        std::stringstream text;
        text << in.rdbuf();
        auto saved = json::parse(text.str()).as_object();
        EXPECT_EQ(saved.at("active"), "green");
        EXPECT_EQ(saved.at("version").to_number<int>(), 2);
        EXPECT_FALSE(std::filesystem::exists(state_path + ".tmp"));
    }
    RunningProxy restarted(cfg);  // the config still says blue; the state file wins
    EXPECT_EQ(color_of_next_request(restarted.port()), "green");
    auto s =
        parse(admin_call(restarted.server->admin_port(), "GET", "/v1/status", "", kToken).body);
    EXPECT_EQ(s.at("version").to_number<int>(), 2);
    EXPECT_EQ(s.at("previous"), "blue");
}

TEST(StateTest, CorruptStateFileRefusesToStart) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    auto cfg = app_config(blue.port(), dead_port());
    std::ofstream(cfg.state_file) << "{\"active\": \"gre";
    try {
        Server server(cfg);
        FAIL() << "started with a corrupt state file";
    } catch (const StartupError& e) {
        EXPECT_NE(std::string(e.what()).find(cfg.state_file), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("corrupt"), std::string::npos) << e.what();
    }
    std::ofstream(cfg.state_file) << R"({"active":"purple","version":1})";
    EXPECT_THROW(Server{cfg}, StartupError);
}

TEST(StateTest, UnwritableStateFailsTheSwitchAndTrafficStays) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = app_config(blue.port(), green.port());
    const auto dir = ::testing::TempDir() + "/bgswitch-unwritable-" + std::to_string(::getpid());
    std::filesystem::remove_all(dir);
    cfg.state_file = dir + "/state.json";
    RunningProxy proxy(cfg);
    // The directory turns into a plain file: nothing can be written under it,
    // not even by root.
    std::filesystem::remove_all(dir);
    std::ofstream(dir) << "not a directory";
    auto r =
        admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})", kToken);
    EXPECT_EQ(r.status, 500);
    EXPECT_NE(parse(r.body).at("error").as_string().find("state file"), std::string::npos);
    EXPECT_EQ(color_of_next_request(proxy.port()), "blue");
    auto s = parse(admin_call(proxy.server->admin_port(), "GET", "/v1/status", "", kToken).body);
    EXPECT_EQ(s.at("active"), "blue");
    EXPECT_EQ(s.at("version").to_number<int>(), 1);
    std::filesystem::remove(dir);
}

// SIGTERM while a switch's gates run: the caller gets 503 at once, not an
// empty reply when the control thread stops, and nothing is committed.
TEST(ShutdownTest, ASwitchWhoseGatesRunIsAnswered503AndChangesNothing) {
    std::promise<void> release;
    auto released = release.get_future().share();
    std::atomic<bool> smoke_seen{false};
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream slow([&](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->target == "/api/v1/health") {
                smoke_seen = true;
                released.wait();
            }
            s.send(http_response(200, R"({"status":"ok"})"));
        }
    });
    auto cfg = app_config(blue.port(), slow.port());
    const auto state_path = cfg.state_file;
    RunningProxy proxy(cfg);
    const auto port = proxy.server->admin_port();
    auto answer = std::async(std::launch::async, [port] {
        return admin_call(port, "POST", "/v1/switch", R"({"to":"green"})", kToken);
    });
    ASSERT_TRUE(eventually([&] { return smoke_seen.load(); }));
    proxy.server->shutdown();
    std::thread waiter([&] { proxy.server->wait(); });
    const bool answered = answer.wait_for(10s) == std::future_status::ready;
    release.set_value();
    waiter.join();
    ASSERT_TRUE(answered);
    const auto r = answer.get();
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(parse(r.body).at("error"), "shutting down; nothing was changed");
    std::ifstream in(state_path);
    const std::string saved((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(saved.find(R"("active":"blue")"), std::string::npos) << saved;
}

// A name that does not resolve at start (the green containers are not up
// yet) does not stop bgswitch: green has no address, its name is tried again
// every resolver.refresh, and once it resolves and passes its probes a switch
// to it works.
TEST(NameTest, AnUpstreamWhoseNameResolvesLateJoinsAfterItsProbes) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = app_config(blue.port(), green.port());
    cfg.colors[index(Color::Green)].upstreams = {{"app-green.test", green.port()}};
    cfg.health.interval = std::chrono::milliseconds(50);
    cfg.health.healthy_threshold = 2;
    cfg.resolver.refresh = std::chrono::milliseconds(50);
    std::atomic<bool> green_up{false};
    std::atomic<int> lookups{0};
    RunningProxy proxy(cfg, [&](const std::string& host) -> std::vector<std::string> {
        if (host != "app-green.test") {
            return {};
        }
        ++lookups;
        return green_up ? std::vector<std::string>{"127.0.0.1"} : std::vector<std::string>{};
    });
    const auto port = proxy.server->admin_port();
    EXPECT_EQ(color_of_next_request(proxy.port()), "blue");
    auto green_healthy = [&] {
        auto s = parse(admin_call(port, "GET", "/v1/status", "", kToken).body);
        const auto& ups = s.at("colors").at("green").at("upstreams").as_array();
        return !ups.empty() && ups.at(0).at("healthy").as_bool();
    };
    EXPECT_FALSE(green_healthy());
    ASSERT_TRUE(eventually([&] { return lookups.load() >= 3; }));  // tried again
    auto refused = admin_call(port, "POST", "/v1/switch", R"({"to":"green"})", kToken);
    EXPECT_EQ(refused.status, 412);
    EXPECT_NE(refused.body.find("no upstream address"), std::string::npos) << refused.body;

    green_up = true;
    ASSERT_TRUE(eventually(green_healthy));
    EXPECT_EQ(admin_call(port, "POST", "/v1/switch", R"({"to":"green"})", kToken).status, 200);
    EXPECT_EQ(color_of_next_request(proxy.port()), "green");
}

}  // namespace
}  // namespace bgs::test
