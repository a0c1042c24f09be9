#include "proxy/server.hpp"

#include "admin/admin_server.hpp"
#include "admin/routes.hpp"
#include "proxy/common/logging.hpp"
#include "proxy/common/systemd.hpp"
#include "proxy/common/upgrade.hpp"
#include "proxy/config/loader.hpp"
#include "proxy/control/fleet.hpp"
#include "proxy/control/observer.hpp"
#include "proxy/control/switcher.hpp"
#include "proxy/control/upstream_directory.hpp"
#include "proxy/health/health_checker.hpp"
#include "proxy/metrics/access_log.hpp"
#include "proxy/net/listen.hpp"
#include "proxy/net/tls.hpp"
#include "proxy/worker/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <future>
#include <map>

#include <unistd.h>

#include <fmt/ranges.h>

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

struct Server::Housekeeping {
    explicit Housekeeping(asio::io_context& ioc) : timer(ioc) {}
    asio::steady_timer timer;
};

// One listening address bound on every worker's context, not accepting yet.
struct Server::Bound {
    std::vector<tcp::acceptor> acceptors;  // one per worker, in worker order
    std::uint16_t port = 0;
};

Server::Bound Server::bind_everywhere(const config::HostPort& hp, const char* what) {
    Bound b;
    auto ep = resolve(workers_.front()->context(), hp, what);
    // Sockets passed for this address (systemd's socket activation: one; the
    // process before an upgrade: one per worker) serve every worker: each
    // gets a descriptor of its own for one of them, in turn.
    const auto fds =
        systemd::claim_fds(inherited_fds_, ep.data(), static_cast<unsigned>(ep.size()));
    if (!fds.empty()) {
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            tcp::acceptor acceptor(workers_[i]->context());
            net::error_code ec;
            acceptor.assign(ep.protocol(), ::dup(fds[i % fds.size()]), ec);
            if (ec) {
                for (int fd : fds) {
                    ::close(fd);
                }
                throw StartupError(std::string(what) + " " + hp.to_string() +
                                   ": the socket passed: " + ec.message());
            }
            b.acceptors.push_back(std::move(acceptor));
        }
        for (int fd : fds) {
            ::close(fd);
        }
        b.port = ep.port();
        log().info("{} {}: on the socket{} passed to this process", what, hp.to_string(),
                   fds.size() == 1 ? "" : "s");
        return b;
    }
    // With port 0 the first bind picks the port and the others join it.
    for (auto& w : workers_) {
        b.acceptors.push_back(bind_listener(w->context(), ep, what));
        ep.port(b.acceptors.back().local_endpoint().port());
    }
    b.port = ep.port();
    return b;
}

namespace {

std::string listener_key(const char* what, const config::HostPort& hp) {
    return std::string(what) + " " + hp.to_string();
}

// The lists the state file keeps win over the configuration's; one that no
// longer parses (edited by hand) is reported and the configuration's used.
std::optional<std::vector<config::HostPort>> saved_list(const state::SwitchState& st, Color c) {
    const auto& saved = st.upstreams[index(c)];
    if (!saved) {
        return std::nullopt;
    }
    std::vector<config::HostPort> out;
    for (const auto& text : *saved) {
        std::string why;
        auto hp = config::HostPort::parse(text, &why);
        if (!hp) {
            log().error("state file: upstreams of {}: \"{}\": {}; the configuration's list is used",
                        to_string(c), text, why);
            return std::nullopt;
        }
        out.push_back(*hp);
    }
    return out;
}

}  // namespace

// The listeners a configuration asks for, each with the key workers know it by.
struct Server::ListenerSpec {
    std::string key;
    config::HostPort address;
    routing::Audience audience;
    const char* what;
    std::optional<config::ListenerTls> tls;
};

std::vector<Server::ListenerSpec> Server::listeners_of(const config::Config& cfg) {
    std::vector<ListenerSpec> out;
    for (std::size_t i = 0; i < cfg.listen.size(); ++i) {
        const auto& hp = cfg.listen[i];
        out.push_back({listener_key("listen", hp), hp, routing::Audience::Live, "listen",
                       cfg.tls_of_listen(i)});
    }
    if (cfg.preview) {
        out.push_back({listener_key("preview", *cfg.preview), *cfg.preview,
                       routing::Audience::Preview, "preview", cfg.preview_tls});
    }
    return out;
}

std::variant<std::shared_ptr<const net::tls::ClientContext>, std::vector<std::string>>
load_upstream_tls(const config::ColorGroup& group, Color c) {
    if (!group.tls) {
        return std::shared_ptr<const net::tls::ClientContext>{};
    }
    const auto& t = *group.tls;
    auto loaded = net::tls::ClientContext::load({t.ca, t.verify, t.cert, t.key});
    if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) {
        for (auto& p : *problems) {
            p = "colors." + std::string(to_string(c)) + ".tls: " + p;
        }
        return std::move(*problems);
    }
    return std::shared_ptr<const net::tls::ClientContext>(
        std::get<std::shared_ptr<net::tls::ClientContext>>(std::move(loaded)));
}

std::variant<std::shared_ptr<const net::tls::ServerContext>, std::vector<std::string>>
load_listener_tls(const std::optional<config::ListenerTls>& tls, const std::string& key) {
    if (!tls) {
        return worker::TlsContext{};
    }
    std::vector<net::tls::CertificateFiles> files;
    for (const auto& c : tls->certificates) {
        files.push_back({c.cert, c.key});
    }
    auto loaded = net::tls::ServerContext::load(files, tls->tls13_only);
    if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) {
        for (auto& p : *problems) {
            p = key + ": " + p;
        }
        return std::move(*problems);
    }
    auto ctx = std::get<std::shared_ptr<net::tls::ServerContext>>(std::move(loaded));
    const auto now = std::chrono::system_clock::now();
    for (const auto& c : ctx->certificates()) {
        if (c.not_after < now) {
            log().error("{}: the certificate for {} expired at {}", key, c.name,
                        metrics::format_time(c.not_after));
        } else if (c.not_after < now + std::chrono::hours(24 * 14)) {
            log().warn("{}: the certificate for {} expires at {}", key, c.name,
                       metrics::format_time(c.not_after));
        }
    }
    return worker::TlsContext(std::move(ctx));
}

Server::Server(config::Config cfg, NameResolver resolver, std::string config_file)
    : cfg_(std::move(cfg)),
      config_file_(std::move(config_file)),
      inherited_fds_(systemd::take_listen_fds()),
      store_(cfg_.state_file) {
    // OpenSSL writes to its sockets without MSG_NOSIGNAL: a close_notify or a
    // record sent to a peer already gone must be an EPIPE, not the process's
    // end, wherever the server runs (bgswitch run ignores it too, earlier).
    std::signal(SIGPIPE, SIG_IGN);
    // The state file wins over `active:`; one that exists but cannot be read
    // stops the start rather than silently flipping traffic.
    std::optional<state::SwitchState> saved;
    try {
        store_.lock(upgrade::take_state_lock_fd());
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
    if (cfg_.fleet) {
        adopt_fleet_record(initial);
    }
    log().info("active color {} ({})", to_string(initial.active), active_source_);
    color_state_ = std::make_unique<routing::ColorState>(initial.active, initial.version);
    router_ = std::make_unique<routing::Router>(*color_state_);
    shared_ = std::make_unique<worker::Shared>(*router_);
    try {
        access_log_ = make_access_logger(cfg_.log.access);
    } catch (const std::exception& e) {
        throw StartupError("log.access " + cfg_.log.access + ": " + e.what());
    }

    const unsigned n = cfg_.worker_count();
    for (unsigned i = 0; i < n; ++i) {
        workers_.push_back(std::make_unique<worker::Worker>(
            *shared_, i, std::make_shared<const config::Config>(cfg_), access_log_));
    }
    for (const auto& spec : listeners_of(cfg_)) {
        auto tls = load_listener_tls(spec.tls, spec.key);
        if (auto* problems = std::get_if<std::vector<std::string>>(&tls)) {
            throw StartupError(fmt::format("{}", fmt::join(*problems, "; ")));
        }
        const auto ctx = std::get<worker::TlsContext>(tls);
        if (ctx) {
            std::lock_guard lock(shared_->tls_mutex);
            shared_->tls_listeners[spec.key] = ctx;
        }
        auto bound = bind_everywhere(spec.address, spec.what);
        for (std::size_t i = 0; i < workers_.size(); ++i) {
            workers_[i]->add_listener(spec.key, std::move(bound.acceptors[i]), spec.audience, ctx);
        }
        if (spec.audience == routing::Audience::Live) {
            listen_ports_.push_back(bound.port);
        } else {
            preview_port_ = bound.port;
        }
    }

    control_ = std::make_unique<asio::io_context>(1);
    health_ = std::make_unique<health::HealthChecker>(
        cfg_,
        [this](Color c, const routing::UpstreamPtr& up) { directory_->health_changed(c, up); });
    control::UpstreamDirectory::Hooks hooks;
    hooks.publish = [this](Color c, const routing::Members& members) {
        for (auto& w : workers_) {
            w->set_members(c, members, cfg_.switching.drain_timeout, cfg_.switching.close_spread);
        }
    };
    hooks.joined = [this](Color c, const routing::UpstreamPtr& up, bool probe_now) {
        health_->watch(c, up, probe_now);
    };
    directory_ = std::make_unique<control::UpstreamDirectory>(
        cfg_, *color_state_, std::move(resolver), std::move(hooks));
    for (Color c : kColors) {
        auto tls = load_upstream_tls(cfg_.group(c), c);
        if (auto* problems = std::get_if<std::vector<std::string>>(&tls)) {
            throw StartupError(fmt::format("{}", fmt::join(*problems, "; ")));
        }
        directory_->set_tls(c, std::get<0>(std::move(tls)),
                            cfg_.group(c).tls ? cfg_.group(c).tls->server_name : "");
    }
    for (Color c : kColors) {
        if (auto list = saved_list(initial, c)) {
            log().info("upstreams of {} from the state file (set through the API): {}",
                       to_string(c), fmt::join(*initial.upstreams[index(c)], ", "));
            directory_->load(c, std::move(*list), control::ListSource::Api);
        } else {
            directory_->load(c, cfg_.group(c).upstreams, control::ListSource::Config);
        }
    }

    std::vector<worker::Worker*> worker_ptrs;
    for (auto& w : workers_) {
        worker_ptrs.push_back(w.get());
    }
    switcher_ = std::make_unique<control::Switcher>(cfg_, *directory_, *color_state_, store_,
                                                    std::move(initial), std::move(worker_ptrs));
    observer_ = std::make_unique<control::Observer>(cfg_, shared_->metrics, *switcher_);
    switcher_->set_observer(observer_.get());
    if (cfg_.fleet) {
        control::Fleet::Hooks fleet_hooks;
        fleet_hooks.local = [this]() -> const state::SwitchState& { return switcher_->state(); };
        fleet_hooks.apply = [this](state::SwitchState s) { switcher_->apply_fleet(std::move(s)); };
        fleet_ = std::make_unique<control::Fleet>(*cfg_.fleet, std::move(fleet_hooks));
        switcher_->set_fleet(fleet_.get(), cfg_.fleet->node);
    }
    routes_ = std::make_unique<admin::Routes>(
        cfg_, *switcher_, *router_, *shared_, *directory_, *observer_,
        [this](const std::string& source) { return reload(source); }, fleet_.get(),
        [this](const std::string& source) { return upgrade(source); });
    try {
        admin_ = std::make_unique<admin::AdminServer>(*control_, cfg_, *routes_, &inherited_fds_);
    } catch (const std::exception& e) {
        throw StartupError(e.what());
    }
    for (int fd : inherited_fds_) {
        log().warn(
            "a socket passed to this process (descriptor {}) is bound to no address of "
            "the configuration; closed",
            fd);
        ::close(fd);
    }
    inherited_fds_.clear();
    if (cfg_.admin.token.empty()) {
        log().warn(
            "admin API on {} has no token: every endpoint but /healthz and /metrics "
            "answers 401",
            cfg_.admin.address.to_string());
    }
}

// Fleet mode, at start: the fleet's record wins over the local file when it
// is newer. Redis unreachable: the local file's version serves (fail static)
// and the control thread catches up once Redis answers.
void Server::adopt_fleet_record(state::SwitchState& initial) {
    const auto& fleet = *cfg_.fleet;
    auto read = control::Fleet::read_once(fleet, std::chrono::seconds(2));
    if (const auto* err = std::get_if<std::string>(&read)) {
        log().error(
            "fleet {}: Redis unreachable at start ({}); serving the local state file's version "
            "{} until it answers",
            fleet.key, *err, initial.version);
        return;
    }
    auto& record = std::get<std::optional<state::SwitchState>>(read);
    if (!record || record->version <= initial.version) {
        return;  // the control thread seeds or keeps it
    }
    initial = std::move(*record);
    if (auto err = store_.save(initial)) {
        log().error("fleet: the local state file was not written: {}", *err);
    }
    active_source_ = "from the fleet's record " + fleet.key + " in Redis, version " +
                     std::to_string(initial.version);
}

std::variant<int, std::string> Server::upgrade(const std::string& source) {
    if (shared_->shutting_down.load()) {
        return std::string("shutting down");
    }
    if (upgrading_) {
        return std::string("an upgrade is already under way");
    }
    if (switcher_->busy()) {
        return std::string("a switch is running; upgrade after it");
    }
    // From here no change commits in this process: the new one loads the
    // state file as it is now.
    switcher_->stop();
    upgrading_ = true;
    auto give_up = [&](std::string why) {
        log().error("upgrade ({}) not started: {}; this process goes on serving", source, why);
        switcher_->resume();
        upgrading_ = false;
        return why;
    };
    std::vector<int> fds;
    for (auto& w : workers_) {
        const auto mine = w->listening_fds(std::chrono::seconds(2));
        fds.insert(fds.end(), mine.begin(), mine.end());
    }
    if (admin_->listening_fd() >= 0) {
        fds.push_back(admin_->listening_fd());
    }
    auto started = upgrade::start_successor(fds, store_.lock_fd());
    if (auto* why = std::get_if<std::string>(&started)) {
        return give_up(*why);
    }
    auto successor = std::get<upgrade::Successor>(std::move(started));
    const int pid = successor.pid();
    log().info(
        "upgrade ({}): started {} as pid {} with {} listening sockets; waiting for it to "
        "serve",
        source, upgrade::binary_path(), pid, fds.size());
    if (upgrade_thread_.joinable()) {
        upgrade_thread_.join();  // an earlier attempt's, finished
    }
    upgrade_thread_ = std::thread([this, successor = std::move(successor), pid]() mutable {
        if (auto why = successor.wait_ready(kUpgradeReadyTimeout)) {
            log().error("upgrade: {}; this process (pid {}) goes on serving", *why, ::getpid());
            asio::post(*control_, [this] {
                if (!shared_->shutting_down.load()) {
                    switcher_->resume();
                }
                upgrading_ = false;
            });
            return;
        }
        log().info("upgrade: pid {} serves; this process (pid {}) stops accepting and shuts down",
                   pid, ::getpid());
        systemd::notify("MAINPID=" + std::to_string(pid) + "\nSTATUS=upgraded: pid " +
                        std::to_string(pid) + " serves");
        successor_pid_ = pid;
        ::kill(::getpid(), SIGTERM);  // the main thread's shutdown, as on SIGTERM
    });
    return pid;
}

void Server::upgrade_in_background(std::string source) {
    asio::post(*control_, [this, source = std::move(source)] { upgrade(source); });
}

void Server::reload_in_background(std::string source) {
    asio::post(*control_, [this, source = std::move(source)] {
        const auto out = reload(source);
        if (out.result == control::ReloadOutcome::Result::Busy) {
            log().warn("reload ({}) refused: a switch is running; send it again after", source);
        }
        systemd::notify(
            out.result == control::ReloadOutcome::Result::Reloaded
                ? "READY=1\nSTATUS=reloaded"
                : "READY=1\nSTATUS=reload refused; running on the previous configuration");
    });
}

// What a reload needs that can fail, obtained before anything changes.
struct Server::PreparedReload {
    std::vector<std::pair<ListenerSpec, Bound>> opened;  // listeners new in the file, bound
    std::map<std::string, worker::TlsContext> tls;       // every listener's, certificates re-read
    std::array<std::shared_ptr<const net::tls::ClientContext>, 2> upstream_tls;  // by color
    std::shared_ptr<spdlog::logger> access_log;  // reopened: logrotate moved the old one
    std::vector<std::string> problems;
};

Server::PreparedReload Server::prepare_reload(const config::Config& next) {
    PreparedReload prep;
    const auto now = listeners_of(cfg_);
    for (const auto& spec : listeners_of(next)) {
        auto tls = load_listener_tls(spec.tls, spec.key);
        if (auto* problems = std::get_if<std::vector<std::string>>(&tls)) {
            // The certificates serving now stay.
            prep.problems.insert(prep.problems.end(), problems->begin(), problems->end());
        } else {
            prep.tls[spec.key] = std::get<worker::TlsContext>(tls);
        }
    }
    for (Color c : kColors) {
        auto tls = load_upstream_tls(next.group(c), c);
        if (auto* problems = std::get_if<std::vector<std::string>>(&tls)) {
            prep.problems.insert(prep.problems.end(), problems->begin(), problems->end());
        } else {
            prep.upstream_tls[index(c)] = std::get<0>(std::move(tls));
        }
    }
    for (auto& spec : listeners_of(next)) {
        if (std::any_of(now.begin(), now.end(), [&](const auto& l) { return l.key == spec.key; })) {
            continue;
        }
        try {
            auto bound = bind_everywhere(spec.address, spec.what);
            prep.opened.emplace_back(std::move(spec), std::move(bound));
        } catch (const StartupError& e) {
            prep.problems.push_back(std::string(spec.what) + ": " + e.what());
        }
    }
    try {
        prep.access_log = make_access_logger(next.log.access);
    } catch (const std::exception& e) {
        prep.problems.push_back("log.access: " + next.log.access + ": " + e.what());
    }
    return prep;
}

void Server::apply_reload(config::Config next, PreparedReload prep,
                          std::vector<Color>& lists_from_file) {
    const config::Config old = std::exchange(cfg_, std::move(next));
    init_logging(cfg_.log.level);
    access_log_ = prep.access_log;
    for (auto& w : workers_) {
        w->update_settings(std::make_shared<const config::Config>(cfg_), access_log_);
    }
    for (auto& [spec, bound] : prep.opened) {
        for (std::size_t k = 0; k < workers_.size(); ++k) {
            workers_[k]->open_listener(spec.key, std::move(bound.acceptors[k]), spec.audience,
                                       prep.tls[spec.key]);
        }
        log().info("reload: now accepting on {} (port {})", spec.key, bound.port);
    }
    {
        // Certificates read again: new connections use them, open ones keep theirs.
        std::lock_guard lock(shared_->tls_mutex);
        shared_->tls_listeners.clear();
        for (const auto& [key, ctx] : prep.tls) {
            for (auto& w : workers_) {
                w->set_listener_tls(key, ctx);
            }
            if (ctx) {
                shared_->tls_listeners[key] = ctx;
            }
        }
    }
    const auto now = listeners_of(cfg_);
    for (const auto& spec : listeners_of(old)) {
        if (std::none_of(now.begin(), now.end(),
                         [&](const auto& l) { return l.key == spec.key; })) {
            for (auto& w : workers_) {
                w->close_listener(spec.key);
            }
            log().info("reload: no longer accepting on {}; its connections go on", spec.key);
        }
    }
    for (Color c : kColors) {
        // New connections (and probes) use the files as read now.
        directory_->set_tls(c, prep.upstream_tls[index(c)],
                            cfg_.group(c).tls ? cfg_.group(c).tls->server_name : "");
    }
    for (Color c : kColors) {
        if (old.group(c).upstreams != cfg_.group(c).upstreams) {
            if (fleet_ && switcher_->state().upstreams[index(c)]) {
                // The fleet's list, set through the API, is every instance's.
                log().warn(
                    "reload: upstreams of {} are the fleet's, set through the API; the "
                    "file's list is not applied",
                    to_string(c));
                continue;
            }
            directory_->set_list(c, cfg_.group(c).upstreams, control::ListSource::Config);
            lists_from_file.push_back(c);
        }
    }
}

control::ReloadOutcome Server::reload(const std::string& source) {
    using R = control::ReloadOutcome::Result;
    auto out = reload_once(source);
    switch (out.result) {
        case R::Reloaded:
            shared_->metrics.reloaded(0);
            break;
        case R::Invalid:
            shared_->metrics.reloaded(1);
            break;
        case R::Busy:
            shared_->metrics.reloaded(2);
            break;
        case R::ShuttingDown:
            break;
    }
    return out;
}

control::ReloadOutcome Server::reload_once(const std::string& source) {
    using R = control::ReloadOutcome::Result;
    control::ReloadOutcome out;
    if (shared_->shutting_down.load()) {
        out.result = R::ShuttingDown;
        return out;
    }
    if (switcher_->busy()) {
        out.result = R::Busy;
        return out;
    }
    auto refuse = [&](std::vector<std::string> problems) {
        log().error("reload ({}) of {} refused, nothing changed: {} problem{}", source,
                    config_file_, problems.size(), problems.size() == 1 ? "" : "s");
        for (const auto& p : problems) {
            log().error("  {}", p);
        }
        out.result = R::Invalid;
        out.problems = std::move(problems);
        return out;
    };
    if (config_file_.empty()) {
        return refuse({"this proxy was not started from a configuration file"});
    }
    auto loaded = config::load_config_file(config_file_);
    if (!loaded.config) {
        return refuse(std::move(loaded.errors));
    }
    config::Config next = std::move(*loaded.config);
    // What needs a restart stays as it is; `active:` never moves traffic.
    for (auto& key : config::changed_keys(cfg_, next)) {
        (config::needs_restart(key) ? out.restart_required : out.changed).push_back(key);
    }
    next.proxy.workers = cfg_.proxy.workers;
    next.state_file = cfg_.state_file;
    next.admin.address = cfg_.admin.address;
    next.active = cfg_.active;

    auto prep = prepare_reload(next);
    if (!prep.problems.empty()) {
        return refuse(std::move(prep.problems));  // what was bound closes here
    }
    std::vector<Color> lists_from_file;
    apply_reload(std::move(next), std::move(prep), lists_from_file);
    switcher_->record_reload(out.changed, source, lists_from_file);
    log().info("reload ({}) of {}: {}{}", source, config_file_,
               out.changed.empty() ? "nothing changed"
                                   : fmt::format("changed {}", fmt::join(out.changed, ", ")),
               out.restart_required.empty() ? ""
                                            : fmt::format("; needs a restart to apply: {}",
                                                          fmt::join(out.restart_required, ", ")));
    return out;
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
    directory_->start(control_->get_executor());
    observer_->start(control_->get_executor());
    if (fleet_) {
        fleet_->start(control_->get_executor());
    }
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
        directory_->stop();
        observer_->stop();
        if (fleet_) {
            fleet_->stop();
        }
        if (housekeeping_) {
            housekeeping_->timer.cancel();
        }
    });
    // WebSockets and streams end over switch.close_spread, within the
    // shutdown's time.
    const auto spread =
        std::min<Duration>(cfg_.switching.close_spread, cfg_.timeouts.shutdown * 8 / 10);
    for (auto& w : workers_) {
        w->begin_shutdown(spread);
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
    if (upgrade_thread_.joinable()) {
        upgrade_thread_.join();
    }
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
    if (access_log_) {
        access_log_->flush();
    }
}

}  // namespace bgs
