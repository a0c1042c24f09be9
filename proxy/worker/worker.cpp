#include "proxy/worker/worker.hpp"

#include "proxy/common/backoff.hpp"
#include "proxy/common/logging.hpp"
#include "proxy/http/session.hpp"

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

Worker::Worker(Shared& shared, unsigned id)
    : shared_(shared),
      id_(id),
      registry_(shared.activity),
      pool_(std::make_unique<upstream::Pool>(shared.endpoints, kMaxIdlePerUpstream,
                                             shared.cfg.timeouts.idle)),
      sweep_timer_(ioc_) {}

Worker::~Worker() {
    pool_.reset();
    acceptors_.clear();
}

void Worker::add_listener(net::tcp::acceptor acceptor, routing::Audience audience) {
    acceptors_.emplace_back(std::make_unique<net::tcp::acceptor>(std::move(acceptor)), audience);
}

void Worker::run() {
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
        for (auto& d : drains_) {
            ++d.generation;
            if (d.timer != nullptr) {
                d.timer->cancel();
            }
        }
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
                s.stop(drain::StopReason::DrainClose);
            }
        });
    });
}

void Worker::start_drain(Color color, std::chrono::steady_clock::time_point close_from,
                         std::chrono::steady_clock::time_point deadline) {
    asio::post(ioc_, [this, color, close_from, deadline] {
        auto& d = drains_[index(color)];
        const auto generation = ++d.generation;
        if (d.timer != nullptr) {
            d.timer->cancel();
        }
        pool_->close_idle(color);
        pool_->set_pooling(color, false);
        asio::co_spawn(ioc_, drain_loop(color, generation, close_from, deadline),
                       [](std::exception_ptr e) { log_coroutine_exit("drain", e); });
    });
}

void Worker::cancel_drain(Color color) {
    asio::post(ioc_, [this, color] {
        auto& d = drains_[index(color)];
        ++d.generation;
        if (d.timer != nullptr) {
            d.timer->cancel();
        }
        pool_->set_pooling(color, true);
    });
}

bool Worker::drain_close_one(Color color) {
    drain::TrackedSession* victim = nullptr;
    registry_.for_each([&](drain::TrackedSession& s) {
        if (victim != nullptr || s.drain_signalled || s.color() != color) {
            return;
        }
        const auto a = s.activity();
        if (a == drain::Activity::Upgraded || a == drain::Activity::Stream) {
            victim = &s;
        }
    });
    if (victim == nullptr) {
        return false;
    }
    victim->stop(drain::StopReason::DrainClose);
    return true;
}

net::Task<void> Worker::drain_loop(Color color, std::uint64_t generation,
                                   std::chrono::steady_clock::time_point close_from,
                                   std::chrono::steady_clock::time_point deadline) {
    auto& d = drains_[index(color)];
    asio::steady_timer timer(ioc_);
    d.timer = &timer;
    // Unpublishes the timer on every exit, unless a newer drain already replaced it.
    struct Unpublish {
        DrainState& d;
        asio::steady_timer* t;
        ~Unpublish() {
            if (d.timer == t) {
                d.timer = nullptr;
            }
        }
    } unpublish{d, &timer};
    auto current = [&] { return d.generation == generation && !stopping_; };

    timer.expires_at(close_from);
    co_await timer.async_wait(kNoThrow);
    if (!current()) {
        co_return;
    }
    // Spread: as many evenly spaced closes as there are WebSockets and streams
    // now; whatever appeared meanwhile is caught at the deadline.
    std::size_t count = 0;
    registry_.for_each([&](drain::TrackedSession& s) {
        const auto a = s.activity();
        count += s.color() == color && !s.drain_signalled &&
                 (a == drain::Activity::Upgraded || a == drain::Activity::Stream);
    });
    const auto window = deadline - close_from;
    for (std::size_t i = 0; i < count && window.count() > 0; ++i) {
        timer.expires_at(close_from + window * static_cast<long>(i) / static_cast<long>(count));
        co_await timer.async_wait(kNoThrow);
        if (!current()) {
            co_return;
        }
        drain_close_one(color);
    }
    timer.expires_at(deadline);
    co_await timer.async_wait(kNoThrow);
    if (!current()) {
        co_return;
    }
    while (drain_close_one(color)) {
    }
    pool_->close_idle(color);
    pool_->set_pooling(color, true);
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
            // EMFILE and friends: wait longer each time instead of spinning; the
            // connection stays in the backlog until descriptors are free.
            const auto step = backoff.failed(AcceptBackoff::Clock::now());
            if (step.log) {
                log().warn(
                    "accept failed: {} (waiting {} ms; {} more failures since the last "
                    "report)",
                    ec.message(), step.wait.count(), step.suppressed);
            }
            asio::steady_timer pause(ioc_, step.wait);
            co_await pause.async_wait(kNoThrow);
            continue;
        }
        backoff.succeeded();
        if (shared_.open_connections.load(std::memory_order_relaxed) >= max ||
            shared_.shutting_down.load(std::memory_order_relaxed)) {
            log().warn("503 to {}: {}", peer.address().to_string(),
                       shared_.shutting_down ? "shutting down" : "limits.max_connections reached");
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
