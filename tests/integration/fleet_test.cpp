// Fleet mode (SPEC section 12) with real processes: three `bgswitch run`
// instances sharing one real redis-server, switched through any of them;
// racing switches, a stalled instance, Redis going away and coming back
// (with and without its data), upstream lists set through another instance.
#include "tests/support/child_process.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <atomic>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

namespace bgs::test {
namespace {

namespace json = boost::json;

constexpr const char* kToken = "fleet-token";

json::object parse(const std::string& text) {
    json::error_code ec;
    auto v = json::parse(text, ec);
    if (ec || !v.is_object()) {
        return {};
    }
    return v.as_object();
}

std::vector<std::string> names(const json::value* v) {
    std::vector<std::string> out;
    if (v != nullptr && v->is_array()) {
        for (const auto& s : v->as_array()) {
            out.emplace_back(s.as_string());
        }
    }
    return out;
}

// One `bgswitch run` of the fleet, on ports of its own.
class Instance {
  public:
    Instance(std::string name, const std::string& redis_url, std::uint16_t blue,
             std::uint16_t green)
        : name_(std::move(name)), port_(dead_port()), admin_(dead_port()) {
        state_ = path_for("fleet-" + name_ + ".json");
        config_ = write_file(
            "fleet-" + name_ + ".yaml",
            "listen: [{address: \"127.0.0.1:" + std::to_string(port_) + "\"}]\n" +
                "admin: {address: \"127.0.0.1:" + std::to_string(admin_) + "\", token: \"" +
                kToken + "\"}\n" +
                "colors:\n  blue: {upstreams: [\"127.0.0.1:" + std::to_string(blue) +
                "\"]}\n  green: {upstreams: [\"127.0.0.1:" + std::to_string(green) + "\"]}\n" +
                "state:\n  file: \"" + state_ + "\"\n  backend: redis\n  redis: {url: \"" +
                redis_url + "\", key: \"bgswitch:fleet-test\", node: " + name_ + "}\n" +
                "switch: {drain_timeout: 1s, auto_rollback: {window: 1s, min_requests: 20}}\n"
                "log: {access: off}\n");
        start();
    }

    void start() {
        child_ = spawn_program(BGSWITCH_BINARY, {"run", "--config", config_});
        const bool up = eventually([&] { return call("GET", "/healthz").status == 200; }, 10s);
        if (!up) {
            throw std::runtime_error(name_ + " did not start: " + child_.output.read_some(1s));
        }
    }
    /// SIGTERM, and the exit awaited.
    int stop() {
        ::kill(child_.pid, SIGTERM);
        return child_.wait(15s);
    }
    void pause() { ::kill(child_.pid, SIGSTOP); }
    void resume() { ::kill(child_.pid, SIGCONT); }

    AdminAnswer call(const std::string& method, const std::string& path,
                     const std::string& body = "") const {
        try {
            return admin_call(admin_, method, path, body, kToken);
        } catch (const std::exception&) {
            return {};
        }
    }
    json::object status() const { return parse(call("GET", "/v1/status").body); }
    std::uint64_t version() const {
        const auto s = status();
        return s.contains("version") ? s.at("version").to_number<std::uint64_t>() : 0;
    }
    std::string backend() const {
        const auto s = status();
        return s.contains("backend") ? std::string(s.at("backend").as_string()) : "";
    }
    /// The color the proxy serves a request from.
    std::string color() const {
        try {
            auto c = Socket::connect(port_);
            c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
            return read_response(c).body;
        } catch (const std::exception&) {
            return "";
        }
    }
    /// The version the local state file holds.
    std::uint64_t file_version() const {
        std::ifstream in(state_);
        std::stringstream text;
        text << in.rdbuf();
        const auto o = parse(text.str());
        return o.contains("version") ? o.at("version").to_number<std::uint64_t>() : 0;
    }

    const std::string& name() const { return name_; }
    std::uint16_t port() const { return port_; }
    std::string admin_url() const { return "http://127.0.0.1:" + std::to_string(admin_); }
    Child& child() { return child_; }

  private:
    std::string name_;
    std::uint16_t port_;
    std::uint16_t admin_;
    std::string state_;
    std::string config_;
    Child child_;
};

class FleetTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!RedisServer::available()) {
            GTEST_SKIP() << "redis-server is not installed (deploy/setup.sh installs it)";
        }
        redis_ = std::make_unique<RedisServer>();
        for (const char* n : {"a", "b", "c"}) {
            nodes_.push_back(
                std::make_unique<Instance>(n, redis_->url(), blue_.port(), green_.port()));
        }
        ASSERT_TRUE(eventually([&] { return live_nodes(*nodes_[0]) == 3; }, 10s))
            << nodes_[0]->call("GET", "/v1/fleet").body;
    }

    static int live_nodes(const Instance& via) {
        const auto doc = parse(via.call("GET", "/v1/fleet").body);
        int live = 0;
        if (const auto* nodes = doc.if_contains("nodes")) {
            for (const auto& n : nodes->as_array()) {
                live += n.as_object().at("live").as_bool() ? 1 : 0;
            }
        }
        return live;
    }

    bool all_backends(const std::string& backend, Ms timeout = 10s) {
        return eventually(
            [&] {
                return std::all_of(nodes_.begin(), nodes_.end(),
                                   [&](const auto& n) { return n->backend() == backend; });
            },
            timeout);
    }

    bool all_serve(const std::string& color, Ms timeout = 5s) {
        return eventually(
            [&] {
                return std::all_of(nodes_.begin(), nodes_.end(),
                                   [&](const auto& n) { return n->color() == color; });
            },
            timeout);
    }

    Instance& a() { return *nodes_[0]; }
    Instance& b() { return *nodes_[1]; }
    Instance& c() { return *nodes_[2]; }

    ScriptedUpstream blue_{ScriptedUpstream::app("blue")};
    ScriptedUpstream green_{ScriptedUpstream::app("green")};
    std::unique_ptr<RedisServer> redis_;
    std::vector<std::unique_ptr<Instance>> nodes_;
};

TEST_F(FleetTest, ASwitchThroughOneInstanceIsAppliedByAll) {
    const auto fleet = parse(b().call("GET", "/v1/fleet").body);
    EXPECT_EQ(fleet.at("key").as_string(), "bgswitch:fleet-test");
    EXPECT_EQ(fleet.at("version").to_number<std::uint64_t>(), 1u);
    ASSERT_EQ(fleet.at("nodes").as_array().size(), 3u);
    const auto& first = fleet.at("nodes").as_array()[0].as_object();
    EXPECT_EQ(first.at("node").as_string(), "a");
    EXPECT_EQ(first.at("applied_version").to_number<std::uint64_t>(), 1u);
    EXPECT_LT(first.at("heartbeat_age_ms").to_number<std::int64_t>(), 5000);
    EXPECT_EQ(first.at("backend").as_string(), "ok");
    EXPECT_EQ(a().backend(), "ok");

    const auto sw = a().call("POST", "/v1/switch",
                             R"({"to":"green","reason":"fleet deploy","wait_fleet":"5s"})");
    ASSERT_EQ(sw.status, 200) << sw.body;
    const auto answer = parse(sw.body);
    EXPECT_EQ(answer.at("version").to_number<std::uint64_t>(), 2u);
    const auto& waited = answer.at("fleet").as_object();
    EXPECT_EQ(names(waited.if_contains("applied")), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_TRUE(names(waited.if_contains("lagging")).empty());
    // wait_fleet answered: every instance serves green already.
    for (const auto& n : nodes_) {
        EXPECT_EQ(n->color(), "green") << n->name();
        EXPECT_EQ(n->version(), 2u) << n->name();
        EXPECT_EQ(n->file_version(), 2u) << n->name() << ": the local copy is written";
    }
    // The history travels with the record, naming the instance that took it.
    const auto history = parse(c().call("GET", "/v1/history").body);
    const auto& event = history.at("events").as_array().at(0).as_object();
    EXPECT_EQ(event.at("action").as_string(), "switch");
    EXPECT_EQ(event.at("node").as_string(), "a");
    EXPECT_EQ(event.at("reason").as_string(), "fleet deploy");

    // The CLI: the fleet as a table, and a rollback waiting for the fleet.
    auto fleet_cli =
        spawn_program(BGSWITCH_BINARY, {"fleet", "--admin", c().admin_url(), "--token", kToken});
    const auto table = fleet_cli.output.read_to_eof(10s);
    EXPECT_EQ(fleet_cli.wait(), 0) << table;
    EXPECT_NE(table.find("bgswitch:fleet-test (version 2; this is c)"), std::string::npos) << table;
    EXPECT_NE(table.find("NODE"), std::string::npos) << table;
    for (const char* n : {"a ", "b ", "c "}) {
        EXPECT_NE(table.find(std::string("\n") + n), std::string::npos) << table;
    }
    auto rollback = spawn_program(BGSWITCH_BINARY, {"rollback", "--wait-fleet", "5s", "--admin",
                                                    b().admin_url(), "--token", kToken});
    const auto out = rollback.output.read_to_eof(15s);
    EXPECT_EQ(rollback.wait(), 0) << out;
    EXPECT_NE(out.find("fleet: applied by a, b, c"), std::string::npos) << out;
    EXPECT_TRUE(all_serve("blue", 1s));
}

TEST_F(FleetTest, RacingSwitchesWithTheSameVersionOneWinsOneGets409) {
    const auto body = R"({"to":"green","expect_version":1})";
    AdminAnswer through_a;
    AdminAnswer through_b;
    std::thread ta([&] { through_a = a().call("POST", "/v1/switch", body); });
    std::thread tb([&] { through_b = b().call("POST", "/v1/switch", body); });
    ta.join();
    tb.join();
    const std::vector<int> statuses{through_a.status, through_b.status};
    EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), 1)
        << through_a.body << through_b.body;
    EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 409), 1)
        << through_a.body << through_b.body;
    const auto& lost = through_a.status == 409 ? through_a : through_b;
    EXPECT_EQ(parse(lost.body).at("current_version").to_number<std::uint64_t>(), 2u) << lost.body;
    ASSERT_TRUE(all_serve("green"));
    EXPECT_TRUE(eventually(
        [&] { return a().version() == 2u && b().version() == 2u && c().version() == 2u; }));
    // The loser's instance kept nothing of its own: one switch in the history.
    const auto history = parse(b().call("GET", "/v1/history").body);
    int switched = 0;
    for (const auto& e : history.at("events").as_array()) {
        switched += e.as_object().at("result").as_string() == "switched" ? 1 : 0;
    }
    EXPECT_EQ(switched, 1);
}

TEST_F(FleetTest, AStalledInstanceShowsAsLaggingAndCatchesUp) {
    c().pause();  // SIGSTOP: its heartbeat is still fresh, it cannot apply
    const auto sw = a().call("POST", "/v1/switch", R"({"to":"green","wait_fleet":"1s"})");
    ASSERT_EQ(sw.status, 200) << sw.body;
    const auto answer = parse(sw.body);
    const auto& waited = answer.at("fleet").as_object();
    EXPECT_EQ(names(waited.if_contains("applied")), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(names(waited.if_contains("lagging")), (std::vector<std::string>{"c"}));

    // The CLI says so with exit 1.
    auto cli = spawn_program(BGSWITCH_BINARY, {"switch", "blue", "--wait-fleet", "1s", "--admin",
                                               b().admin_url(), "--token", kToken});
    const auto out = cli.output.read_to_eof(15s);
    EXPECT_EQ(cli.wait(), 1) << out;
    EXPECT_NE(out.find("LAGGING: c"), std::string::npos) << out;

    c().resume();
    EXPECT_TRUE(eventually([&] { return c().version() == 3u; }));
    EXPECT_TRUE(all_serve("blue"));
}

TEST_F(FleetTest, RedisAwayEveryInstanceFailsStaticAndCatchesUpWhenItIsBack) {
    ASSERT_EQ(a().call("POST", "/v1/switch", R"({"to":"green","wait_fleet":"5s"})").status, 200);
    redis_->pause();  // a store that hangs: calls time out
    ASSERT_TRUE(all_backends("unreachable"));
    EXPECT_NE(a().call("GET", "/metrics").body.find("bgswitch_state_backend_up 0"),
              std::string::npos);
    const auto refused = b().call("POST", "/v1/switch", R"({"to":"blue"})");
    EXPECT_EQ(refused.status, 503) << refused.body;
    EXPECT_NE(refused.body.find("unreachable"), std::string::npos) << refused.body;
    EXPECT_TRUE(all_serve("green", 1s)) << "nobody flips because the store went away";

    // Back with its data: everyone reconnects, nothing moves.
    redis_->resume();
    ASSERT_TRUE(all_backends("ok"));
    EXPECT_NE(a().call("GET", "/metrics").body.find("bgswitch_state_backend_up 1"),
              std::string::npos);
    EXPECT_TRUE(all_serve("green", 1s));
    EXPECT_EQ(b().call("POST", "/v1/switch", R"({"to":"blue","wait_fleet":"5s"})").status, 200);
    EXPECT_TRUE(all_serve("blue", 1s));
}

TEST_F(FleetTest, ARestartWhileRedisIsDownServesTheLastColorAndAnEmptyRedisIsReseeded) {
    // c misses version 2 (stalled); then Redis loses everything.
    c().pause();
    ASSERT_EQ(a().call("POST", "/v1/switch", R"({"to":"green"})").status, 200);
    ASSERT_TRUE(eventually([&] { return b().version() == 2u; }));
    redis_->stop();
    c().resume();
    ASSERT_TRUE(eventually([&] { return b().backend() == "unreachable"; }, 10s));

    // b restarts without Redis: its local file says green, version 2.
    ASSERT_EQ(b().stop(), 0);
    b().start();
    EXPECT_EQ(b().color(), "green");
    EXPECT_EQ(b().version(), 2u);
    EXPECT_EQ(b().backend(), "unreachable");
    EXPECT_EQ(c().color(), "blue") << "c never saw version 2 and does not guess";

    // Redis comes back empty: the highest version applied anywhere (2) is the
    // record again, whoever seeds first; c catches up, nobody goes back.
    redis_->start();
    ASSERT_TRUE(eventually([&] { return c().version() == 2u; }, 10s));
    EXPECT_TRUE(all_serve("green"));
    const auto fleet = parse(a().call("GET", "/v1/fleet").body);
    EXPECT_EQ(fleet.at("version").to_number<std::uint64_t>(), 2u);
    EXPECT_TRUE(eventually([&] { return live_nodes(a()) == 3; }));
    const auto sw = c().call("POST", "/v1/switch", R"({"to":"blue","wait_fleet":"5s"})");
    EXPECT_EQ(sw.status, 200) << sw.body;
    EXPECT_TRUE(all_serve("blue", 1s));
}

TEST_F(FleetTest, UpstreamChangesThroughAnotherInstanceAreAppliedEverywhere) {
    ScriptedUpstream green2(ScriptedUpstream::app("green2"));
    const auto body =
        R"({"upstreams":["127.0.0.1:)" + std::to_string(green2.port()) + R"("],"wait_fleet":"5s"})";
    const auto put = b().call("PUT", "/v1/colors/green/upstreams", body);
    ASSERT_EQ(put.status, 200) << put.body;
    EXPECT_TRUE(names(parse(put.body).at("fleet").as_object().if_contains("lagging")).empty());
    const auto listed = parse(c().call("GET", "/v1/colors/green/upstreams").body);
    EXPECT_EQ(names(listed.if_contains("upstreams")),
              (std::vector<std::string>{"127.0.0.1:" + std::to_string(green2.port())}));
    EXPECT_EQ(listed.at("source").as_string(), "api");
    ASSERT_EQ(a().call("POST", "/v1/switch", R"({"to":"green","wait_fleet":"5s"})").status, 200);
    EXPECT_TRUE(all_serve("green2"));
}

TEST_F(FleetTest, AnAutomaticRollbackIsAFleetChange) {
    // A version that passes its health check but fails real requests.
    ScriptedUpstream broken([](Socket& s, ScriptedUpstream& self) {
        while (auto req = self.next_request(s)) {
            const bool health = req->target == "/health";
            s.send(http_response(health ? 200 : 500, health ? "ok" : "broken"));
        }
    });
    const auto list =
        R"({"upstreams":["127.0.0.1:)" + std::to_string(broken.port()) + R"("],"wait_fleet":"5s"})";
    ASSERT_EQ(c().call("PUT", "/v1/colors/green/upstreams", list).status, 200);
    const auto sw = a().call("POST", "/v1/switch", R"({"to":"green","observe":"20s"})");
    ASSERT_EQ(sw.status, 200) << sw.body;
    EXPECT_EQ(a().status().at("state"), "observing");
    EXPECT_NE(b().status().at("state"), "observing")
        << "the instance that took the switch observes";

    // a's own traffic fails; its observer rolls the whole fleet back.
    std::atomic<bool> stop{false};
    std::thread load([&] {
        while (!stop) {
            a().color();
        }
    });
    const bool rolled_back = all_serve("blue", 15s);
    stop = true;
    load.join();
    ASSERT_TRUE(rolled_back);
    const auto history = parse(b().call("GET", "/v1/history").body);
    const auto& event = history.at("events").as_array().at(0).as_object();
    EXPECT_EQ(event.at("action").as_string(), "auto_rollback");
    EXPECT_EQ(event.at("node").as_string(), "a");
    EXPECT_EQ(b().version(), a().version());
}

TEST_F(FleetTest, ACanaryIsPartOfTheFleetsRecord) {
    const auto set =
        a().call("POST", "/v1/canary", R"({"to":"green","percent":30,"wait_fleet":"5s"})");
    ASSERT_EQ(set.status, 200) << set.body;
    const auto answer = parse(set.body);
    EXPECT_EQ(names(answer.at("fleet").as_object().if_contains("applied")),
              (std::vector<std::string>{"a", "b", "c"}));
    const auto epoch = std::to_string(answer.at("version").to_number<std::uint64_t>());
    for (const auto& n : nodes_) {
        const auto s = n->status();
        ASSERT_TRUE(s.at("canary").is_object()) << n->name();
        EXPECT_EQ(s.at("canary").at("percent").to_number<int>(), 30) << n->name();
    }
    // A session given green by one instance stays on green at every other.
    for (const auto& n : nodes_) {
        for (int i = 0; i < 5; ++i) {
            auto c = Socket::connect(n->port());
            c.send(
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nCookie: bgswitch_color=green." +
                epoch + "\r\n\r\n");
            EXPECT_EQ(read_response(c).body, "green") << n->name();
        }
    }
    // Ended through another instance: everyone is back on blue.
    const auto end = b().call("POST", "/v1/canary", R"({"percent":0,"wait_fleet":"5s"})");
    ASSERT_EQ(end.status, 200) << end.body;
    for (const auto& n : nodes_) {
        EXPECT_TRUE(n->status().at("canary").is_null()) << n->name();
        auto c = Socket::connect(n->port());
        c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nCookie: bgswitch_color=green." +
               epoch + "\r\n\r\n");
        EXPECT_EQ(read_response(c).body, "blue") << n->name();
    }
}

TEST_F(FleetTest, ABadWaitFleetIsRefusedAndChangesNothing) {
    // A bad wait_fleet is 400 and changes nothing.
    const auto bad = a().call("POST", "/v1/switch", R"({"to":"green","wait_fleet":"forever"})");
    EXPECT_EQ(bad.status, 400) << bad.body;
    EXPECT_EQ(a().version(), 1u);
}

}  // namespace
}  // namespace bgs::test
