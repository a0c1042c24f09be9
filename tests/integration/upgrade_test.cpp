// Upgrading in place (SPEC section 9) with the real binary: SIGUSR2 and
// POST /v1/upgrade start the binary now at the running one's path, which
// takes over the listening sockets and the state-file lock; the old process
// then shuts down as on SIGTERM. Under load, nothing is refused or fails; a
// broken new binary leaves the old one serving.
#include "tests/support/child_process.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"
#include "tests/support/ws_util.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <sys/stat.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

namespace bgs::test {
namespace {

namespace json = boost::json;
constexpr const char* kToken = "upgrade-token";

// A bgswitch started from a copy of the binary that the test may replace, as
// a package upgrade replaces the installed one.
struct Installed {
    explicit Installed(std::uint16_t blue, std::uint16_t green,
                       const std::vector<std::string>& env = {})
        : binary(temp_file("bgswitch-installed")), port(dead_port()), admin(dead_port()) {
        std::filesystem::copy_file(BGSWITCH_BINARY, binary,
                                   std::filesystem::copy_options::overwrite_existing);
        ::chmod(binary.c_str(), 0755);
        config = write_file(
            "upgrade.yaml",
            "listen: [{address: \"127.0.0.1:" + std::to_string(port) + "\"}]\n" +
                "admin: {address: \"127.0.0.1:" + std::to_string(admin) + "\", token: \"" + kToken +
                "\"}\ncolors:\n  blue: {upstreams: [\"127.0.0.1:" + std::to_string(blue) +
                "\"]}\n  green: {upstreams: [\"127.0.0.1:" + std::to_string(green) + "\"]}\n" +
                "state: {file: \"" + path_for("upgrade-state.json") + "\"}\n" +
                "timeouts: {shutdown: 10s}\nlog: {access: off}\n");
        child = spawn_program(binary, {"run", "--config", config}, env);
        if (!eventually([&] { return call("GET", "/healthz").status == 200; }, 10s)) {
            throw std::runtime_error("bgswitch did not start: " + child.output.read_some(1s));
        }
    }

    ~Installed() {
        // The new process is not our child: it is stopped by its PID.
        const int pid = serving_pid();
        if (pid > 0 && pid != child.pid) {
            ::kill(pid, SIGTERM);
            eventually([&] { return ::kill(pid, 0) != 0; }, 10s);
        }
    }

    AdminAnswer call(const std::string& method, const std::string& path) const {
        try {
            return admin_call(admin, method, path, "", kToken);
        } catch (const std::exception&) {
            return {};
        }
    }
    json::object status() const {
        json::error_code ec;
        auto v = json::parse(call("GET", "/v1/status").body, ec);
        return !ec && v.is_object() ? v.as_object() : json::object{};
    }
    int serving_pid() const {
        const auto s = status();
        return s.contains("pid") ? s.at("pid").to_number<int>() : 0;
    }

    std::string binary;
    std::uint16_t port;
    std::uint16_t admin;
    std::string config;
    Child child;
};

// Clients that open a new connection for every request and count the
// refused, reset or failed ones, and the longest wait for a connection.
class NewConnections {
  public:
    explicit NewConnections(std::uint16_t port) {
        thread_ = std::thread([this, port] {
            while (!stop_) {
                const auto start = std::chrono::steady_clock::now();
                try {
                    auto c = Socket::connect(port);
                    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
                    if (read_response(c).status != 200) {
                        ++failures_;
                    }
                    ++completed_;
                } catch (const std::exception&) {
                    ++failures_;
                }
                const auto took = std::chrono::steady_clock::now() - start;
                longest_ = std::max(longest_.load(),
                                    std::chrono::duration_cast<std::chrono::microseconds>(took));
            }
        });
    }
    ~NewConnections() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
    }
    int failures() const { return failures_; }
    int completed() const { return completed_; }
    std::chrono::microseconds longest() const { return longest_; }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<int> failures_{0};
    std::atomic<int> completed_{0};
    std::atomic<std::chrono::microseconds> longest_{std::chrono::microseconds(0)};
    std::thread thread_;
};

TEST(UpgradeTest, SigUsr2HandsOverWithNoRefusedOrFailedRequest) {
    WsUpstreamLog ws_log;
    ScriptedUpstream blue(ws_app("blue", ws_log));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    Installed bgs(blue.port(), green.port());
    ASSERT_EQ(admin_call(bgs.admin, "POST", "/v1/switch", R"({"to":"green"})", kToken).status, 200);
    ASSERT_EQ(admin_call(bgs.admin, "POST", "/v1/switch", R"({"to":"blue"})", kToken).status, 200);
    const auto before = bgs.status();
    const int old_pid = bgs.child.pid;
    ASSERT_EQ(before.at("pid").to_number<int>(), old_pid);

    auto ws = open_websocket(bgs.port);  // on the old process
    LoadLoop keep_alive(bgs.port, 3);
    NewConnections fresh(bgs.port);
    ASSERT_TRUE(keep_alive.more(100));

    ::kill(old_pid, SIGUSR2);
    ASSERT_TRUE(
        eventually([&] { return bgs.serving_pid() != old_pid && bgs.serving_pid() > 0; }, 15s))
        << bgs.child.output.read_some(1s);
    // The old process shuts down as on SIGTERM: its WebSocket gets 1001.
    const auto close = read_frame(ws, 10s);
    EXPECT_EQ(close.opcode, ws::kClose);
    EXPECT_EQ(close.close_code(), 1001);
    EXPECT_EQ(bgs.child.wait(15s), 0);
    ASSERT_TRUE(keep_alive.more(200)) << "the new process serves";
    const int served_by_new = fresh.completed();
    EXPECT_TRUE(eventually([&] { return fresh.completed() > served_by_new + 50; }));
    keep_alive.stop();
    fresh.stop();
    EXPECT_EQ(keep_alive.failures(), 0);
    EXPECT_EQ(fresh.failures(), 0);
    std::cout << "longest wait for a new connection's answer across the upgrade: "
              << fresh.longest().count() << " us\n";

    // Same color, same version, the state file's lock now the new process's.
    const auto after = bgs.status();
    EXPECT_EQ(after.at("active"), before.at("active"));
    EXPECT_EQ(after.at("version"), before.at("version"));
    EXPECT_EQ(admin_call(bgs.admin, "POST", "/v1/switch", R"({"to":"green"})", kToken).status, 200);
}

TEST(UpgradeTest, UnderSystemdTheNewProcessBecomesTheMainOne) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    NotifySocket notify;
    Installed bgs(blue.port(), green.port(), {"NOTIFY_SOCKET=" + notify.path});
    EXPECT_NE(notify.next().find("READY=1"), std::string::npos);
    ::kill(bgs.child.pid, SIGUSR2);
    std::string main_pid;
    for (int i = 0; i < 10 && main_pid.empty(); ++i) {
        const auto message = notify.next();
        if (const auto at = message.find("MAINPID="); at != std::string::npos) {
            main_pid = message.substr(at + 8, message.find('\n', at) - at - 8);
        }
    }
    ASSERT_FALSE(main_pid.empty());
    EXPECT_TRUE(eventually([&] { return std::to_string(bgs.serving_pid()) == main_pid; }));
    EXPECT_EQ(bgs.child.wait(15s), 0);
}

TEST(UpgradeTest, ABrokenNewBinaryLeavesTheOldOneServing) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    Installed bgs(blue.port(), green.port());
    // The package manager's way: a new file renamed over the old one.
    const auto broken = bgs.binary + ".new";
    std::ofstream(broken) << "#!/bin/sh\necho 'cannot start: broken build' >&2\nexit 3\n";
    ::chmod(broken.c_str(), 0755);
    std::filesystem::rename(broken, bgs.binary);

    const auto answer = bgs.call("POST", "/v1/upgrade");
    ASSERT_EQ(answer.status, 202) << answer.body;
    const auto log = bgs.child.output.read_until("goes on serving", 10s);
    EXPECT_NE(log.find("the new process exited with status 3 before it served"), std::string::npos)
        << log;
    EXPECT_EQ(bgs.serving_pid(), bgs.child.pid);
    auto c = Socket::connect(bgs.port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(read_response(c).body, "blue");
    // Switches were held during the attempt and run again after it.
    EXPECT_TRUE(eventually([&] {
        return admin_call(bgs.admin, "POST", "/v1/switch", R"({"to":"green"})", kToken).status ==
               200;
    }));
}

}  // namespace
}  // namespace bgs::test
