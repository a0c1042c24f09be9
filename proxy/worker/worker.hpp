// A worker: one thread, one io_context, its own acceptors (SO_REUSEPORT) and its
// own upstream pool. Connections stay on the worker that accepted them, so the
// pool, the session registry and the drain plan need no locks. Other threads
// reach a worker only through the calls marked "Any thread", which post to it.
#pragma once

#include "proxy/net/tls.hpp"

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
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace bgs::worker {

/// What every worker's sessions share, and nothing else: the router and
/// process-wide counters. Settings, the access log and the upstreams' members
/// are each worker's own copies, replaced by the control thread through posts.
/// A TLS listener's certificates and settings (null: plain TCP).
using TlsContext = std::shared_ptr<const net::tls::ServerContext>;

struct Shared {
    explicit Shared(routing::Router& r) : router(r) {}

    routing::Router& router;
    drain::ActivityCounts activity;
    metrics::Metrics metrics;
    std::atomic<std::uint64_t> open_connections{0};
    /// Of those, idle keep-alive connections parked without a session.
    std::atomic<std::uint64_t> parked_connections{0};
    /// Tunnels (WebSockets) parked while both sides are quiet.
    std::atomic<std::uint64_t> parked_tunnels{0};
    std::atomic<bool> shutting_down{false};
    /// Every TLS listener's context by its key, for the metrics. Set by the
    /// server (start-up, reloads), read by the admin's /metrics.
    std::mutex tls_mutex;
    std::map<std::string, TlsContext> tls_listeners;
};

class Worker {
  public:
    /// `settings`: the configuration as of now, this worker's own copy;
    /// `access_log`: null when access logging is off. No members until set_members.
    Worker(Shared& shared, unsigned id, std::shared_ptr<const config::Config> settings,
           std::shared_ptr<spdlog::logger> access_log);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    /// Adds an already bound and listening acceptor, known as `key` (its
    /// configured address). Before run() only.
    void add_listener(std::string key, net::tcp::acceptor acceptor, routing::Audience audience,
                      TlsContext tls = nullptr);
    /// The same while running: the acceptor (bound on this worker's context)
    /// starts accepting here. Any thread.
    void open_listener(std::string key, net::tcp::acceptor acceptor, routing::Audience audience,
                       TlsContext tls = nullptr);
    /// A reload's certificates for the listener `key`: new connections
    /// handshake with them; open ones keep theirs. Any thread.
    void set_listener_tls(std::string key, TlsContext tls);
    /// Stops accepting on the listener `key`; its connections go on. Any thread.
    void close_listener(std::string key);
    /// The descriptors of its listening sockets, asked on its own thread
    /// (for an upgrade to pass on). Empty when it did not answer within
    /// `timeout`. Any other thread.
    std::vector<int> listening_fds(std::chrono::milliseconds timeout);

    /// Runs the event loop on the calling thread until the worker has no work left.
    void run();

    /// Graceful stop: close the acceptors, end idle connections, let in-flight
    /// requests finish. WebSockets (1001) and streams (their terminating
    /// chunk) end at once, or spread evenly over `spread`. Any thread.
    void begin_shutdown(Duration spread = Duration{0});
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
    /// The upstreams of `color` in rotation from now on. Idle connections to
    /// those that left close; their WebSockets, streams and tunnels are
    /// drained (`timeout`, `spread`) as in start_drain. Any thread.
    void set_members(Color color, routing::Members members, Duration timeout, Duration spread);
    /// New settings (a reload) for the exchanges that begin from now on, and
    /// the access log to write to. Any thread.
    void update_settings(std::shared_ptr<const config::Config> settings,
                         std::shared_ptr<spdlog::logger> access_log);

    net::asio::io_context& context() { return ioc_; }
    Shared& shared() { return shared_; }
    /// This worker's settings now. REQUIRES: on this worker's thread.
    const std::shared_ptr<const config::Config>& settings() const { return settings_; }
    /// Null when access logging is off. REQUIRES: on this worker's thread.
    const std::shared_ptr<spdlog::logger>& access_log() const { return access_log_; }
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

    struct Listener {
        std::string key;
        std::shared_ptr<net::tcp::acceptor> acceptor;
        routing::Audience audience;
        std::shared_ptr<TlsContext> tls;  // the slot the accept loop reads; null inside: plain
    };
    void spawn_accept_loop(const Listener& l);
    net::Task<void> accept_loop(std::shared_ptr<net::tcp::acceptor> acceptor,
                                routing::Audience audience, std::shared_ptr<TlsContext> tls);
    net::Task<void> sweep_loop();
    /// Runs the drain plan: closes what is due, then waits for the next
    /// close or for the plan to change (wake_drains). One at a time.
    net::Task<void> drive_drains();
    void wake_drains();

    Shared& shared_;
    unsigned id_;
    std::shared_ptr<const config::Config> settings_;
    std::shared_ptr<spdlog::logger> access_log_;
    drain::SessionRegistry registry_;  // outlives ioc_: session frames die with it
    std::array<std::size_t, 2> cursors_{};
    // Other threads reach a worker only through post(), so the scheduler keeps
    // its lock but each socket's reactor state, touched by this thread alone,
    // does without one (two lock/unlock pairs per socket operation saved).
    net::asio::io_context ioc_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    std::unique_ptr<upstream::Pool> pool_;
    net::asio::steady_timer sweep_timer_;
    std::vector<Listener> listeners_;
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
