#include "tests/support/proxy_fixture.hpp"

#include "tests/support/test_net.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace bgs::test {

namespace {

// Removes every state file the tests of this process made (with its lock and
// temporary file) when the process ends, so that runs leave nothing in /tmp.
class StateFiles {
  public:
    ~StateFiles() {
        for (const auto& p : paths_) {
            for (const char* suffix : {"", ".lock", ".tmp"}) {
                std::remove((p + suffix).c_str());
            }
        }
    }
    void add(const std::string& p) {
        std::lock_guard lock(mutex_);
        paths_.push_back(p);
    }

  private:
    std::mutex mutex_;
    std::vector<std::string> paths_;
};

StateFiles& state_files() {
    static StateFiles files;
    return files;
}

}  // namespace

std::string fresh_state_path() {
    static std::atomic<int> counter{0};
    auto path = ::testing::TempDir() + "/bgswitch-state-" + std::to_string(::getpid()) + "-" +
                std::to_string(counter++) + ".json";
    std::remove(path.c_str());
    state_files().add(path);
    return path;
}

config::Config test_config(const std::vector<std::uint16_t>& blue,
                           const std::vector<std::uint16_t>& green) {
    config::Config cfg;
    cfg.listen.push_back({"127.0.0.1", 0});
    auto add = [&](Color c, const std::vector<std::uint16_t>& ports) {
        for (auto p : ports) {
            cfg.colors[index(c)].upstreams.push_back({"127.0.0.1", p});
        }
    };
    add(Color::Blue, blue);
    // Every color needs an upstream; a dead one stands in when a test uses one color.
    add(Color::Green, green.empty() ? std::vector<std::uint16_t>{dead_port()} : green);
    cfg.proxy.workers = 2;
    cfg.log.access = "off";
    cfg.admin.address = {"127.0.0.1", 0};
    cfg.state_file = fresh_state_path();
    // Background health checks would add requests the tests count; tests of
    // health set their own interval.
    cfg.health.interval = std::chrono::hours(1);
    cfg.timeouts.shutdown = std::chrono::seconds(5);
    return cfg;
}

AdminAnswer admin_call(std::uint16_t port, const std::string& method, const std::string& path,
                       const std::string& body, const std::string& token) {
    auto s = Socket::connect(port);
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n";
    if (!token.empty()) {
        req += "Authorization: Bearer " + token + "\r\n";
    }
    if (method == "POST" || !body.empty()) {
        req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\n";
    }
    s.send(req + "\r\n" + body);
    auto m = read_response(s, 30s);
    return {m.status, m.body, m.header("Content-Type").value_or("")};
}

long long metric_value(RunningProxy& proxy, std::string_view name) {
    const auto m = admin_call(proxy.server->admin_port(), "GET", "/metrics").body;
    std::string line_start = "\n";
    line_start.append(name).push_back(' ');
    const auto at = m.find(line_start);
    return at == std::string::npos ? -1 : std::stoll(m.substr(at + name.size() + 2));
}

RunningProxy::RunningProxy(config::Config cfg, NameResolver resolver, std::string config_file)
    : server(
          std::make_unique<Server>(std::move(cfg), std::move(resolver), std::move(config_file))) {
    server->start();
}

LoadLoop::LoadLoop(std::uint16_t port, int clients, std::string path) {
    for (int i = 0; i < clients; ++i) {
        threads_.emplace_back([this, port, path] {
            const std::string request = "GET " + path + " HTTP/1.1\r\nHost: load\r\n\r\n";
            std::optional<Socket> c;
            while (!stop_) {
                try {
                    if (!c) {
                        c.emplace(Socket::connect(port));
                    }
                    c->send(request);
                    auto res = read_response(*c);
                    if (res.status != 200) {
                        ++failures_;
                    }
                    {
                        std::lock_guard lock(mutex_);
                        ++bodies_[res.body];
                    }
                    ++completed_;
                    if (auto conn = res.header("connection"); conn && *conn == "close") {
                        c.reset();
                    }
                } catch (const std::exception&) {
                    ++failures_;
                    c.reset();
                }
            }
        });
    }
}

LoadLoop::~LoadLoop() {
    stop();
}

bool LoadLoop::more(int n) {
    const int mark = completed();
    return eventually([&] { return completed() >= mark + n; }, 10s);
}

std::map<std::string, int> LoadLoop::bodies() const {
    std::lock_guard lock(mutex_);
    return bodies_;
}

void LoadLoop::stop() {
    stop_ = true;
    for (auto& t : threads_) {
        if (t.joinable()) {
            t.join();
        }
    }
}

std::string write_temp_file(const std::string& name, const std::string& text) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("bgswitch-" + std::to_string(::getpid()) + "-" + name);
    std::ofstream(path) << text;
    return path.string();
}

}  // namespace bgs::test
