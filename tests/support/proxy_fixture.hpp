// Starts an in-process bgswitch Server on 127.0.0.1:0 for integration tests.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/server.hpp"

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace bgs::test {

/// A state file path of this process that does not exist yet.
std::string fresh_state_path();

/// A configuration for tests: one listener on 127.0.0.1:0, two workers, access
/// log off, generous timeouts (tests shorten what they exercise).
config::Config test_config(const std::vector<std::uint16_t>& blue,
                           const std::vector<std::uint16_t>& green = {});

struct AdminAnswer {
    int status = 0;
    std::string body;
    std::string content_type;
};

/// One admin API call on a fresh connection.
AdminAnswer admin_call(std::uint16_t port, const std::string& method, const std::string& path,
                       const std::string& body = "", const std::string& token = "");

/// A started server; stopped gracefully when destroyed. With `config_file`,
/// reloads re-read that file.
struct RunningProxy {
    explicit RunningProxy(config::Config cfg, NameResolver resolver = resolve_with_system,
                          std::string config_file = "");
    std::uint16_t port() const { return server->listen_ports().front(); }
    std::unique_ptr<Server> server;
};

/// The value of the unlabelled metric `name` on the proxy's /metrics (a
/// gauge such as bgswitch_idle_connections); -1 when it is not there.
long long metric_value(RunningProxy& proxy, std::string_view name);

/// Keep-alive clients sending GET `path` in a loop until stopped, each on
/// its own connection (a new one after the proxy closed one between
/// requests, as a browser does). A request that gets anything but a 200, or
/// no answer, is a failure.
class LoadLoop {
  public:
    LoadLoop(std::uint16_t port, int clients, std::string path = "/");
    ~LoadLoop();
    LoadLoop(const LoadLoop&) = delete;
    LoadLoop& operator=(const LoadLoop&) = delete;

    int completed() const { return completed_.load(); }
    int failures() const { return failures_.load(); }
    /// Waits (with a deadline) until `n` more requests completed; false on timeout.
    bool more(int n);
    /// How many answers had each body, so far.
    std::map<std::string, int> bodies() const;
    /// Stops the clients and waits for them.
    void stop();

  private:
    std::atomic<bool> stop_{false};
    std::atomic<int> completed_{0};
    std::atomic<int> failures_{0};
    mutable std::mutex mutex_;
    std::map<std::string, int> bodies_;
    std::vector<std::thread> threads_;
};

/// Writes `text` to a fresh file of this process and returns its path.
std::string write_temp_file(const std::string& name, const std::string& text);

}  // namespace bgs::test
