// SPEC section 7 under real traffic: names re-resolved (each address an
// upstream of its own), upstream lists set through the API, and reloads of
// the configuration file, none of which may fail a request or drop a
// connection. Names are answered by the test through the resolver seam; one
// test uses a name the machine really resolves.
#include "proxy/config/loader.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"
#include "tests/support/ws_util.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <future>

namespace bgs::test {
namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;
const std::string kToken = "upstreams-token";

// Names the test controls; asked from the proxy's resolver thread.
struct FakeDns {
    std::mutex mutex;
    std::map<std::string, std::vector<std::string>> answers;
    std::atomic<int> lookups{0};

    void set(const std::string& name, std::vector<std::string> addresses) {
        std::lock_guard lock(mutex);
        answers[name] = std::move(addresses);
    }
    NameResolver resolver() {
        return [this](const std::string& host) {
            ++lookups;
            std::lock_guard lock(mutex);
            auto it = answers.find(host);
            return it == answers.end() ? std::vector<std::string>{} : it->second;
        };
    }
};

config::Config fast_config(const std::vector<std::uint16_t>& blue,
                           const std::vector<std::uint16_t>& green = {}) {
    auto cfg = test_config(blue, green);
    cfg.admin.token = kToken;
    cfg.health.interval = std::chrono::milliseconds(50);
    cfg.health.timeout = std::chrono::milliseconds(500);
    cfg.resolver.refresh = std::chrono::milliseconds(50);
    cfg.switching.drain_timeout = std::chrono::seconds(1);
    return cfg;
}

AdminAnswer call(RunningProxy& p, const std::string& method, const std::string& path,
                 const std::string& body = "") {
    return admin_call(p.server->admin_port(), method, path, body, kToken);
}

json::object get_json(RunningProxy& p, const std::string& path) {
    return json::parse(call(p, "GET", path).body).as_object();
}

std::string body_of_next_request(std::uint16_t port) {
    auto c = Socket::connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    return read_response(c).body;
}

// The "address" of each upstream of `color` in /v1/status, and its health.
std::map<std::string, bool> status_upstreams(RunningProxy& p, const std::string& color) {
    std::map<std::string, bool> out;
    const auto s = get_json(p, "/v1/status");
    for (const auto& u : s.at("colors").at(color).at("upstreams").as_array()) {
        out[std::string(u.at("address").as_string())] = u.at("healthy").as_bool();
    }
    return out;
}

// --- names ---------------------------------------------------------------

TEST(NamesTest, EveryAddressOfANameIsAnUpstreamWithItsOwnHealth) {
    ScriptedUpstream one(ScriptedUpstream::app("one"));
    auto two =
        std::make_unique<ScriptedUpstream>(ScriptedUpstream::app("two"), "127.0.0.2", one.port());
    const auto port = std::to_string(one.port());
    FakeDns dns;
    dns.set("app.test", {"127.0.0.1", "127.0.0.2"});
    auto cfg = fast_config({});
    cfg.colors[index(Color::Blue)].upstreams = {{"app.test", one.port()}};
    RunningProxy proxy(cfg, dns.resolver());

    const auto doc = get_json(proxy, "/v1/colors/blue/upstreams");
    EXPECT_EQ(doc.at("source"), "config");
    EXPECT_EQ(doc.at("upstreams").as_array(), json::array{json::string("app.test:" + port)});
    const auto& resolved = doc.at("resolved").as_array();
    ASSERT_EQ(resolved.size(), 2u) << json::serialize(doc);
    EXPECT_EQ(resolved[0].at("upstream"), json::string("app.test:" + port));
    EXPECT_EQ(resolved[0].at("address"), json::string("127.0.0.1:" + port));
    EXPECT_EQ(resolved[1].at("address"), json::string("127.0.0.2:" + port));

    std::set<std::string> answered;
    ASSERT_TRUE(eventually([&] {
        answered.insert(body_of_next_request(proxy.port()));
        return answered.size() == 2;
    }));
    const auto metrics = call(proxy, "GET", "/metrics").body;
    EXPECT_NE(metrics.find("upstream=\"app.test:" + port + " (127.0.0.2)\"} 1"), std::string::npos)
        << metrics;

    // Each address has its own health: the second goes away, the first stays.
    two.reset();
    const auto first = "app.test:" + port + " (127.0.0.1)";
    const auto second = "app.test:" + port + " (127.0.0.2)";
    ASSERT_TRUE(eventually([&] { return !status_upstreams(proxy, "blue").at(second); }));
    EXPECT_TRUE(status_upstreams(proxy, "blue").at(first));
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(body_of_next_request(proxy.port()), "one");
    }
}

TEST(NamesTest, AnAddressThatChangesMovesTrafficWithNoFailedRequest) {
    ScriptedUpstream one(ScriptedUpstream::app("one"));
    ScriptedUpstream two(ScriptedUpstream::app("two"), "127.0.0.2", one.port());
    FakeDns dns;
    dns.set("app.test", {"127.0.0.1"});
    auto cfg = fast_config({});
    cfg.colors[index(Color::Blue)].upstreams = {{"app.test", one.port()}};
    RunningProxy proxy(cfg, dns.resolver());
    LoadLoop load(proxy.port(), 4);
    ASSERT_TRUE(load.more(50));

    dns.set("app.test", {"127.0.0.2"});  // the container was replaced
    ASSERT_TRUE(eventually([&] { return load.bodies()["two"] > 0; }));
    ASSERT_TRUE(load.more(50));  // requests in flight to the old address have finished
    const int on_old = load.bodies()["one"];
    ASSERT_TRUE(load.more(200));
    EXPECT_EQ(load.bodies()["one"], on_old) << "the old address left the rotation";
    load.stop();
    EXPECT_EQ(load.failures(), 0);
}

TEST(NamesTest, AFailedResolutionKeepsTheLastAddresses) {
    ScriptedUpstream one(ScriptedUpstream::app("one"));
    FakeDns dns;
    dns.set("app.test", {"127.0.0.1"});
    auto cfg = fast_config({});
    cfg.colors[index(Color::Blue)].upstreams = {{"app.test", one.port()}};
    RunningProxy proxy(cfg, dns.resolver());
    dns.set("app.test", {});  // the DNS server stops answering
    const int before = dns.lookups.load();
    ASSERT_TRUE(eventually([&] { return dns.lookups.load() >= before + 3; }));
    EXPECT_EQ(body_of_next_request(proxy.port()), "one");
    const auto ups = status_upstreams(proxy, "blue");
    ASSERT_EQ(ups.size(), 1u);
    EXPECT_EQ(ups.begin()->first, "app.test:" + std::to_string(one.port()) + " (127.0.0.1)");
}

// The refresh is far off; the switch's gate asks again itself, so a switch
// right after the new containers started sees them.
TEST(NamesTest, TheSwitchGateResolvesTheTargetColorFirst) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    FakeDns dns;
    auto cfg = fast_config({blue.port()});
    cfg.resolver.refresh = std::chrono::hours(1);
    cfg.colors[index(Color::Green)].upstreams = {{"app-green.test", green.port()}};
    RunningProxy proxy(cfg, dns.resolver());
    EXPECT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"green"})").status, 412);

    dns.set("app-green.test", {"127.0.0.1"});
    const auto r = call(proxy, "POST", "/v1/switch", R"({"to":"green"})");
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(body_of_next_request(proxy.port()), "green");
}

// A name the machine itself resolves: every address getaddrinfo gives for
// localhost (127.0.0.1, and ::1 where /etc/hosts has it) is an upstream.
TEST(NamesTest, LocalhostResolvesThroughTheSystemToEachOfItsAddresses) {
    const auto addresses = resolve_with_system("localhost");
    ASSERT_FALSE(addresses.empty());
    const bool v6 = std::find(addresses.begin(), addresses.end(), "::1") != addresses.end();
    ScriptedUpstream app(ScriptedUpstream::app("local"), v6 ? "::" : "127.0.0.1");
    auto cfg = fast_config({});
    cfg.colors[index(Color::Blue)].upstreams = {{"localhost", app.port()}};
    RunningProxy proxy(cfg);
    const auto doc = get_json(proxy, "/v1/colors/blue/upstreams");
    EXPECT_EQ(doc.at("resolved").as_array().size(), addresses.size()) << json::serialize(doc);
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(body_of_next_request(proxy.port()), "local");
    }
}

// --- the runtime upstream API ---------------------------------------------

TEST(RuntimeUpstreamsTest, APutOnTheIdleColorThenASwitch) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(fast_config({blue.port()}));  // green: a dead address
    const auto list = "127.0.0.1:" + std::to_string(green.port());
    const auto r = call(proxy, "PUT", "/v1/colors/green/upstreams",
                        R"({"upstreams":[")" + list + R"("],"reason":"green v2 is up"})");
    ASSERT_EQ(r.status, 200) << r.body;
    const auto answer = json::parse(r.body).as_object();
    EXPECT_EQ(answer.at("color"), "green");
    EXPECT_EQ(answer.at("upstreams").as_array(), json::array{json::string(list)});
    EXPECT_EQ(answer.at("version"), 2);

    const auto doc = get_json(proxy, "/v1/colors/green/upstreams");
    EXPECT_EQ(doc.at("source"), "api");
    EXPECT_EQ(doc.at("upstreams").as_array(), json::array{json::string(list)});
    EXPECT_EQ(call(proxy, "POST", "/v1/switch", R"({"to":"green"})").status, 200);
    EXPECT_EQ(body_of_next_request(proxy.port()), "green");

    const auto history = get_json(proxy, "/v1/history");
    const auto& set = history.at("events").as_array().back().as_object();
    EXPECT_EQ(set.at("action"), "set_upstreams");
    EXPECT_EQ(set.at("reason"), "green v2 is up");
    EXPECT_EQ(set.at("source"), "127.0.0.1");
    EXPECT_EQ(set.at("version"), 2);
    EXPECT_EQ(set.at("upstreams").at("color"), "green");
    EXPECT_EQ(set.at("upstreams").at("new").as_array(), json::array{json::string(list)});
    EXPECT_EQ(set.at("upstreams").at("old").as_array().size(), 1u);
}

TEST(RuntimeUpstreamsTest, APutOnTheActiveColorUnderLoadFailsNoRequest) {
    ScriptedUpstream old_app(ScriptedUpstream::app("old"));
    ScriptedUpstream new_app(ScriptedUpstream::app("new"));
    RunningProxy proxy(fast_config({old_app.port()}));
    LoadLoop load(proxy.port(), 8);
    ASSERT_TRUE(load.more(100));
    const auto r = call(proxy, "PUT", "/v1/colors/blue/upstreams",
                        R"({"upstreams":["127.0.0.1:)" + std::to_string(new_app.port()) + "\"]}");
    ASSERT_EQ(r.status, 200) << r.body;
    ASSERT_TRUE(eventually([&] { return load.bodies()["new"] > 0; }));
    ASSERT_TRUE(load.more(50));
    const int on_old = load.bodies()["old"];
    ASSERT_TRUE(load.more(200));
    EXPECT_EQ(load.bodies()["old"], on_old);
    load.stop();
    EXPECT_EQ(load.failures(), 0);
}

TEST(RuntimeUpstreamsTest, ADeadListOnTheActiveColorKeepsTheOldAddressesServing) {
    ScriptedUpstream old_app(ScriptedUpstream::app("old"));
    RunningProxy proxy(fast_config({old_app.port()}));
    const auto dead = "127.0.0.1:" + std::to_string(dead_port());
    ASSERT_EQ(call(proxy, "PUT", "/v1/colors/blue/upstreams", R"({"upstreams":[")" + dead + "\"]}")
                  .status,
              200);
    // The new address is probed and found dead; the old one serves throughout.
    LoadLoop load(proxy.port(), 4);
    ASSERT_TRUE(load.more(300));
    load.stop();
    EXPECT_EQ(load.failures(), 0);
    EXPECT_EQ(load.bodies().size(), 1u);
    const auto ups = status_upstreams(proxy, "blue");
    EXPECT_EQ(ups.size(), 2u);
    EXPECT_FALSE(ups.at(dead));
    EXPECT_TRUE(ups.at("127.0.0.1:" + std::to_string(old_app.port())));
}

TEST(RuntimeUpstreamsTest, BadRequestsAndConflicts) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    // Green's smoke check answers only when the test lets it: a switch holds
    // its gate open meanwhile.
    std::promise<void> release;
    auto released = release.get_future().share();
    ScriptedUpstream green([released](Socket& s, ScriptedUpstream& self) {
        while (auto req = self.next_request(s)) {
            if (req->target == "/slow-smoke") {
                released.wait();
            }
            s.send(http_response(200, "green"));
        }
    });
    auto cfg = fast_config({blue.port()}, {green.port()});
    config::SmokeCheck smoke;
    smoke.name = "slow";
    smoke.path = "/slow-smoke";
    cfg.smoke.push_back(smoke);
    RunningProxy proxy(cfg);
    const std::string path = "/v1/colors/green/upstreams";

    auto r = call(proxy, "PUT", "/v1/colors/purple/upstreams", R"({"upstreams":["a:1","b"]})");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(json::parse(r.body).at("problems").as_array().size(), 2u) << r.body;
    EXPECT_NE(r.body.find("unknown color"), std::string::npos) << r.body;
    EXPECT_EQ(call(proxy, "GET", "/v1/colors/purple/upstreams").status, 400);
    r = call(proxy, "PUT", path, R"({"upstreams":["no-port","a:0"]})");
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(json::parse(r.body).at("problems").as_array().size(), 2u) << r.body;
    r = call(proxy, "PUT", path, R"({"upstreams":[]})");
    EXPECT_EQ(r.status, 400);
    r = call(proxy, "POST", path, R"({"upstreams":["a:1"]})");
    EXPECT_EQ(r.status, 405);
    r = call(proxy, "PUT", path, R"({"upstreams":["a:1"],"expect_version":7})");
    EXPECT_EQ(r.status, 409);
    EXPECT_NE(r.body.find("version mismatch"), std::string::npos) << r.body;
    EXPECT_EQ(
        admin_call(proxy.server->admin_port(), "PUT", path, R"({"upstreams":["a:1"]})").status,
        401);

    auto switching = std::async(std::launch::async, [&] {
        return call(proxy, "POST", "/v1/switch", R"({"to":"green"})").status;
    });
    ASSERT_TRUE(
        eventually([&] { return get_json(proxy, "/v1/status").at("state") == "switching"; }));
    r = call(proxy, "PUT", path, R"({"upstreams":["127.0.0.1:1"]})");
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_EQ(call(proxy, "POST", "/v1/reload").status, 409);
    release.set_value();
    EXPECT_EQ(switching.get(), 200);
    EXPECT_EQ(get_json(proxy, "/v1/status").at("version"), 2);  // nothing else moved it
}

TEST(RuntimeUpstreamsTest, ARestartKeepsTheApiList) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = fast_config({blue.port()});
    const auto list = "127.0.0.1:" + std::to_string(green.port());
    {
        RunningProxy proxy(cfg);
        ASSERT_EQ(
            call(proxy, "PUT", "/v1/colors/green/upstreams", R"({"upstreams":[")" + list + "\"]}")
                .status,
            200);
    }
    RunningProxy again(cfg);
    const auto doc = get_json(again, "/v1/colors/green/upstreams");
    EXPECT_EQ(doc.at("source"), "api");
    EXPECT_EQ(doc.at("upstreams").as_array(), json::array{json::string(list)});
    EXPECT_EQ(call(again, "POST", "/v1/switch", R"({"to":"green"})").status, 200);
    EXPECT_EQ(body_of_next_request(again.port()), "green");
    std::filesystem::remove(cfg.state_file);
}

// An address that leaves while a WebSocket to it is open: the WebSocket goes
// on, and gets 1001 at the end of the drain window, not at once.
TEST(RuntimeUpstreamsTest, AWebSocketToARemovedUpstreamGetsGoingAwayAtTheDeadline) {
    WsUpstreamLog old_log, new_log;
    ScriptedUpstream old_app(ws_app("old", old_log));
    ScriptedUpstream new_app(ws_app("new", new_log));
    RunningProxy proxy(fast_config({old_app.port()}));
    auto ws = open_websocket(proxy.port());
    ws.send(client_text("hi"));
    ASSERT_EQ(read_frame(ws).payload, "old:hi");

    const auto put = Clock::now();
    ASSERT_EQ(call(proxy, "PUT", "/v1/colors/blue/upstreams",
                   R"({"upstreams":["127.0.0.1:)" + std::to_string(new_app.port()) + "\"]}")
                  .status,
              200);
    ASSERT_TRUE(eventually([&] { return body_of_next_request(proxy.port()) == "new"; }));
    ws.send(client_text("still"));
    EXPECT_EQ(read_frame(ws).payload, "old:still");
    const auto close = read_frame(ws, 5s);
    const double at = std::chrono::duration<double>(Clock::now() - put).count();
    EXPECT_EQ(close.close_code(), 1001);
    EXPECT_GE(at, 0.9) << "closed before the drain window ended";
    EXPECT_LT(at, 3.5);
    EXPECT_TRUE(eventually([&] { return old_log.close_code.load() == 1001; }));
}

// --- reload ----------------------------------------------------------------

// A configuration file for the reload tests.
struct ConfigFile {
    std::uint16_t blue = 0;
    std::uint16_t green = dead_port();
    std::string state = fresh_state_path();
    std::string proxy = "workers: 2";            // the proxy section's keys
    std::string extra = "log: {access: off}\n";  // more YAML
    std::vector<std::string> listen{"127.0.0.1:0"};
    std::string path = write_temp_file("reload-" + std::to_string(::rand()) + ".yaml", "");

    std::string text() const {
        std::string l;
        for (const auto& a : listen) {
            l += (l.empty() ? "" : ", ") + ("\"" + a + "\"");
        }
        return "listen: [" + l + "]\n" + "admin: {address: \"127.0.0.1:0\", token: " + kToken +
               "}\n" + "colors:\n  blue: {upstreams: [\"127.0.0.1:" + std::to_string(blue) +
               "\"]}\n  green: {upstreams: [\"127.0.0.1:" + std::to_string(green) + "\"]}\n" +
               "state: {file: \"" + state + "\"}\n" + "proxy: {" + proxy + "}\n" + extra;
    }
    void write() const { std::ofstream(path) << text(); }
    ~ConfigFile() {
        std::filesystem::remove(path);
        std::filesystem::remove(state);
    }
};

std::unique_ptr<RunningProxy> start_from(const ConfigFile& f) {
    f.write();
    auto loaded = config::load_config_file(f.path);
    if (!loaded.config) {
        ADD_FAILURE() << loaded.errors.front();
        return nullptr;
    }
    return std::make_unique<RunningProxy>(std::move(*loaded.config), resolve_with_system, f.path);
}

// A proxy started from a ConfigFile whose blue is a scripted app.
class ReloadTest : public ::testing::Test {
  protected:
    void start() {
        f.blue = blue.port();
        proxy = start_from(f);
        ASSERT_TRUE(proxy);
    }
    AdminAnswer reload() { return call(*proxy, "POST", "/v1/reload"); }

    ScriptedUpstream blue{ScriptedUpstream::app("blue")};
    ConfigFile f;
    std::unique_ptr<RunningProxy> proxy;
};

TEST_F(ReloadTest, ReloadsUnderLoadFailNoRequest) {
    start();
    LoadLoop load(proxy->port(), 32);
    ASSERT_TRUE(load.more(200));
    const char* variants[] = {
        "log: {access: off, level: debug}\ntimeouts: {idle: 30s}\n",
        "log: {access: off}\ntimeouts: {idle: 45s}\nlimits: {max_header_bytes: 32KiB}\n",
        "log: {access: off}\nhealth: {interval: 1s}\nresolver: {refresh: 2s}\n",
        "log: {access: off}\n",
    };
    for (int round = 0; round < 8; ++round) {
        f.extra = variants[round % 4];
        f.write();
        const auto r = reload();
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_FALSE(json::parse(r.body).at("changed").as_array().empty()) << r.body;
        ASSERT_TRUE(load.more(100));
    }
    load.stop();
    EXPECT_EQ(load.failures(), 0);
    const auto history = get_json(*proxy, "/v1/history");
    EXPECT_EQ(history.at("events").as_array().front().at("action"), "reload");
}

TEST_F(ReloadTest, ANewSettingReachesTheNextExchange) {
    start();
    auto c = Socket::connect(proxy->port());
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_FALSE(read_response(c).header("x-bgswitch-color"));
    f.proxy = "workers: 2, expose_color_header: true";
    f.write();
    const auto r = reload();
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body).at("changed").as_array(),
              json::array{"proxy.expose_color_header"});
    // The same keep-alive connection: its next exchange runs with the new setting.
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(read_response(c).header("x-bgswitch-color"), "blue");
}

TEST_F(ReloadTest, ABrokenFileChangesNothingAndSaysEveryProblem) {
    start();
    f.extra = "log: {access: off}\ntimeouts: {idle: forever}\nlimits: {max_connections: -1}\n";
    f.write();
    const auto r = reload();
    ASSERT_EQ(r.status, 400) << r.body;
    const auto doc = json::parse(r.body).as_object();
    EXPECT_EQ(doc.at("error"), "config invalid");
    const auto metrics = call(*proxy, "GET", "/metrics").body;
    EXPECT_NE(metrics.find("bgswitch_reloads_total{result=\"invalid\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("bgswitch_reloads_total{result=\"reloaded\"} 0"), std::string::npos);
    EXPECT_EQ(doc.at("problems").as_array().size(), 2u) << r.body;
    EXPECT_EQ(body_of_next_request(proxy->port()), "blue");
    EXPECT_TRUE(get_json(*proxy, "/v1/history").at("events").as_array().empty());
}

TEST_F(ReloadTest, RestartOnlyKeysAreReportedAndActiveNeverMovesTraffic) {
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    f.green = green.port();
    start();
    f.extra = "log: {access: off}\nactive: green\n";
    f.proxy = "workers: 3";
    f.write();
    const auto r = reload();
    ASSERT_EQ(r.status, 200) << r.body;
    const auto doc = json::parse(r.body).as_object();
    EXPECT_EQ(doc.at("result"), "reloaded");
    EXPECT_EQ(doc.at("restart_required").as_array(), json::array{"proxy.workers"});
    EXPECT_TRUE(doc.at("changed").as_array().empty()) << r.body;
    EXPECT_EQ(body_of_next_request(proxy->port()), "blue");
    EXPECT_EQ(get_json(*proxy, "/v1/status").at("active"), "blue");
}

// A list changed in the file replaces the one the API set.
TEST_F(ReloadTest, AListChangedInTheFileReplacesTheApiList) {
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    ScriptedUpstream green2(ScriptedUpstream::app("green2"));
    f.green = green.port();
    start();
    ASSERT_EQ(call(*proxy, "PUT", "/v1/colors/green/upstreams",
                   R"({"upstreams":["127.0.0.1:)" + std::to_string(green2.port()) + "\"]}")
                  .status,
              200);
    f.write();  // the same file: green's list did not change in it
    ASSERT_EQ(reload().status, 200);
    EXPECT_EQ(get_json(*proxy, "/v1/colors/green/upstreams").at("source"), "api");
    f.green = green2.port();  // now the file names another list for green
    f.write();
    const auto r = reload();
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body).at("changed").as_array(), json::array{"colors.green.upstreams"});
    const auto doc = get_json(*proxy, "/v1/colors/green/upstreams");
    EXPECT_EQ(doc.at("source"), "config");
    EXPECT_EQ(doc.at("upstreams").as_array(),
              json::array{json::string("127.0.0.1:" + std::to_string(green2.port()))});
}

TEST_F(ReloadTest, AListenerAddedAcceptsAndOneRemovedStopsWhileItsConnectionsGoOn) {
    start();
    const auto extra_port = dead_port();
    f.listen.push_back("127.0.0.1:" + std::to_string(extra_port));
    f.write();
    auto r = reload();
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(json::parse(r.body).at("changed").as_array(), json::array{"listen"});
    std::optional<Socket> kept;
    ASSERT_TRUE(eventually([&] {
        try {
            kept.emplace(Socket::connect(extra_port));
            return true;
        } catch (const std::exception&) {
            return false;
        }
    }));
    kept->send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(read_response(*kept).body, "blue");

    f.listen.pop_back();
    f.write();
    ASSERT_EQ(reload().status, 200);
    EXPECT_TRUE(eventually([&] {
        try {
            Socket::connect(extra_port);
            return false;
        } catch (const std::exception&) {
            return true;  // refused: nothing listens there any more
        }
    }));
    kept->send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");  // the open connection goes on
    EXPECT_EQ(read_response(*kept).body, "blue");
    EXPECT_EQ(body_of_next_request(proxy->port()), "blue");
}

// logrotate moves the file away and signals; the next lines go to a new
// file at the configured path.
TEST_F(ReloadTest, TheAccessLogIsReopenedAfterItWasMovedAway) {
    const auto log_path = write_temp_file("reload-access.log", "");
    std::filesystem::remove(log_path);
    f.extra = "log: {access: \"" + log_path + "\"}\n";
    start();
    auto c = Socket::connect(proxy->port());
    c.send("GET /before HTTP/1.1\r\nHost: a\r\n\r\n");
    read_response(c);
    auto contents = [](const std::string& p) {
        std::ifstream in(p);
        return std::string((std::istreambuf_iterator<char>(in)), {});
    };
    ASSERT_TRUE(
        eventually([&] { return contents(log_path).find("/before") != std::string::npos; }));
    std::filesystem::rename(log_path, log_path + ".1");
    ASSERT_EQ(reload().status, 200);
    c.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n");  // the same connection
    read_response(c);
    EXPECT_TRUE(eventually([&] { return contents(log_path).find("/after") != std::string::npos; }));
    EXPECT_EQ(contents(log_path + ".1").find("/after"), std::string::npos);
    std::filesystem::remove(log_path);
    std::filesystem::remove(log_path + ".1");
}

TEST(ReloadWithoutAFileTest, IsRefused) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    RunningProxy proxy(fast_config({blue.port()}));
    const auto r = call(proxy, "POST", "/v1/reload");
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("not started from a configuration file"), std::string::npos);
    EXPECT_EQ(call(proxy, "GET", "/v1/reload").status, 405);
}

}  // namespace
}  // namespace bgs::test
