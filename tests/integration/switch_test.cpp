// SPEC sections 4 and 5 under real traffic: atomic switches under load, the
// drain window for WebSockets and streams (1001, terminating chunk, spread),
// rollback during a drain, pooled connections, and shutdown.
#include "proxy/demo/demo_upstream.hpp"
#include "proxy/worker/worker.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"
#include "tests/support/ws_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json.hpp>

#include <future>
#include <mutex>
#include <thread>

namespace bgs::test {
namespace {

using Clock = std::chrono::steady_clock;
const std::string kToken = "switch-token";

config::Config switch_config(std::uint16_t blue, std::uint16_t green, Duration drain) {
    auto cfg = test_config({blue}, {green});
    cfg.admin.token = kToken;
    cfg.switching.drain_timeout = drain;
    return cfg;
}

int switch_to(RunningProxy& p, const std::string& color, const std::string& extra = "") {
    return admin_call(p.server->admin_port(), "POST", "/v1/switch",
                      R"({"to":")" + color + "\"" + extra + "}", kToken)
        .status;
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// With min_healthy below all, a color may go live with an upstream that
// failed its gate probe (here: it accepts and never answers). The fresh probe
// counts for the router at once: no request waits on that upstream before
// the checker would have noticed.
TEST(SwitchTest, AnUpstreamThatFailedTheGateTakesNoTrafficAfterTheSwitch) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    ScriptedUpstream stalled([](Socket& s, ScriptedUpstream&) { (void)s.read_to_eof(30s); });
    auto cfg = test_config({blue.port()}, {green.port(), stalled.port()});
    cfg.admin.token = kToken;
    cfg.switching.min_healthy = 1;
    cfg.health.interval = std::chrono::seconds(60);  // the checker stays out of it
    cfg.health.timeout = std::chrono::milliseconds(300);
    cfg.timeouts.upstream_response = std::chrono::seconds(20);
    RunningProxy proxy(cfg);
    ASSERT_EQ(switch_to(proxy, "green"), 200);
    for (int i = 0; i < 10; ++i) {
        auto c = Socket::connect(proxy.port());
        c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        const auto res = read_response(c, 5s);
        EXPECT_EQ(res.status, 200);
        EXPECT_EQ(res.body, "green");
    }
}

TEST(SwitchTest, FlippingUnderLoadFailsNoRequestAndMovesEveryLaterOne) {
    demo::DemoUpstream blue(Color::Blue, "127.0.0.1", 0);
    demo::DemoUpstream green(Color::Green, "127.0.0.1", 0);
    RunningProxy proxy(switch_config(blue.port(), green.port(), std::chrono::milliseconds(200)));

    struct Sample {
        Clock::time_point sent;
        Clock::time_point answered;
        std::string color;
    };
    struct Flip {
        Clock::time_point called, returned;
        std::string color;
    };
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::atomic<int> completed{0};
    std::mutex mutex;
    std::vector<Sample> samples;
    std::vector<std::thread> clients;
    for (int i = 0; i < 4; ++i) {
        clients.emplace_back([&] {
            std::vector<Sample> mine;
            try {
                auto c = Socket::connect(proxy.port());  // one keep-alive connection each
                while (!stop) {
                    const auto sent = Clock::now();
                    c.send("GET /color HTTP/1.1\r\nHost: a\r\n\r\n");
                    auto res = read_response(c);
                    if (res.status != 200) {
                        ++failures;
                    }
                    mine.push_back({sent, Clock::now(), res.body.substr(0, res.body.find('\n'))});
                    ++completed;
                }
            } catch (const std::exception&) {
                ++failures;
            }
            std::lock_guard lock(mutex);
            samples.insert(samples.end(), mine.begin(), mine.end());
        });
    }
    std::vector<Flip> flips;
    std::string color = "blue";
    for (int i = 0; i < 20; ++i) {
        color = color == "blue" ? "green" : "blue";
        Flip f{Clock::now(), {}, color};
        ASSERT_EQ(switch_to(proxy, color), 200) << "flip " << i;
        f.returned = Clock::now();
        flips.push_back(f);
        // Let every client get a few requests in under this color before the next flip.
        const int mark = completed.load();
        ASSERT_TRUE(eventually([&] { return completed.load() >= mark + 20; }));
    }
    stop = true;
    for (auto& t : clients) {
        t.join();
    }
    EXPECT_EQ(failures.load(), 0);
    ASSERT_GT(samples.size(), 100u);
    // A request sent after a switch returned, and answered before the next one
    // began, must be answered by that switch's color. (One that overlaps the
    // next admin call may be routed after that call published, legitimately.)
    int checked = 0;
    for (const auto& s : samples) {
        for (std::size_t k = 0; k < flips.size(); ++k) {
            const bool after = s.sent >= flips[k].returned;
            const bool before_next = k + 1 == flips.size() || s.answered < flips[k + 1].called;
            if (after && before_next) {
                EXPECT_EQ(s.color, flips[k].color);
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 200);
}

// A quiet WebSocket parks (no relay runs; bgswitch_idle_tunnels counts it)
// and resumes when either side sends; the frame boundary it tracks survives
// the parking, so a drain that comes while the client is halfway through a
// frame lets that frame finish before the upstream gets its 1001.
TEST(DrainTest, AParkedWebSocketResumesAndDrainsAtAFrameBoundary) {
    WsUpstreamLog blue_log, green_log;
    ScriptedUpstream blue(ws_app("blue", blue_log));
    ScriptedUpstream green(ws_app("green", green_log));
    RunningProxy proxy(switch_config(blue.port(), green.port(), std::chrono::seconds(1)));
    auto idle_tunnels = [&] { return metric_value(proxy, "bgswitch_idle_tunnels"); };
    auto ws = open_websocket(proxy.port());
    ASSERT_TRUE(eventually([&] { return idle_tunnels() == 1; })) << idle_tunnels();
    ws.send(client_text("after a park"));
    EXPECT_EQ(read_frame(ws).payload, "blue:after a park");
    ASSERT_TRUE(eventually([&] { return idle_tunnels() == 1; })) << idle_tunnels();

    // Half a frame, then quiet: the tunnel parks inside the frame.
    const auto frame = client_text("split across a park");
    ws.send(frame.substr(0, 9));
    ASSERT_TRUE(eventually([&] { return idle_tunnels() == 1; })) << idle_tunnels();
    ASSERT_EQ(switch_to(proxy, "green"), 200);
    // The drain window ends: the client gets its 1001 at once (its direction
    // is at a boundary); the upstream's waits for the rest of the frame.
    EXPECT_EQ(read_frame(ws, 5s).close_code(), 1001);
    ws.send(frame.substr(9));
    EXPECT_TRUE(eventually([&] { return blue_log.close_code.load() == 1001; }));
    EXPECT_EQ(idle_tunnels(), 0);
}

TEST(DrainTest, WebSocketKeepsWorkingThenGetsGoingAwayOnBothSides) {
    WsUpstreamLog blue_log, green_log;
    ScriptedUpstream blue(ws_app("blue", blue_log));
    ScriptedUpstream green(ws_app("green", green_log));
    RunningProxy proxy(switch_config(blue.port(), green.port(), std::chrono::seconds(1)));
    auto ws = open_websocket(proxy.port());
    ws.send(client_text("before"));
    EXPECT_EQ(read_frame(ws).payload, "blue:before");

    const auto switched = Clock::now();
    ASSERT_EQ(switch_to(proxy, "green"), 200);
    ws.send(client_text("during"));  // still the old color, still working
    EXPECT_EQ(read_frame(ws).payload, "blue:during");
    auto status = boost::json::parse(
        admin_call(proxy.server->admin_port(), "GET", "/v1/status", "", kToken).body);
    EXPECT_EQ(status.at("colors").at("blue").at("upgraded").to_number<int>(), 1);

    auto close = read_frame(ws, 5s);
    const double at = seconds_since(switched);
    EXPECT_EQ(close.opcode, ws::kClose);
    EXPECT_EQ(close.close_code(), 1001);
    EXPECT_FALSE(close.masked);
    EXPECT_GE(at, 0.9) << "closed before the drain window ended";
    EXPECT_LT(at, 3.0);
    EXPECT_TRUE(ws.closed_within(5s));
    EXPECT_TRUE(eventually([&] { return blue_log.close_code.load() == 1001; }));
    EXPECT_TRUE(blue_log.close_masked.load());  // the proxy is the upstream's client

    auto again = open_websocket(proxy.port());  // a reconnect lands on green
    again.send(client_text("after"));
    EXPECT_EQ(read_frame(again).payload, "green:after");
    auto m = admin_call(proxy.server->admin_port(), "GET", "/metrics").body;
    EXPECT_NE(m.find("bgswitch_drain_closed_total{kind=\"websocket\"} 1"), std::string::npos);
}

// A stop can reach a tunnel at any moment of its park cycle: while a run
// is ending to park, as a read's quiet deadline passes, while it is parked.
// WebSockets talking at paces around the park delay (kQuietAfter), over
// several drains: every one ends with Close 1001, none is cut.
TEST(DrainTest, EveryWebSocketStoppedAroundItsParkGetsGoingAway) {
    demo::DemoUpstream blue(Color::Blue, "127.0.0.1", 0);
    demo::DemoUpstream green(Color::Green, "127.0.0.1", 0);
    auto cfg = switch_config(blue.port(), green.port(), std::chrono::milliseconds(400));
    cfg.switching.close_spread = std::chrono::milliseconds(400);
    RunningProxy proxy(std::move(cfg));
    constexpr int kSockets = 24;
    constexpr int kRounds = 4;
    std::atomic<int> going_away{0};
    std::atomic<int> cut{0};
    const char* colors[] = {"green", "blue"};
    for (int round = 0; round < kRounds; ++round) {
        std::vector<Socket> sockets;
        for (int i = 0; i < kSockets; ++i) {
            sockets.push_back(open_websocket(proxy.port()));
        }
        std::vector<std::thread> clients;
        for (int i = 0; i < kSockets; ++i) {
            // Paces from 80 to 126 ms: the stop lands before, at and after
            // each one's park.
            clients.emplace_back([&, i, pace = std::chrono::milliseconds(80 + 2 * i)] {
                auto& s = sockets[static_cast<std::size_t>(i)];
                try {
                    for (;;) {
                        s.send(client_text("tick"));
                        auto f = read_frame(s, 5s);
                        if (f.opcode == ws::kText) {
                            try {
                                f = read_frame(s, pace);  // the pace, or the Close
                            } catch (const Timeout&) {
                                continue;
                            }
                        }
                        (f.close_code() == 1001 ? going_away : cut).fetch_add(1);
                        return;
                    }
                } catch (const std::exception&) {
                    cut.fetch_add(1);
                }
            });
        }
        ASSERT_EQ(switch_to(proxy, colors[round % 2]), 200);
        for (auto& c : clients) {
            c.join();
        }
    }
    EXPECT_EQ(cut.load(), 0);
    EXPECT_EQ(going_away.load(), kSockets * kRounds);
}

TEST(DrainTest, SseStreamEndsWithItsTerminatingChunkAtTheDeadline) {
    demo::DemoUpstream blue(Color::Blue, "127.0.0.1", 0, std::chrono::milliseconds(50));
    demo::DemoUpstream green(Color::Green, "127.0.0.1", 0);
    RunningProxy proxy(switch_config(blue.port(), green.port(), std::chrono::seconds(1)));
    auto c = Socket::connect(proxy.port());
    c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
    c.read_until("\r\n\r\n");
    c.read_until("\n\n");
    const auto switched = Clock::now();
    ASSERT_EQ(switch_to(proxy, "green"), 200);
    std::string rest = c.read_until("\r\n0\r\n\r\n", 5s);
    const double at = seconds_since(switched);
    EXPECT_GE(at, 0.9);
    EXPECT_LT(at, 3.0);
    // Events kept flowing during the window.
    std::size_t events = 0;
    for (auto pos = rest.find("data:"); pos != std::string::npos;
         pos = rest.find("data:", pos + 1)) {
        ++events;
    }
    EXPECT_GE(events, 5u);
    EXPECT_TRUE(c.closed_within(3s));
}

TEST(DrainTest, CloseSpreadSpreadsTheClosesOverTheEndOfTheWindow) {
    WsUpstreamLog log, unused;
    ScriptedUpstream blue(ws_app("blue", log));
    ScriptedUpstream green(ws_app("green", unused));
    auto cfg = switch_config(blue.port(), green.port(), std::chrono::seconds(2));
    cfg.switching.close_spread = std::chrono::milliseconds(1500);
    RunningProxy proxy(std::move(cfg));
    std::vector<Socket> sockets;
    for (int i = 0; i < 6; ++i) {
        sockets.push_back(open_websocket(proxy.port()));
    }
    const auto switched = Clock::now();
    ASSERT_EQ(switch_to(proxy, "green"), 200);
    std::vector<std::future<double>> closes;
    for (auto& s : sockets) {
        closes.push_back(std::async(std::launch::async, [&s, switched] {
            auto f = read_frame(s, 6s);
            return f.close_code() == 1001 ? seconds_since(switched) : -1.0;
        }));
    }
    std::vector<double> times;
    for (auto& f : closes) {
        times.push_back(f.get());
    }
    std::sort(times.begin(), times.end());
    EXPECT_GE(times.front(), 0.4) << "the spread starts 1.5s before the 2s deadline";
    EXPECT_LE(times.back(), 3.0);
    EXPECT_GE(times.back() - times.front(), 0.8) << "closes were not spread";
}

TEST(DrainTest, RollbackDuringTheDrainKeepsTheConnections) {
    WsUpstreamLog log, unused;
    ScriptedUpstream blue(ws_app("blue", log));
    ScriptedUpstream green(ws_app("green", unused));
    RunningProxy proxy(switch_config(blue.port(), green.port(), std::chrono::milliseconds(800)));
    auto ws = open_websocket(proxy.port());
    ASSERT_EQ(switch_to(proxy, "green"), 200);
    ASSERT_EQ(admin_call(proxy.server->admin_port(), "POST", "/v1/rollback", "", kToken).status,
              200);
    // Well past the old deadline, the WebSocket on blue still works.
    EXPECT_THROW(read_frame(ws, 1500ms), Timeout);
    ws.send(client_text("still here"));
    EXPECT_EQ(read_frame(ws).payload, "blue:still here");
    EXPECT_EQ(log.close_code.load(), 0);
}

TEST(DrainTest, InFlightRequestsOnTheOldColorComplete) {
    std::promise<void> release;
    auto released = release.get_future().share();
    ScriptedUpstream blue([released](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->target == "/slow") {
                released.wait();
            }
            s.send(http_response(200, req->target == "/slow" ? "slow blue" : R"({"status":"ok"})"));
        }
    });
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(switch_config(blue.port(), green.port(), Duration{0}));
    auto c = Socket::connect(proxy.port());
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_TRUE(eventually([&] { return blue.request_count() == 1; }));
    ASSERT_EQ(switch_to(proxy, "green"), 200);  // drain_timeout 0
    release.set_value();
    auto res = read_response(c);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "slow blue");
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");  // same connection, next request: green
    EXPECT_EQ(read_response(c).body, "green");
}

TEST(DrainTest, IdlePooledConnectionsToTheOldColorAreClosed) {
    std::atomic<int> ended{0};
    ScriptedUpstream blue([&ended](Socket& s, ScriptedUpstream& u) {
        auto app = ScriptedUpstream::app("blue");
        app(s, u);
        ++ended;
    });
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(switch_config(blue.port(), green.port(), std::chrono::seconds(30)));
    auto c = Socket::connect(proxy.port());
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(read_response(c).body, "blue");  // leaves a pooled connection to blue
    const int before = ended.load();
    ASSERT_EQ(switch_to(proxy, "green"), 200);
    EXPECT_TRUE(eventually([&] { return ended.load() > before; }, 3s));
}

TEST(ShutdownTest, WebSocketsGetGoingAwayAndTheServerStops) {
    WsUpstreamLog log, unused;
    ScriptedUpstream blue(ws_app("blue", log));
    ScriptedUpstream green(ws_app("green", unused));
    RunningProxy proxy(switch_config(blue.port(), green.port(), std::chrono::seconds(30)));
    auto ws = open_websocket(proxy.port());
    ws.send(client_text("hi"));
    ASSERT_EQ(read_frame(ws).payload, "blue:hi");
    const auto start = Clock::now();
    proxy.server->shutdown();
    auto close = read_frame(ws, 5s);
    EXPECT_EQ(close.close_code(), 1001);
    EXPECT_LT(seconds_since(start), 2.0);
    proxy.server->wait();
    EXPECT_TRUE(eventually([&] { return log.close_code.load() == 1001; }));
    // Counted as what it was: a shutdown, not a drain.
    const auto& m = proxy.server->shared().metrics;
    EXPECT_EQ(m.ended_count(metrics::EndReason::Shutdown, metrics::DrainKind::WebSocket), 1u);
    EXPECT_EQ(m.ended_count(metrics::EndReason::Drain, metrics::DrainKind::WebSocket), 0u);
}

TEST(ShutdownTest, CloseSpreadSpreadsTheClosesOfAShutdown) {
    WsUpstreamLog log, unused;
    ScriptedUpstream blue(ws_app("blue", log));
    ScriptedUpstream green(ws_app("green", unused));
    auto cfg = switch_config(blue.port(), green.port(), std::chrono::seconds(30));
    cfg.switching.close_spread = std::chrono::seconds(1);
    RunningProxy proxy(cfg);
    std::vector<Socket> sockets;
    for (int i = 0; i < 4; ++i) {
        sockets.push_back(open_websocket(proxy.port()));
        sockets.back().send(client_text("hi"));
        ASSERT_EQ(read_frame(sockets.back()).payload, "blue:hi");
    }
    const auto start = Clock::now();
    proxy.server->shutdown();
    std::vector<double> at(sockets.size());
    std::vector<int> codes(sockets.size());
    std::vector<std::thread> readers;
    for (std::size_t i = 0; i < sockets.size(); ++i) {
        readers.emplace_back([&, i] {
            codes[i] = read_frame(sockets[i], 5s).close_code();
            at[i] = seconds_since(start);
        });
    }
    for (auto& t : readers) {
        t.join();
    }
    for (int code : codes) {
        EXPECT_EQ(code, 1001);
    }
    std::sort(at.begin(), at.end());
    EXPECT_LT(at.front(), 0.5);
    EXPECT_GT(at.back() - at.front(), 0.4) << "closed over the spread, not at once";
    EXPECT_LT(at.back(), 1.8);
    proxy.server->wait();
    const auto& m = proxy.server->shared().metrics;
    EXPECT_EQ(m.ended_count(metrics::EndReason::Shutdown, metrics::DrainKind::WebSocket), 4u);
    EXPECT_EQ(m.ended_count(metrics::EndReason::Drain, metrics::DrainKind::WebSocket), 0u);
}

}  // namespace
}  // namespace bgs::test
