// A worker: one thread, one io_context, its own acceptors (SO_REUSEPORT) and its
// own upstream pool. Connections stay on the worker that accepted them, so the
// pool, the session registry and the drain plan need no locks. Other threads
// reach a worker only through the calls marked "Any thread", which post to it.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/drain/drain_manager.hpp"
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
#include <thread>
#include <vector>

namespace bgs::worker {

/// What every worker's sessions share, and nothing else: the immutable
/// configuration, the router, the access log and process-wide counters. Each
/// worker's pool keeps its own copy of the upstreams' addresses.
struct Shared {
    Shared(const config::Config& c, routing::Router& r) : cfg(c), router(r) {}

    const config::Config& cfg;
    routing::Router& router;
    drain::ActivityCounts activity;
    std::shared_ptr<spdlog::logger> access_log;  // null when access logging is off
    metrics::Metrics metrics;
    std::atomic<std::uint64_t> open_connections{0};
    std::atomic<bool> shutting_down{false};
};

class Worker {
  public:
    /// `endpoints`: the upstreams' addresses as resolved now (the pool keeps a copy).
    Worker(Shared& shared, unsigned id, upstream::Endpoints endpoints);
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

    /// Drains `color` from `start` on: its idle pooled connections close at once
    /// and stop being pooled; its WebSockets, streams and other tunnels close
    /// as drain::DrainManager decides (spread over the last `spread` of
    /// `timeout`, the rest at the deadline). Plain requests in flight always
    /// complete. Any thread.
    void start_drain(Color color, drain::TimePoint start, Duration timeout, Duration spread);
    /// Stops a drain of `color` (a rollback to it): its connections are kept. Any thread.
    void cancel_drain(Color color);
    /// Upstream (color, i) is now at `ep` (its name resolved late). Any thread.
    void set_endpoint(Color color, std::size_t i, net::tcp::endpoint ep);

    net::asio::io_context& context() { return ioc_; }
    Shared& shared() { return shared_; }
    const config::Config& cfg() const { return shared_.cfg; }
    /// REQUIRES: on this worker's thread (checked in debug and sanitizer builds).
    upstream::Pool& pool() {
        assert_on_worker_thread();
        return *pool_;
    }
    /// REQUIRES: on this worker's thread (checked in debug and sanitizer builds).
    drain::SessionRegistry& registry() {
        assert_on_worker_thread();
        return registry_;
    }
    /// Per-worker round-robin cursors, one per color. REQUIRES: on this worker's thread.
    std::size_t& cursor(Color c) {
        assert_on_worker_thread();
        return cursors_[index(c)];
    }
    unsigned id() const { return id_; }

  private:
    // The lock-free design rests on this: what a worker owns is touched only
    // by its thread. Before run() (set-up) any thread may.
    void assert_on_worker_thread() const {
#ifndef NDEBUG
        const auto owner = thread_.load(std::memory_order_relaxed);
        if (owner != std::thread::id{} && owner != std::this_thread::get_id()) {
            thread_rule_broken();
        }
#endif
    }
    [[noreturn]] void thread_rule_broken() const;

    net::Task<void> accept_loop(net::tcp::acceptor& acceptor, routing::Audience audience);
    net::Task<void> sweep_loop();
    /// Runs the drain plan: closes what is due, then waits for the next
    /// close or for the plan to change (wake_drains). One at a time.
    net::Task<void> drive_drains();
    void wake_drains();

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
    drain::DrainManager drains_{registry_};
    net::asio::steady_timer drain_timer_{ioc_};
    bool drain_driver_running_ = false;
    std::atomic<std::thread::id> thread_{};  // set by run()
};

/// Logs and swallows an exception that escaped a spawned coroutine; every
/// co_spawn on the data path completes through this.
void log_coroutine_exit(const char* what, std::exception_ptr e);

}  // namespace bgs::worker
