// The bgswitch binary as users run it: exit codes, check-config's report,
// `run` with SIGTERM, and `demo` serving its page, SSE stream and WebSocket.
#include "proxy/http/ws_frame.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>

#include <array>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <regex>

namespace bgs::test {
namespace {

Child spawn(const std::vector<std::string>& args) {
    return spawn_program(BGSWITCH_BINARY, args);
}

// Runs to completion; returns {exit code, combined output}.
std::pair<int, std::string> run(const std::vector<std::string>& args) {
    auto c = spawn(args);
    auto out = c.output.read_to_eof(10s);
    return {c.wait(), out};
}

TEST(CliTest, VersionAndHelp) {
    auto [code, out] = run({"version"});
    EXPECT_EQ(code, 0);
    EXPECT_EQ(out.rfind("bgswitch ", 0), 0u) << out;
    auto [vcode, vout] = run({"--version"});
    EXPECT_EQ(vcode, 0);
    EXPECT_EQ(vout, out);
    auto [hcode, help] = run({"--help"});
    EXPECT_EQ(hcode, 0);
    EXPECT_NE(help.find("check-config"), std::string::npos);
    auto [rcode, rhelp] = run({"run", "--help"});
    EXPECT_EQ(rcode, 0);
    EXPECT_NE(rhelp.find("--config"), std::string::npos);
}

TEST(CliTest, UsageErrorsExitTwo) {
    EXPECT_EQ(run({"frobnicate"}).first, 2);
    EXPECT_EQ(run({}).first, 2);
    EXPECT_EQ(run({"run"}).first, 2);  // --config is required
}

TEST(CliTest, CheckConfigAcceptsTheCommentedExample) {
    ::setenv("BGSWITCH_ADMIN_TOKEN", "example-token", 1);
    auto [code, out] =
        run({"check-config", std::string(BGSWITCH_SOURCE_DIR) + "/configs/bgswitch.yaml"});
    ::unsetenv("BGSWITCH_ADMIN_TOKEN");
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("is valid"), std::string::npos);
}

TEST(CliTest, CheckConfigReportsEveryProblemAndExitsOne) {
    const auto path = write_file("bad.yaml", R"(
listen: [{address: "127.0.0.1:8080"}]
colors:
  blue: {upstreams: ["127.0.0.1:9001"]}
  green: {upstreams: ["127.0.0.1:99999"]}
timeouts: {idel: 5s}
admin: {token: "${BGSWITCH_TEST_UNSET_VARIABLE}"}
)");
    auto [code, out] = run({"check-config", path});
    EXPECT_EQ(code, 1);
    EXPECT_NE(out.find("colors.green.upstreams[0]: \"127.0.0.1:99999\": port out of range"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("timeouts.idel: unknown key"), std::string::npos) << out;
    EXPECT_NE(out.find("admin.token: environment variable BGSWITCH_TEST_UNSET_VARIABLE is not set"),
              std::string::npos)
        << out;
    EXPECT_EQ(run({"check-config", "/nonexistent/bgswitch.yaml"}).first, 1);
}

TEST(CliTest, RunServesAndExitsZeroOnSigterm) {
    ScriptedUpstream up(ScriptedUpstream::respond_with("from upstream"));
    const auto port = dead_port();
    const auto state = path_for("run-state.json");
    auto config_text = [&](std::uint16_t listen) {
        return "listen: [{address: \"127.0.0.1:" + std::to_string(listen) +
               "\"}]\ncolors:\n  blue: {upstreams: [\"127.0.0.1:" + std::to_string(up.port()) +
               "\"]}\n  green: {upstreams: [\"127.0.0.1:" + std::to_string(dead_port()) +
               "\"]}\nlog: {access: off}\nadmin: {address: \"127.0.0.1:0\", token: t}\n"
               "state: {file: \"" +
               state + "\"}\n";
    };
    const auto path = write_file("run.yaml", config_text(port));
    auto child = spawn({"run", "--config", path});
    std::string body;
    auto served = [&] {
        try {
            auto c = Socket::connect(port);
            c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            body = read_response(c).body;
            return true;
        } catch (const std::exception&) {
            return false;
        }
    };
    ASSERT_TRUE(eventually(served, 10s));
    EXPECT_EQ(body, "from upstream");

    // The start-up log names the color served and where it came from, in UTC.
    const auto log = child.output.read_until("first start", 5s);
    EXPECT_NE(log.find("active color blue (from the configuration's active:, first start"),
              std::string::npos)
        << log;
    EXPECT_TRUE(
        std::regex_search(log, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info)")))
        << log;

    // SIGHUP (logrotate's habit, and nginx's) reloads and never stops it.
    ::kill(child.pid, SIGHUP);
    EXPECT_NE(child.output.read_until("nothing changed", 5s).find("reload (SIGHUP)"),
              std::string::npos);
    ASSERT_TRUE(served());

    // A second process on the same state file is refused and names the first.
    auto [code, second] =
        run({"run", "--config", write_file("run2.yaml", config_text(dead_port()))});
    EXPECT_EQ(code, 1) << second;
    EXPECT_NE(second.find("is in use by another bgswitch (pid " + std::to_string(child.pid) + ")"),
              std::string::npos)
        << second;

    ::kill(child.pid, SIGTERM);
    EXPECT_EQ(child.wait(), 0);

    // After a restart the color comes from the state file, and the lock was released.
    auto again = spawn({"run", "--config", path});
    EXPECT_NE(
        again.output.read_until("version 1)", 10s).find("active color blue (from the state file"),
        std::string::npos);
    ::kill(again.pid, SIGTERM);
    EXPECT_EQ(again.wait(), 0);
}

// A name that does not resolve is not a problem of the file, but check-config
// says so.
TEST(CliTest, CheckConfigWarnsAboutNamesThatDoNotResolve) {
    const auto path = write_file("names.yaml",
                                 "listen: [{address: \"127.0.0.1:8080\"}]\n"
                                 "admin: {token: t}\n"
                                 "colors:\n  blue: {upstreams: [\"localhost:9001\"]}\n"
                                 "  green: {upstreams: [\"app-green.invalid:8080\"]}\n");
    auto [code, out] = run({"check-config", path});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("warning: colors.green.upstreams[0]: \"app-green.invalid:8080\" does not "
                       "resolve now"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("colors.blue"), std::string::npos) << out;
}

TEST(CliTest, RunRefusesABrokenConfig) {
    const auto path = write_file("broken.yaml", "listen: nope\n");
    auto [code, out] = run({"run", "--config", path});
    EXPECT_EQ(code, 1);
    EXPECT_NE(out.find("listen: must be a list"), std::string::npos) << out;
}

TEST(CliTest, DemoServesBluePageEventsAndWebSocket) {
    const auto port = dead_port();
    auto child = spawn({"demo", "--listen", "127.0.0.1:" + std::to_string(port), "--admin",
                        "127.0.0.1:" + std::to_string(dead_port())});
    auto banner = child.output.read_until("Press Ctrl-C to stop.", 10s);
    EXPECT_NE(banner.find("admin token: "), std::string::npos);
    // The hints name a command that works from a shell: this build's binary is
    // not on the PATH, so its full path.
    const std::string binary = std::filesystem::canonical(BGSWITCH_BINARY).string();
    EXPECT_NE(banner.find("    " + binary + " status"), std::string::npos) << banner;

    auto page = Socket::connect(port);
    page.send("GET / HTTP/1.1\r\nHost: demo\r\n\r\n");
    auto res = read_response(page);
    EXPECT_EQ(res.status, 200);
    EXPECT_NE(res.body.find("<h1>blue</h1>"), std::string::npos);

    auto events = Socket::connect(port);
    events.send("GET /events HTTP/1.1\r\nHost: demo\r\n\r\n");
    EXPECT_NE(events.read_until("\r\n\r\n").find("text/event-stream"), std::string::npos);
    EXPECT_NE(events.read_until("\n\n").find("\"color\":\"blue\""), std::string::npos);

    auto ws = Socket::connect(port);
    ws.send(
        "GET /ws HTTP/1.1\r\nHost: demo\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    EXPECT_EQ(read_response(ws).status, 101);
    ws.send(ws::encode_frame(ws::kText, "ping?", true, std::array<std::uint8_t, 4>{1, 2, 3, 4}));
    EXPECT_NE(ws.read_exact(7).find("ping?"), std::string::npos);

    // An open SSE stream is in-flight work that shutdown would wait for.
    events.close();
    ::kill(child.pid, SIGINT);
    EXPECT_EQ(child.wait(), 0);
}

// Requests in a loop on a thread of their own until stopped (errors ignored:
// what the proxy answered is judged elsewhere).
class Traffic {
  public:
    explicit Traffic(std::function<void()> request)
        : thread_([this, request = std::move(request)] {
              while (!stop_) {
                  try {
                      request();
                  } catch (const std::exception&) {
                  }
              }
          }) {}
    ~Traffic() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
    }

  private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// `bgswitch run` with blue and green apps, a token from a file, and the admin
// endpoint on a port of its own.
struct RunningBinary {
    RunningBinary(std::uint16_t blue, std::uint16_t green, const std::string& state)
        : port(dead_port()), admin(dead_port()) {
        const auto token_file = write_file("token", "cli-token\n");
        config = write_file(
            "cli.yaml",
            "listen: [{address: \"127.0.0.1:" + std::to_string(port) + "\"}]\n" +
                "admin: {address: \"127.0.0.1:" + std::to_string(admin) + "\", token_file: \"" +
                token_file + "\"}\n" +
                "colors:\n  blue: {upstreams: [\"127.0.0.1:" + std::to_string(blue) +
                "\"]}\n  green: {upstreams: [\"127.0.0.1:" + std::to_string(green) + "\"]}\n" +
                "state: {file: \"" + state +
                "\"}\nswitch: {drain_timeout: 1s, auto_rollback: {window: 1s, min_requests: 20}}\n"
                "log: {access: off}\n");
        start();
    }
    void start() {
        child = spawn({"run", "--config", config});
        const bool up = eventually(
            [&] {
                try {
                    return admin_call(admin, "GET", "/healthz").status == 200;
                } catch (const std::exception&) {
                    return false;
                }
            },
            10s);
        if (!up) {
            throw std::runtime_error("bgswitch run did not start: " + child.output.read_some(1s));
        }
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(admin); }
    std::string color() const {
        auto c = Socket::connect(port);
        c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        return read_response(c).body;
    }

    std::uint16_t port;
    std::uint16_t admin;
    std::string config;
    Child child;
};

TEST(CliTest, ClientCommandsAndTheirExitCodes) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningBinary bgs(blue.port(), green.port(), path_for("cli-state.json"));
    const std::vector<std::string> auth{"--admin", bgs.url(), "--token", "cli-token"};
    auto with = [&](std::vector<std::string> args) {
        args.insert(args.end(), auth.begin(), auth.end());
        return run(args);
    };

    auto [s0, status] = with({"status"});
    EXPECT_EQ(s0, 0) << status;
    EXPECT_NE(status.find("active   blue (version 1"), std::string::npos) << status;
    EXPECT_NE(status.find("127.0.0.1:" + std::to_string(green.port())), std::string::npos);

    auto [d0, dry] = with({"switch", "green", "--dry-run"});
    EXPECT_EQ(d0, 0) << dry;
    EXPECT_NE(dry.find("dry run passed"), std::string::npos) << dry;
    EXPECT_EQ(bgs.color(), "blue");

    auto [w0, sw] = with({"switch", "green", "--reason", "cli deploy", "--drain-timeout", "2s"});
    EXPECT_EQ(w0, 0) << sw;
    EXPECT_NE(sw.find("health gate: 1 healthy, need 1"), std::string::npos) << sw;
    EXPECT_NE(sw.find("switched: blue -> green (version 2)"), std::string::npos) << sw;
    EXPECT_EQ(bgs.color(), "green");

    auto [a0, again] = with({"switch", "green"});
    EXPECT_EQ(a0, 0);
    EXPECT_NE(again.find("already active"), std::string::npos) << again;

    auto [v1, stale] = with({"switch", "blue", "--expect-version", "1"});
    EXPECT_EQ(v1, 1) << stale;
    EXPECT_NE(stale.find("version mismatch"), std::string::npos) << stale;

    auto [h0, hist] = with({"history"});
    EXPECT_EQ(h0, 0);
    EXPECT_NE(hist.find("cli deploy"), std::string::npos) << hist;
    EXPECT_NE(hist.find("dry_run_passed"), std::string::npos) << hist;

    auto [j0, json] = with({"status", "--json"});
    EXPECT_EQ(j0, 0);
    EXPECT_NE(json.find("\"active\":\"green\""), std::string::npos) << json;

    // A reason is anyone's text: the terminal gets it with its control
    // characters escaped (this one would clear the screen).
    auto [r0, rb] = with({"rollback", "--skip-smoke", "--reason", "oops\x1b[2J\r"});
    EXPECT_EQ(r0, 0) << rb;
    EXPECT_NE(rb.find("smoke gate: not run"), std::string::npos) << rb;
    EXPECT_EQ(bgs.color(), "blue");
    auto [h1, escaped] = with({"history"});
    EXPECT_EQ(h1, 0);
    EXPECT_NE(escaped.find("oops\\x1b[2J\\x0d"), std::string::npos) << escaped;
    EXPECT_EQ(escaped.find('\x1b'), std::string::npos);

    ::setenv("BGSWITCH_ADMIN_TOKEN", "cli-token", 1);
    EXPECT_EQ(run({"status", "--admin", bgs.url()}).first, 0);
    ::unsetenv("BGSWITCH_ADMIN_TOKEN");
    auto [t2, wrong] = run({"status", "--admin", bgs.url(), "--token", "nope"});
    EXPECT_EQ(t2, 2);
    EXPECT_NE(wrong.find("invalid bearer token"), std::string::npos) << wrong;
    auto [c2, unreachable] =
        run({"status", "--admin", "http://127.0.0.1:" + std::to_string(dead_port())});
    EXPECT_EQ(c2, 2);
    EXPECT_NE(unreachable.find("cannot reach"), std::string::npos) << unreachable;
    EXPECT_EQ(with({"switch", "purple"}).first, 2);
    EXPECT_EQ(run({"switch", "--help"}).first, 0);
}

// The deploy flow of a container world: green's address is set when its
// container is up, then traffic moves; the file is re-read with `reload`.
TEST(CliTest, UpstreamsAndReloadCommands) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningBinary bgs(blue.port(), dead_port(), path_for("ups-state.json"));
    const std::vector<std::string> auth{"--admin", bgs.url(), "--token", "cli-token"};
    auto with = [&](std::vector<std::string> args) {
        args.insert(args.end(), auth.begin(), auth.end());
        return run(args);
    };
    const auto green_address = "127.0.0.1:" + std::to_string(green.port());

    auto [l0, both] = with({"upstreams"});
    EXPECT_EQ(l0, 0) << both;
    EXPECT_NE(both.find("blue (config): 127.0.0.1:" + std::to_string(blue.port())),
              std::string::npos)
        << both;
    EXPECT_NE(both.find("green (config)"), std::string::npos) << both;

    auto [s0, set] =
        with({"upstreams", "set", "green", green_address, "--reason", "green v2 started"});
    EXPECT_EQ(s0, 0) << set;
    EXPECT_NE(set.find("upstreams of green set: " + green_address + " (version 2)"),
              std::string::npos)
        << set;
    auto [g0, one] = with({"upstreams", "green"});
    EXPECT_EQ(g0, 0) << one;
    EXPECT_NE(one.find("green (api): " + green_address), std::string::npos) << one;
    EXPECT_EQ(one.find("blue"), std::string::npos) << one;
    EXPECT_EQ(with({"switch", "green"}).first, 0);
    EXPECT_EQ(bgs.color(), "green");

    auto [b2, bad] = with({"upstreams", "set", "green", "no-port"});
    EXPECT_EQ(b2, 2) << bad;
    EXPECT_NE(bad.find("upstreams[0]: \"no-port\""), std::string::npos) << bad;
    auto [v1, stale] = with({"upstreams", "set", "green", green_address, "--expect-version", "1"});
    EXPECT_EQ(v1, 1) << stale;
    EXPECT_EQ(with({"upstreams", "purple"}).first, 2);

    auto [h0, hist] = with({"history"});
    EXPECT_NE(hist.find("set_upstreams"), std::string::npos) << hist;
    EXPECT_NE(hist.find("green v2 started"), std::string::npos) << hist;

    auto [r0, reloaded] = with({"reload"});
    EXPECT_EQ(r0, 0) << reloaded;
    EXPECT_NE(reloaded.find("reloaded; changed: (none)"), std::string::npos) << reloaded;
    std::ofstream(bgs.config, std::ios::app) << "timeouts: {idle: forever}\n";
    auto [r1, refused] = with({"reload"});
    EXPECT_EQ(r1, 1) << refused;
    EXPECT_NE(refused.find("timeouts.idle"), std::string::npos) << refused;
    EXPECT_EQ(bgs.color(), "green");
}

// `switch --observe D --wait` follows the observation: 0 when the new color
// held up, 1 when it was rolled back. BGSWITCH_ADMIN names the endpoint.
TEST(CliTest, SwitchWaitsForItsObservation) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream broken([](Socket& s, ScriptedUpstream& self) {
        while (auto req = self.next_request(s)) {
            const bool health = req->target == "/health";
            s.send(http_response(health ? 200 : 500, health ? "ok" : "broken"));
        }
    });
    RunningBinary bgs(blue.port(), broken.port(), path_for("observe-state.json"));
    ::setenv("BGSWITCH_ADMIN", bgs.url().c_str(), 1);
    const std::vector<std::string> token{"--token", "cli-token"};
    auto with = [&](std::vector<std::string> args) {
        args.insert(args.end(), token.begin(), token.end());
        return run(args);
    };
    Traffic traffic([&] { bgs.color(); });  // for the observation to judge
    auto [w1, rolled] = with({"switch", "green", "--observe", "20s", "--wait"});
    EXPECT_EQ(w1, 1) << rolled;
    EXPECT_NE(rolled.find("switched: blue -> green"), std::string::npos) << rolled;
    EXPECT_NE(rolled.find("observation ended: rolled_back"), std::string::npos) << rolled;
    EXPECT_EQ(bgs.color(), "blue");

    auto [w0, quiet] = with({"switch", "green", "--observe", "0s", "--wait"});
    EXPECT_EQ(w0, 0) << quiet;
    EXPECT_NE(quiet.find("no observation"), std::string::npos) << quiet;
    traffic.stop();
    ::unsetenv("BGSWITCH_ADMIN");
}

TEST(CliTest, CanaryStepsThroughItsShareAndEndsAFailingOne) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningBinary bgs(blue.port(), green.port(), path_for("canary-state.json"));
    const std::vector<std::string> auth{"--admin", bgs.url(), "--token", "cli-token"};
    auto with = [&](std::vector<std::string> args) {
        args.insert(args.end(), auth.begin(), auth.end());
        return run(args);
    };
    auto [c1, one] = with({"canary", "10"});  // no color: the idle one
    EXPECT_EQ(c1, 0) << one;
    EXPECT_NE(one.find("canary: 10% of new sessions to green"), std::string::npos) << one;
    auto [c2, st] = with({"status"});
    EXPECT_NE(st.find("canary   10% of new sessions to green"), std::string::npos) << st;
    auto [c3, ended] = with({"canary", "green", "0"});
    EXPECT_EQ(c3, 0) << ended;
    EXPECT_NE(ended.find("canary ended"), std::string::npos) << ended;
    auto [c4, usage] = with({"canary", "green"});
    EXPECT_EQ(c4, 2) << usage;
    auto [c5, on_active] = with({"canary", "blue", "10"});
    EXPECT_EQ(c5, 1) << on_active;
    auto [c5b, both] = with({"canary", "10", "--steps", "10,50"});
    EXPECT_EQ(c5b, 2) << both;

    Traffic traffic([&] { bgs.color(); });
    auto [c6, steps] = with({"canary", "--steps", "10,50,100", "--interval", "1s"});
    EXPECT_EQ(c6, 0) << steps;
    EXPECT_NE(steps.find("step 2: 50%"), std::string::npos) << steps;
    EXPECT_NE(steps.find("switched: blue -> green"), std::string::npos) << steps;
    traffic.stop();
    EXPECT_EQ(bgs.color(), "green");
    auto [c7, history] = with({"history"});
    EXPECT_NE(history.find("canary 50%"), std::string::npos) << history;
}

TEST(CliTest, ACanaryStepThatFailsIsEndedAndExitsOne) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream broken([](Socket& s, ScriptedUpstream& self) {
        while (auto req = self.next_request(s)) {
            const bool health = req->target == "/health";
            s.send(http_response(health ? 200 : 500, health ? "ok" : "broken"));
        }
    });
    RunningBinary bgs(blue.port(), broken.port(), path_for("canary-fail-state.json"));
    Traffic traffic([&] { bgs.color(); });
    auto [code, out] = run({"canary", "green", "--steps", "50,100", "--interval", "20s", "--admin",
                            bgs.url(), "--token", "cli-token"});
    traffic.stop();
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("observation ended: rolled_back"), std::string::npos) << out;
    EXPECT_EQ(bgs.color(), "blue");
    const auto status = admin_call(bgs.admin, "GET", "/v1/status", "", "cli-token").body;
    EXPECT_NE(status.find("\"canary\":null"), std::string::npos) << status;
}

TEST(CliTest, AFailedGateExitsOneAndTrafficStays) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    RunningBinary bgs(blue.port(), dead_port(), path_for("gate-state.json"));
    auto [code, out] = run({"switch", "green", "--admin", bgs.url(), "--token", "cli-token"});
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("FAIL"), std::string::npos) << out;
    EXPECT_NE(out.find("refused: gate failed"), std::string::npos) << out;
    EXPECT_EQ(bgs.color(), "blue");
}

TEST(CliTest, KillDashNineRightAfterASwitchKeepsTheColor) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    const auto state = path_for("kill-state.json");
    RunningBinary bgs(blue.port(), green.port(), state);
    ASSERT_EQ(admin_call(bgs.admin, "POST", "/v1/switch", R"({"to":"green"})", "cli-token").status,
              200);
    ::kill(bgs.child.pid, SIGKILL);
    EXPECT_EQ(bgs.child.wait(), 128 + SIGKILL);
    bgs.start();  // same config (active: blue) and state file
    EXPECT_EQ(bgs.color(), "green");
    auto status = admin_call(bgs.admin, "GET", "/v1/status", "", "cli-token").body;
    EXPECT_NE(status.find("\"version\":2"), std::string::npos) << status;
    ::kill(bgs.child.pid, SIGTERM);
    EXPECT_EQ(bgs.child.wait(), 0);
}

TEST(CliTest, RunRefusesACorruptStateFile) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    const auto state = path_for("corrupt-state.json");
    std::ofstream(state) << "{garbage";
    const auto path = write_file("corrupt.yaml",
                                 "listen: [{address: \"127.0.0.1:0\"}]\n"
                                 "admin: {address: \"127.0.0.1:0\", token: t}\n"
                                 "colors:\n  blue: {upstreams: [\"127.0.0.1:" +
                                     std::to_string(blue.port()) +
                                     "\"]}\n  green: {upstreams: [\"127.0.0.1:1\"]}\n"
                                     "state: {file: \"" +
                                     state + "\"}\n");
    auto [code, out] = run({"run", "--config", path});
    EXPECT_EQ(code, 1);
    EXPECT_NE(out.find(state), std::string::npos) << out;
    EXPECT_NE(out.find("corrupt"), std::string::npos) << out;
}

// --- systemd: the notify protocol and socket activation ------------------------

// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
TEST(SystemdTest, ReadyReloadingAndStoppingAreNotified) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    NotifySocket notify;
    const auto config =
        write_file("notify.yaml",
                   "listen: [{address: \"127.0.0.1:0\"}]\nadmin: {address: \"127.0.0.1:0\", "
                   "token: t}\ncolors:\n  blue: {upstreams: [\"127.0.0.1:" +
                       std::to_string(blue.port()) +
                       "\"]}\n  green: {upstreams: [\"127.0.0.1:1\"]}\nstate: {file: \"" +
                       path_for("notify-state.json") + "\"}\nlog: {access: off}\n");
    auto child = spawn_program(BGSWITCH_BINARY, {"run", "--config", config},
                               {"NOTIFY_SOCKET=" + notify.path});
    EXPECT_EQ(notify.next(), "READY=1\nSTATUS=serving");
    ::kill(child.pid, SIGHUP);
    EXPECT_EQ(notify.next().rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u);
    EXPECT_EQ(notify.next(), "READY=1\nSTATUS=reloaded");
    ::kill(child.pid, SIGTERM);
    EXPECT_EQ(notify.next(), "STOPPING=1");
    EXPECT_EQ(child.wait(), 0);
}

// systemd holds the listening socket (a .socket unit) and passes it as
// descriptor 3: bgswitch serves on it rather than binding the address itself.
TEST(SystemdTest, ServesOnTheSocketSystemdPassed) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(listener, 64), 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    const auto port = ntohs(addr.sin_port);
    const auto config = write_file(
        "activation.yaml", "listen: [{address: \"127.0.0.1:" + std::to_string(port) +
                               "\"}]\nadmin: {address: \"127.0.0.1:0\", token: t}\ncolors:\n  "
                               "blue: {upstreams: [\"127.0.0.1:" +
                               std::to_string(blue.port()) +
                               "\"]}\n  green: {upstreams: [\"127.0.0.1:1\"]}\nstate: {file: \"" +
                               path_for("activation-state.json") + "\"}\nlog: {access: off}\n");
    // The address is taken (by this process's socket, without SO_REUSEPORT):
    // only the passed descriptor can serve it.
    auto child =
        spawn_program(BGSWITCH_BINARY, {"run", "--config", config}, {"LISTEN_FDS=1"}, [listener] {
            ::dup2(listener, 3);
            ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        });
    ::close(listener);
    EXPECT_NE(child.output.read_until("on the socket passed to this process", 10s)
                  .find("listen 127.0.0.1:"),
              std::string::npos);
    auto c = Socket::connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(read_response(c).body, "blue");
    ::kill(child.pid, SIGTERM);
    EXPECT_EQ(child.wait(), 0);
}

TEST(SystemdTest, TheUnitsVerify) {
    if (::access("/usr/bin/systemd-analyze", X_OK) != 0) {
        GTEST_SKIP() << "systemd-analyze is not installed";
    }
    // verify wants the binary the unit names to exist; check a copy that
    // names this build's binary.
    const auto dir = path_for("units");
    std::filesystem::create_directories(dir);
    for (const char* unit : {"bgswitch.service", "bgswitch.socket"}) {
        std::ifstream in(std::string(BGSWITCH_SOURCE_DIR "/deploy/") + unit);
        std::string text((std::istreambuf_iterator<char>(in)), {});
        ASSERT_FALSE(text.empty()) << unit;
        for (std::size_t at; (at = text.find("/usr/local/bin/bgswitch")) != std::string::npos;) {
            text.replace(at, std::strlen("/usr/local/bin/bgswitch"), BGSWITCH_BINARY);
        }
        std::ofstream(dir + "/" + unit) << text;
    }
    auto c = spawn_program("/usr/bin/systemd-analyze",
                           {"verify", dir + "/bgswitch.service", dir + "/bgswitch.socket"});
    const auto out = c.output.read_to_eof(30s);
    EXPECT_EQ(c.wait(), 0) << out;
    EXPECT_EQ(out.find("bgswitch"), std::string::npos) << out;  // no warning about the units
    std::filesystem::remove_all(dir);
}

// --- the deploy script (deploy/bluegreen-deploy.sh) end to end ---------------
// Colors are demo-upstream processes that START_CMD and STOP_CMD start and
// stop, as `docker compose up -d app-$COLOR` would containers.
struct DeployBed {
    DeployBed() : dir(path_for("deploy-bed")), port(dead_port()), admin(dead_port()) {
        std::filesystem::create_directories(dir);
        ports[0] = dead_port();
        ports[1] = dead_port();
        for (int c = 0; c < 2; ++c) {
            std::ofstream(dir + "/" + (c == 0 ? "blue" : "green") + ".port") << ports[c];
        }
        config = write_file(
            "deploy.yaml",
            "listen: [{address: \"127.0.0.1:" + std::to_string(port) + "\"}]\n" +
                "admin: {address: \"127.0.0.1:" + std::to_string(admin) +
                "\", token: deploy-token}\n" +
                "colors:\n  blue: {upstreams: [\"127.0.0.1:" + std::to_string(ports[0]) +
                "\"]}\n  green: {upstreams: [\"127.0.0.1:" + std::to_string(ports[1]) + "\"]}\n" +
                "health: {interval: 200ms}\n" +
                "switch: {auto_rollback: {window: 1s, min_requests: 20}}\n" + "state: {file: \"" +
                path_for("deploy-state.json") + "\"}\nlog: {access: off}\n");
        EXPECT_EQ(start_cmd("blue", "v1", "ok"), 0);
        proxy = spawn({"run", "--config", config});
        const bool up = eventually(
            [&] {
                try {
                    return color() == "blue v1";
                } catch (const std::exception&) {
                    return false;
                }
            },
            10s);
        if (!up) {
            // What it said (a port taken, a start refused) is the diagnosis.
            ::kill(proxy.pid, SIGTERM);
            ADD_FAILURE() << "bgswitch run did not start: " << proxy.output.read_to_eof(3s);
        }
    }
    ~DeployBed() {
        for (const char* c : {"blue", "green"}) {
            if (auto pid = pid_of(c)) {
                ::kill(*pid, SIGTERM);
            }
        }
        std::filesystem::remove_all(dir);
    }

    std::string start_command() const {
        return "\"" BGSWITCH_BINARY
               "\" demo-upstream --color \"$COLOR\" --listen \"127.0.0.1:$(cat '" +
               dir + "'/$COLOR.port)\" --version \"$IMAGE_TAG\" --behaviour \"$BEHAVIOUR\" > '" +
               dir + "'/$COLOR.log 2>&1 & echo $! > '" + dir + "'/$COLOR.pid";
    }
    std::string stop_command() const { return "kill $(cat '" + dir + "'/$COLOR.pid)"; }
    int start_cmd(const std::string& color_name, const std::string& tag,
                  const std::string& behaviour) {
        auto c =
            spawn_program("/bin/sh", {"-c", start_command()},
                          {"COLOR=" + color_name, "IMAGE_TAG=" + tag, "BEHAVIOUR=" + behaviour});
        return c.wait();
    }
    std::optional<pid_t> pid_of(const std::string& color_name) const {
        std::ifstream in(dir + "/" + color_name + ".pid");
        pid_t pid = 0;
        if (in >> pid && pid > 0) {
            return pid;
        }
        return std::nullopt;
    }
    bool alive(const std::string& color_name) const {
        const auto pid = pid_of(color_name);
        return pid && ::kill(*pid, 0) == 0;
    }
    std::string color() const {
        auto c = Socket::connect(port);
        c.send("GET /color HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        auto body = read_response(c).body;
        return body.substr(0, body.find('\n'));
    }
    // Runs the deploy script; returns {exit code, output}.
    std::pair<int, std::string> deploy(std::vector<std::string> args, std::vector<std::string> env,
                                       Ms timeout = 30s) {
        env.insert(env.end(),
                   {"BGSWITCH=" BGSWITCH_BINARY,
                    "BGSWITCH_ADMIN=http://127.0.0.1:" + std::to_string(admin),
                    "BGSWITCH_ADMIN_TOKEN=deploy-token", "START_CMD=" + start_command(),
                    "STOP_CMD=" + stop_command(), "UPSTREAMS=127.0.0.1:" + std::to_string(ports[1]),
                    "DRAIN_SECONDS=1"});
        auto c = spawn_program(
            "/bin/bash",
            [&] {
                std::vector<std::string> a{BGSWITCH_SOURCE_DIR "/deploy/bluegreen-deploy.sh"};
                a.insert(a.end(), args.begin(), args.end());
                return a;
            }(),
            env);
        auto out = c.output.read_to_eof(timeout);
        return {c.wait(), out};
    }

    std::string dir;
    std::uint16_t port;
    std::uint16_t admin;
    std::array<std::uint16_t, 2> ports{};
    std::string config;
    Child proxy;
};

TEST(DeployScriptTest, AGoodVersionDeploysAndTheOldColorStopsAfterTheDrain) {
    DeployBed bed;
    auto [code, out] = bed.deploy({"--image-tag", "v2"}, {"BEHAVIOUR=ok", "OBSERVE_SECONDS=1"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("deploying v2: blue serves now, green takes the new version"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("Z deployed v2"), std::string::npos) << out;
    EXPECT_EQ(bed.color(), "green v2");
    EXPECT_TRUE(eventually([&] { return !bed.alive("blue"); })) << "blue was not stopped";
    EXPECT_TRUE(bed.alive("green"));
}

TEST(DeployScriptTest, AVersionThatNeverGetsHealthyIsRefusedAndTrafficStays) {
    DeployBed bed;
    auto [code, out] = bed.deploy({}, {"IMAGE_TAG=v2", "BEHAVIOUR=unhealthy", "HEALTH_TIMEOUT=2"});
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("green did not become healthy within 2 s: last check: health: 0 of 1"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("status 503"), std::string::npos) << out;
    EXPECT_EQ(bed.color(), "blue v1");
    EXPECT_TRUE(bed.alive("blue"));
}

TEST(DeployScriptTest, AVersionThatFailsUnderTrafficIsRolledBack) {
    DeployBed bed;
    Traffic traffic([&] { bed.color(); });
    auto [code, out] =
        bed.deploy({"--observe-seconds", "20"}, {"IMAGE_TAG=v2", "BEHAVIOUR=failing"});
    traffic.stop();
    EXPECT_EQ(code, 1) << out;
    EXPECT_NE(out.find("observation ended: rolled_back"), std::string::npos) << out;
    EXPECT_NE(out.find("was refused or rolled back; traffic is on blue"), std::string::npos) << out;
    EXPECT_EQ(bed.color(), "blue v1");
    EXPECT_TRUE(bed.alive("blue"));
}

TEST(DeployScriptTest, DryRunPrintsThePlanAndChangesNothing) {
    DeployBed bed;
    auto [code, out] = bed.deploy({"--dry-run"}, {"IMAGE_TAG=v2"});
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("plan (--dry-run: nothing is changed)"), std::string::npos) << out;
    EXPECT_NE(out.find("switch green --drain-timeout 1s --observe 180s --wait"), std::string::npos)
        << out;
    EXPECT_FALSE(bed.pid_of("green"));  // START_CMD did not run
    EXPECT_EQ(bed.color(), "blue v1");

    auto [usage, why] = bed.deploy({}, {});
    EXPECT_EQ(usage, 2) << why;
    EXPECT_NE(why.find("IMAGE_TAG is required"), std::string::npos) << why;
    EXPECT_EQ(bed.deploy({"--bogus", "1"}, {"IMAGE_TAG=v2"}).first, 2);
}

TEST(DeployScriptTest, ShellcheckFindsNothing) {
    if (::access("/usr/bin/shellcheck", X_OK) != 0) {
        GTEST_SKIP() << "shellcheck is not installed (deploy/setup.sh installs it)";
    }
    auto c =
        spawn_program("/usr/bin/shellcheck", {BGSWITCH_SOURCE_DIR "/deploy/bluegreen-deploy.sh"});
    const auto out = c.output.read_to_eof(30s);
    EXPECT_EQ(c.wait(), 0) << out;
}

}  // namespace
}  // namespace bgs::test
