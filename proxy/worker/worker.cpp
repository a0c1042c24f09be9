#include "proxy/worker/worker.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/http/session.hpp"
#include "proxy/net/listen.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>

namespace bgs::worker {
namespace asio = net::asio;

namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxIdlePerUpstream = 256;

constexpr std::string_view kBusyResponse =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 20\r\n"
    "Connection: close\r\n"
    "\r\n"
    "too many connections";

// Over limits.max_connections: answer 503 without reading the request and close.
net::Task<void> reject_busy(net::tcp::socket socket) {
    net::Stream stream(std::move(socket));
    stream.expires_after(std::chrono::seconds(1));
    co_await net::write_all(stream, asio::buffer(kBusyResponse));
    net::error_code ignored;
    stream.socket().shutdown(net::tcp::socket::shutdown_send, ignored);
}

}  // namespace

void log_coroutine_exit(const char* what, std::exception_ptr e) {
    if (!e) {
        return;
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        log().error("{} ended by an exception: {}", what, ex.what());
    } catch (...) {
        log().error("{} ended by an unknown exception", what);
    }
}

Worker::Worker(Shared& shared, unsigned id, upstream::Endpoints endpoints)
    : shared_(shared),
      id_(id),
      registry_(shared.activity),
      pool_(std::make_unique<upstream::Pool>(std::move(endpoints), kMaxIdlePerUpstream,
                                             shared.cfg.timeouts.idle)),
      sweep_timer_(ioc_) {}

Worker::~Worker() {
    pool_.reset();
    acceptors_.clear();
}

void Worker::add_listener(net::tcp::acceptor acceptor, routing::Audience audience) {
    acceptors_.emplace_back(std::make_unique<net::tcp::acceptor>(std::move(acceptor)), audience);
}

void Worker::thread_rule_broken() const {
    log().critical("worker {}: its pool, registry or cursors were used from another thread", id_);
    std::abort();
}

void Worker::run() {
    thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    set_this_thread_shard(id_ + 1);  // shard 0 is for threads that are not workers
    for (auto& [acceptor, audience] : acceptors_) {
        asio::co_spawn(ioc_, accept_loop(*acceptor, audience),
                       [](std::exception_ptr e) { log_coroutine_exit("accept loop", e); });
    }
    asio::co_spawn(ioc_, sweep_loop(),
                   [](std::exception_ptr e) { log_coroutine_exit("pool sweeper", e); });
    ioc_.run();
}

void Worker::begin_shutdown() {
    asio::post(ioc_, [this] {
        stopping_ = true;
        for (auto& entry : acceptors_) {
            net::error_code ignored;
            entry.first->close(ignored);
        }
        sweep_timer_.cancel();
        pool_->close_all();
        drains_.cancel_all();
        drain_timer_.cancel();
        registry_.stop_all(drain::StopReason::Shutdown);
    });
}

void Worker::force_stop() {
    ioc_.stop();
}

void Worker::close_all_now() {
    asio::post(ioc_, [this] {
        registry_.for_each([](drain::TrackedSession& s) {
            if (s.activity() != drain::Activity::Idle) {
                s.stop(drain::StopReason::ShutdownDeadline);
            }
        });
    });
}

void Worker::start_drain(Color color, drain::TimePoint start, Duration timeout, Duration spread) {
    asio::post(ioc_, [this, color, start, timeout, spread] {
        if (stopping_) {
            return;
        }
        pool_->close_idle(color);
        pool_->set_pooling(color, false);
        drains_.start(color, start, timeout, spread);
        wake_drains();
    });
}

void Worker::set_endpoint(Color color, std::size_t i, net::tcp::endpoint ep) {
    asio::post(ioc_, [this, color, i, ep] { pool_->set_endpoint(color, i, ep); });
}

void Worker::cancel_drain(Color color) {
    asio::post(ioc_, [this, color] {
        if (drains_.cancel(color)) {
            pool_->set_pooling(color, true);
        }
        wake_drains();
    });
}

void Worker::wake_drains() {
    if (drain_driver_running_) {
        drain_timer_.cancel();  // it re-reads the plan
        return;
    }
    drain_driver_running_ = true;
    asio::co_spawn(ioc_, drive_drains(),
                   [](std::exception_ptr e) { log_coroutine_exit("drain", e); });
}

net::Task<void> Worker::drive_drains() {
    struct Running {
        bool& flag;
        ~Running() { flag = false; }
    } running{drain_driver_running_};
    while (!stopping_) {
        const auto step = drains_.run_due(std::chrono::steady_clock::now());
        for (Color c : kColors) {
            if (step.finished[index(c)]) {
                pool_->close_idle(c);
                pool_->set_pooling(c, true);
            }
        }
        if (!step.next) {
            co_return;
        }
        drain_timer_.expires_at(*step.next);
        co_await drain_timer_.async_wait(kNoThrow);  // or cancelled: the plan changed
    }
}

net::Task<void> Worker::accept_loop(net::tcp::acceptor& acceptor, routing::Audience audience) {
    const auto max = shared_.cfg.limits.max_connections;
    net::tcp::endpoint peer;
    AcceptBackoff backoff;
    while (!stopping_) {
        auto [ec, socket] = co_await acceptor.async_accept(peer, kNoThrow);
        if (ec) {
            if (stopping_ || ec == asio::error::operation_aborted) {
                co_return;
            }
            co_await net::pause_after_accept_failure(backoff, ec, "accept");
            continue;
        }
        backoff.succeeded();
        if (shared_.open_connections.load(std::memory_order_relaxed) >= max ||
            shared_.shutting_down.load(std::memory_order_relaxed)) {
            log().warn("503 to {}: {}", peer.address().to_string(),
                       shared_.shutting_down ? "shutting down" : "limits.max_connections reached");
            shared_.metrics.error(std::nullopt, ErrorSource::Proxy, ErrorKind::Limit);
            asio::co_spawn(ioc_, reject_busy(std::move(socket)),
                           [](std::exception_ptr e) { log_coroutine_exit("503 reply", e); });
            continue;
        }
        asio::co_spawn(ioc_, http::serve_connection(*this, std::move(socket), peer, audience),
                       [](std::exception_ptr e) { log_coroutine_exit("client session", e); });
    }
}

net::Task<void> Worker::sweep_loop() {
    while (!stopping_) {
        sweep_timer_.expires_after(std::chrono::seconds(1));
        co_await sweep_timer_.async_wait(kNoThrow);
        if (stopping_) {
            co_return;
        }
        pool_->sweep();
    }
}

}  // namespace bgs::worker
