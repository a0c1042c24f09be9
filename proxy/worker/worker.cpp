#include "proxy/worker/worker.hpp"

#include <future>

#include "proxy/common/logging.hpp"
#include "proxy/http/session.hpp"
#include "proxy/net/listen.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
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
    stream.shutdown_send();
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

Worker::Worker(Shared& shared, unsigned id, std::shared_ptr<const config::Config> settings,
               std::shared_ptr<spdlog::logger> access_log)
    : shared_(shared),
      id_(id),
      settings_(std::move(settings)),
      access_log_(std::move(access_log)),
      registry_(shared.activity),
      pool_(std::make_unique<upstream::Pool>(kMaxIdlePerUpstream, settings_->timeouts.idle)),
      sweep_timer_(ioc_) {}

Worker::~Worker() {
    pool_.reset();
    listeners_.clear();
}

void Worker::add_listener(std::string key, net::tcp::acceptor acceptor, routing::Audience audience,
                          TlsContext tls) {
    listeners_.push_back({std::move(key), std::make_shared<net::tcp::acceptor>(std::move(acceptor)),
                          audience, std::make_shared<TlsContext>(std::move(tls))});
}

void Worker::open_listener(std::string key, net::tcp::acceptor acceptor, routing::Audience audience,
                           TlsContext tls) {
    auto shared_acceptor = std::make_shared<net::tcp::acceptor>(std::move(acceptor));
    asio::post(ioc_, [this, key = std::move(key), shared_acceptor, audience,
                      tls = std::move(tls)]() mutable {
        if (stopping_) {
            return;
        }
        listeners_.push_back(
            {key, shared_acceptor, audience, std::make_shared<TlsContext>(std::move(tls))});
        spawn_accept_loop(listeners_.back());
    });
}

void Worker::set_listener_tls(std::string key, TlsContext tls) {
    asio::post(ioc_, [this, key = std::move(key), tls = std::move(tls)] {
        for (auto& l : listeners_) {
            if (l.key == key) {
                *l.tls = tls;
            }
        }
    });
}

void Worker::close_listener(std::string key) {
    asio::post(ioc_, [this, key = std::move(key)] {
        std::erase_if(listeners_, [&](const Listener& l) {
            if (l.key != key) {
                return false;
            }
            net::error_code ignored;
            l.acceptor->close(ignored);  // its loop ends; accepted connections go on
            return true;
        });
    });
}

std::vector<int> Worker::listening_fds(std::chrono::milliseconds timeout) {
    auto answer = std::make_shared<std::promise<std::vector<int>>>();
    auto fds = answer->get_future();
    asio::post(ioc_, [this, answer] {
        std::vector<int> out;
        for (const auto& l : listeners_) {
            if (l.acceptor->is_open()) {
                out.push_back(l.acceptor->native_handle());
            }
        }
        answer->set_value(std::move(out));
    });
    if (fds.wait_for(timeout) != std::future_status::ready) {
        return {};
    }
    return fds.get();
}

void Worker::spawn_accept_loop(const Listener& l) {
    asio::co_spawn(ioc_, accept_loop(l.acceptor, l.audience, l.tls),
                   [](std::exception_ptr e) { log_coroutine_exit("accept loop", e); });
}

void Worker::set_members(Color color, routing::Members members, Duration timeout, Duration spread) {
    asio::post(ioc_, [this, color, members = std::move(members), timeout, spread]() mutable {
        // What left is what the old members have and the new ones lack.
        std::vector<std::uint64_t> departed;
        for (const auto& old : pool_->members(color)) {
            if (std::find(members.begin(), members.end(), old) == members.end()) {
                departed.push_back(old->id);
            }
        }
        pool_->set_members(color, std::move(members));
        if (stopping_ || departed.empty()) {
            return;
        }
        const auto now = std::chrono::steady_clock::now();
        for (auto id : departed) {
            drains_.start_upstream(color, id, now, timeout, spread);
        }
        wake_drains();
    });
}

void Worker::update_settings(std::shared_ptr<const config::Config> settings,
                             std::shared_ptr<spdlog::logger> access_log) {
    asio::post(
        ioc_, [this, settings = std::move(settings), access_log = std::move(access_log)]() mutable {
            pool_->set_idle_timeout(settings->timeouts.idle);
            settings_ = std::move(settings);
            access_log_ = std::move(access_log);
        });
}

void Worker::thread_rule_broken() const {
    log().critical("worker {}: its pool, registry or cursors were used from another thread", id_);
    std::abort();
}

void Worker::run() {
    thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    set_this_thread_shard(id_ + 1);  // shard 0 is for threads that are not workers
    for (const auto& l : listeners_) {
        spawn_accept_loop(l);
    }
    asio::co_spawn(ioc_, sweep_loop(),
                   [](std::exception_ptr e) { log_coroutine_exit("pool sweeper", e); });
    ioc_.run();
    // Stopped before everything ended (a shutdown past its deadline): what
    // waits on a handler that will never run is freed here.
    registry_.abandon_all();
}

void Worker::begin_shutdown(Duration spread) {
    asio::post(ioc_, [this, spread] {
        stopping_ = true;
        for (auto& l : listeners_) {
            net::error_code ignored;
            l.acceptor->close(ignored);
        }
        sweep_timer_.cancel();
        pool_->close_all();
        drains_.cancel_all();
        if (spread <= Duration{0}) {
            drain_timer_.cancel();
            registry_.stop_all(drain::StopReason::Shutdown);
            return;
        }
        // WebSockets and streams end over `spread`, as a drain's do; the rest
        // ends at its next safe point.
        registry_.for_each([](drain::TrackedSession& s) {
            if (s.activity() != drain::Activity::Upgraded &&
                s.activity() != drain::Activity::Stream) {
                s.stop(drain::StopReason::Shutdown);
            }
        });
        drains_.start_shutdown(std::chrono::steady_clock::now(), spread);
        wake_drains();
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
    for (;;) {  // until the plan is done (a shutdown may spread its closes too)
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

net::Task<void> Worker::accept_loop(std::shared_ptr<net::tcp::acceptor> acceptor,
                                    routing::Audience audience, std::shared_ptr<TlsContext> tls) {
    net::tcp::endpoint peer;
    AcceptBackoff backoff;
    while (!stopping_) {
        auto [ec, socket] = co_await acceptor->async_accept(peer, kNoThrow);
        if (ec) {
            if (stopping_ || ec == asio::error::operation_aborted || !acceptor->is_open()) {
                co_return;
            }
            co_await net::pause_after_accept_failure(backoff, ec, "accept");
            continue;
        }
        backoff.succeeded();
        // A connection accepted as a shutdown (or an upgrade's hand-over)
        // begins is served: its answer says Connection: close.
        const auto max = settings_->limits.max_connections;
        if (shared_.open_connections.load(std::memory_order_relaxed) >= max) {
            log().warn("503 to {}: limits.max_connections reached", peer.address().to_string());
            shared_.metrics.error(std::nullopt, ErrorSource::Proxy, ErrorKind::Limit);
            asio::co_spawn(ioc_, reject_busy(std::move(socket)),
                           [](std::exception_ptr e) { log_coroutine_exit("503 reply", e); });
            continue;
        }
        asio::co_spawn(ioc_, http::serve_connection(*this, std::move(socket), peer, audience, *tls),
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
