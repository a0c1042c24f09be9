#include "proxy/server.hpp"

#include "admin/admin_server.hpp"
#include "admin/routes.hpp"
#include "proxy/common/logging.hpp"
#include "proxy/control/switcher.hpp"
#include "proxy/health/health_checker.hpp"
#include "proxy/net/listen.hpp"
#include "proxy/worker/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <future>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/socket_base.hpp>

namespace bgs {
namespace {

namespace asio = net::asio;
using tcp = net::tcp;

tcp::endpoint resolve(asio::io_context& ioc, const config::HostPort& hp, const char* what) {
    net::error_code ec;
    tcp::resolver resolver(ioc);
    auto results =
        resolver.resolve(hp.host, std::to_string(hp.port), tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
        throw StartupError(std::string(what) + " " + hp.to_string() +
                           ": cannot resolve: " + (ec ? ec.message() : "no address"));
    }
    return results.begin()->endpoint();
}

tcp::acceptor bind_listener(asio::io_context& ioc, const tcp::endpoint& ep, const char* what) {
    tcp::acceptor acceptor(ioc);
    const char* step = "";
    // Every worker has its own acceptor on the same port; the kernel spreads
    // new connections across them.
    if (auto ec = net::open_listener(acceptor, ep, /*reuse_port=*/true, &step)) {
        throw StartupError(std::string(what) + " " + ep.address().to_string() + ":" +
                           std::to_string(ep.port()) + ": " + step + ": " + ec.message());
    }
    return acceptor;
}

// Periodic chores of the control thread: reports of dropped access log lines.
net::Task<void> housekeep(asio::steady_timer& timer, const std::atomic<bool>& stopping) {
    while (!stopping.load()) {
        timer.expires_after(std::chrono::seconds(10));
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        report_access_log_drops();
    }
}

}  // namespace

struct Server::Addresses {
    upstream::Endpoints endpoints;
};

struct Server::Housekeeping {
    explicit Housekeeping(asio::io_context& ioc) : timer(ioc) {}
    asio::steady_timer timer;
};

// An upstream's address, or port 0 (not resolved yet) when its name does not
// resolve now.
tcp::endpoint upstream_endpoint(const config::HostPort& hp, const NameResolver& resolver,
                                Color color) {
    net::error_code ec;
    auto ip = asio::ip::make_address(hp.host, ec);
    if (ec) {
        const auto address = resolver(hp.host);
        if (address) {
            ip = asio::ip::make_address(*address, ec);
        }
        if (!address || ec) {
            log().warn(
                "upstream {} of {} does not resolve now; it stays down and its name is "
                "tried again every health.interval",
                hp.to_string(), to_string(color));
            return {};
        }
    }
    return {ip, hp.port};
}

Server::Server(config::Config cfg, NameResolver resolver)
    : cfg_(std::move(cfg)), store_(cfg_.state_file), addresses_(std::make_unique<Addresses>()) {
    auto& endpoints = addresses_->endpoints;
    // The state file wins over `active:`; one that exists but cannot be read
    // stops the start rather than silently flipping traffic.
    std::optional<state::SwitchState> saved;
    try {
        store_.lock();
        saved = store_.load();
    } catch (const state::StateError& e) {
        throw StartupError(e.what());
    }
    state::SwitchState initial;
    if (saved) {
        initial = std::move(*saved);
        active_source_ =
            "from the state file " + store_.path() + ", version " + std::to_string(initial.version);
        if (initial.active != cfg_.active) {
            active_source_ +=
                "; the configuration's active: " + std::string(to_string(cfg_.active)) +
                " applies to a first start only";
        }
    } else {
        initial.active = cfg_.active;
        if (auto err = store_.save(initial)) {
            throw StartupError("state file: " + *err);
        }
        active_source_ = "from the configuration's active:, first start; state file " +
                         store_.path() + " created";
    }
    log().info("active color {} ({})", to_string(initial.active), active_source_);
    color_state_ = std::make_unique<routing::ColorState>(initial.active, initial.version);
    router_ = std::make_unique<routing::Router>(cfg_, *color_state_);
    shared_ = std::make_unique<worker::Shared>(cfg_, *router_);
    for (Color c : kColors) {
        const auto& ups = cfg_.group(c).upstreams;
        for (std::size_t i = 0; i < ups.size(); ++i) {
            const auto ep = upstream_endpoint(ups[i], resolver, c);
            endpoints[index(c)].push_back(ep);
            if (ep.port() == 0) {
                router_->upstream(c, i).healthy.store(false);
            }
        }
    }
    try {
        shared_->access_log = make_access_logger(cfg_.log.access);
    } catch (const std::exception& e) {
        throw StartupError("log.access " + cfg_.log.access + ": " + e.what());
    }

    const unsigned n = cfg_.worker_count();
    for (unsigned i = 0; i < n; ++i) {
        workers_.push_back(std::make_unique<worker::Worker>(*shared_, i, endpoints));
    }

    // Binds one listening address on every worker. With port 0 the first bind
    // picks the port and the others join it.
    auto bind_all = [&](const config::HostPort& hp, routing::Audience audience, const char* what) {
        auto ep = resolve(workers_.front()->context(), hp, what);
        for (auto& w : workers_) {
            auto acceptor = bind_listener(w->context(), ep, what);
            ep.port(acceptor.local_endpoint().port());
            w->add_listener(std::move(acceptor), audience);
        }
        return ep.port();
    };
    for (const auto& hp : cfg_.listen) {
        listen_ports_.push_back(bind_all(hp, routing::Audience::Live, "listen"));
    }
    if (cfg_.preview) {
        preview_port_ = bind_all(*cfg_.preview, routing::Audience::Preview, "preview");
    }

    std::vector<worker::Worker*> worker_ptrs;
    for (auto& w : workers_) {
        worker_ptrs.push_back(w.get());
    }
    switcher_ = std::make_unique<control::Switcher>(cfg_, endpoints, *color_state_, store_,
                                                    std::move(initial), std::move(worker_ptrs));
    routes_ = std::make_unique<admin::Routes>(cfg_, *switcher_, *router_, *shared_);
    control_ = std::make_unique<asio::io_context>(1);
    health_ = std::make_unique<health::HealthChecker>(
        cfg_, *router_, endpoints, std::move(resolver),
        [this](Color c, std::size_t i, const tcp::endpoint& ep) {
            for (auto& w : workers_) {
                w->set_endpoint(c, i, ep);
            }
        });
    try {
        admin_ = std::make_unique<admin::AdminServer>(*control_, cfg_, *routes_);
    } catch (const std::exception& e) {
        throw StartupError(e.what());
    }
    if (cfg_.admin.token.empty()) {
        log().warn(
            "admin API on {} has no token: every endpoint but /healthz and /metrics "
            "answers 401",
            cfg_.admin.address.to_string());
    }
}

Server::~Server() {
    if (!threads_.empty()) {
        shutdown();
        wait();
    }
}

std::uint16_t Server::admin_port() const {
    return admin_->port();
}

void Server::start() {
    health_->start(control_->get_executor());
    admin_->start();
    housekeeping_ = std::make_unique<Housekeeping>(*control_);
    asio::co_spawn(*control_, housekeep(housekeeping_->timer, shared_->shutting_down),
                   [](std::exception_ptr e) {
                       if (e) {
                           log().error("housekeeping ended by an exception");
                       }
                   });
    control_thread_ = std::thread([this] {
        auto guard = asio::make_work_guard(*control_);
        try {
            control_->run();
        } catch (const std::exception& e) {
            log().critical("control thread stopped by an exception: {}", e.what());
            std::abort();
        }
    });
    for (auto& w : workers_) {
        threads_.emplace_back([worker = w.get()] {
            try {
                worker->run();
            } catch (const std::exception& e) {
                log().critical("worker {} stopped by an exception: {}", worker->id(), e.what());
                std::abort();
            }
        });
    }
}

void Server::shutdown() {
    if (shared_->shutting_down.exchange(true)) {
        return;
    }
    log().info("shutting down: no new connections, in-flight requests get up to {}",
               format_duration(cfg_.timeouts.shutdown));
    asio::post(*control_, [this] {
        switcher_->stop();
        admin_->stop();
        health_->stop();
        if (housekeeping_) {
            housekeeping_->timer.cancel();
        }
    });
    for (auto& w : workers_) {
        w->begin_shutdown();
    }
    deadline_thread_ = std::thread([this] {
        // Shortly before the deadline, streams still running are ended cleanly
        // (terminating chunk) rather than cut; at the deadline the rest is cut.
        const auto total = cfg_.timeouts.shutdown;
        const auto margin = std::min<Duration>(std::chrono::seconds(1), total / 10);
        std::unique_lock lock(mutex_);
        if (stopped_cv_.wait_for(lock, total - margin, [this] { return stopped_; })) {
            return;
        }
        for (auto& w : workers_) {
            w->close_all_now();
        }
        if (!stopped_cv_.wait_for(lock, margin, [this] { return stopped_; })) {
            log().warn("timeouts.shutdown reached: closing what is still open");
            for (auto& w : workers_) {
                w->force_stop();
            }
        }
    });
}

void Server::wait() {
    for (auto& t : threads_) {
        if (t.joinable()) {
            t.join();
        }
    }
    {
        std::lock_guard lock(mutex_);
        stopped_ = true;
    }
    stopped_cv_.notify_all();
    if (deadline_thread_.joinable()) {
        deadline_thread_.join();
    }
    if (control_thread_.joinable()) {
        // A caller waiting on a switch gets its answer before the control
        // thread stops, and nothing commits after this point.
        std::promise<void> answered;
        asio::post(*control_, [this, &answered] {
            switcher_->stop();
            admin_->answer_in_flight_with_503();
            answered.set_value();
        });
        answered.get_future().wait_for(std::chrono::seconds(5));
        control_->stop();
        control_thread_.join();
    }
    if (shared_->access_log) {
        shared_->access_log->flush();
    }
}

}  // namespace bgs
