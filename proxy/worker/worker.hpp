// A worker: one thread, one io_context, its own acceptors (SO_REUSEPORT) and its
// own upstream pool. Connections stay on the worker that accepted them, so the
// pool and the session registry need no locks. Only begin_shutdown and
// force_stop may be called from other threads.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/drain/session_registry.hpp"
#include "proxy/metrics/metrics.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/router.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/logger.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace bgs::worker {

/// What all workers share: the immutable configuration, the router, the
/// resolved upstreams, the access log and process-wide counters.
struct Shared {
    Shared(const config::Config& c, routing::Router& r) : cfg(c), router(r) {}

    const config::Config& cfg;
    routing::Router& router;
    upstream::Endpoints endpoints;
    drain::ActivityCounts activity;
    std::shared_ptr<spdlog::logger> access_log;  // null when access logging is off
    metrics::Metrics metrics;
    std::atomic<std::uint64_t> open_connections{0};
    std::atomic<bool> shutting_down{false};
};

class Worker {
  public:
    Worker(Shared& shared, unsigned id);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    /// Adds an already bound and listening acceptor. Before run() only.
    void add_listener(net::tcp::acceptor acceptor, routing::Audience audience);

    /// Runs the event loop on the calling thread until the worker has no work left.
    void run();

    /// Graceful stop: close the acceptors, end idle connections, let in-flight
    /// requests finish. Any thread.
    void begin_shutdown();
    /// Abandons whatever is still running. Any thread.
    void force_stop();
    /// Asks every session with work in progress to end now (WebSockets 1001,
    /// streams their last chunk, the rest closed): the end of a shutdown. Any thread.
    void close_all_now();

    /// Drains `color`: its idle pooled connections close at once and stop being
    /// pooled; its WebSockets, streams and other tunnels are closed one by one
    /// between `close_from` and `deadline` (evenly spread), and at `deadline` all
    /// that remain. Plain requests in flight always complete. Any thread.
    void start_drain(Color color, std::chrono::steady_clock::time_point close_from,
                     std::chrono::steady_clock::time_point deadline);
    /// Stops a drain of `color` (a rollback to it): its connections are kept. Any thread.
    void cancel_drain(Color color);

    net::asio::io_context& context() { return ioc_; }
    Shared& shared() { return shared_; }
    const config::Config& cfg() const { return shared_.cfg; }
    upstream::Pool& pool() { return *pool_; }
    drain::SessionRegistry& registry() { return registry_; }
    /// Per-worker round-robin cursors, one per color.
    std::size_t& cursor(Color c) { return cursors_[index(c)]; }
    unsigned id() const { return id_; }

  private:
    net::Task<void> accept_loop(net::tcp::acceptor& acceptor, routing::Audience audience);
    net::Task<void> sweep_loop();
    net::Task<void> drain_loop(Color color, std::uint64_t generation,
                               std::chrono::steady_clock::time_point close_from,
                               std::chrono::steady_clock::time_point deadline);
    /// Sends DrainClose to one more tunnel or stream of `color`; false when none is left.
    bool drain_close_one(Color color);

    Shared& shared_;
    unsigned id_;
    drain::SessionRegistry registry_;  // outlives ioc_: session frames die with it
    std::array<std::size_t, 2> cursors_{};
    // Other threads reach a worker only through post(), so the scheduler keeps
    // its lock but each socket's reactor state, touched by this thread alone,
    // does without one (two lock/unlock pairs per socket operation saved).
    net::asio::io_context ioc_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    std::unique_ptr<upstream::Pool> pool_;
    net::asio::steady_timer sweep_timer_;
    std::vector<std::pair<std::unique_ptr<net::tcp::acceptor>, routing::Audience>> acceptors_;
    bool stopping_ = false;
    struct DrainState {
        std::uint64_t generation = 0;
        net::asio::steady_timer* timer = nullptr;  // the running drain loop's, to cancel it
    };
    std::array<DrainState, 2> drains_;
};

/// Logs and swallows an exception that escaped a spawned coroutine; every
/// co_spawn on the data path completes through this.
void log_coroutine_exit(const char* what, std::exception_ptr e);

}  // namespace bgs::worker
