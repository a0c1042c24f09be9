// The proxy assembled: configuration -> router -> workers and their listeners.
// Constructed and driven from the main thread; shutdown() may be called from
// any thread (a signal handler thread, a test).
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/routing/color_state.hpp"
#include "proxy/routing/router.hpp"

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace bgs::worker {
class Worker;
struct Shared;
}  // namespace bgs::worker

namespace bgs {

/// Thrown by the Server's constructor when it cannot start (an address in use,
/// an upstream name that does not resolve, an unwritable access log).
class StartupError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class Server {
  public:
    /// Resolves every address and binds every listener (port 0 picks a free
    /// port, see ports()). Throws StartupError.
    explicit Server(config::Config cfg);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Starts the worker threads; returns at once.
    void start();
    /// Begins a graceful shutdown: stop accepting, finish in-flight requests
    /// within timeouts.shutdown, then stop. Idempotent; any thread.
    void shutdown();
    /// Blocks until every worker has stopped.
    void wait();

    /// The bound ports of the `listen` entries, in order.
    const std::vector<std::uint16_t>& listen_ports() const { return listen_ports_; }
    std::optional<std::uint16_t> preview_port() const { return preview_port_; }

    const config::Config& config() const { return cfg_; }
    routing::ColorState& color_state() { return color_state_; }
    routing::Router& router() { return router_; }
    worker::Shared& shared() { return *shared_; }

  private:
    config::Config cfg_;
    routing::ColorState color_state_;
    routing::Router router_;
    std::unique_ptr<worker::Shared> shared_;
    std::vector<std::unique_ptr<worker::Worker>> workers_;
    std::vector<std::thread> threads_;
    std::vector<std::uint16_t> listen_ports_;
    std::optional<std::uint16_t> preview_port_;

    std::mutex mutex_;
    std::condition_variable stopped_cv_;
    bool stopped_ = false;
    std::thread deadline_thread_;
};

}  // namespace bgs
