// The proxy assembled: configuration -> durable state -> router -> workers and
// their listeners, plus the control thread (health checks, switches, drains, the
// admin endpoint). The composition root: the only unit that sees both proxy/
// and admin/. Constructed and driven from the main thread; shutdown() may be
// called from any thread.
#pragma once

#include "proxy/common/name_resolver.hpp"
#include "proxy/config/config.hpp"
#include "proxy/control/reload.hpp"
#include "proxy/net/tls.hpp"
#include "proxy/routing/color_state.hpp"
#include "proxy/routing/router.hpp"
#include "proxy/state/state_store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <variant>
#include <vector>

namespace bgs::worker {
class Worker;
struct Shared;
}  // namespace bgs::worker
namespace bgs::control {
class Switcher;
class UpstreamDirectory;
class Observer;
class Fleet;
}  // namespace bgs::control
namespace bgs::health {
class HealthChecker;
}
namespace bgs::admin {
class Routes;
class AdminServer;
}  // namespace bgs::admin
namespace spdlog {
class logger;
}
namespace boost::asio {
class io_context;
}

namespace bgs {

/// Thrown by the Server's constructor when it cannot start (an address in use,
/// an upstream name that does not resolve, an unwritable access log, a state
/// file that cannot be read or written).
class StartupError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A listener's TLS context, its certificates and keys read now (at start,
/// at every reload, and by check-config), expired or expiring ones logged;
/// null for plain TCP. Every problem, prefixed with `where`, otherwise.
std::variant<std::shared_ptr<const net::tls::ServerContext>, std::vector<std::string>>
load_listener_tls(const std::optional<config::ListenerTls>& tls, const std::string& where);

/// TLS to a color's upstreams, its files read now; null for plain TCP.
std::variant<std::shared_ptr<const net::tls::ClientContext>, std::vector<std::string>>
load_upstream_tls(const config::ColorGroup& group, Color color);

class Server {
  public:
    /// Loads the state file (its color and its upstream lists win over the
    /// configuration's; in fleet mode a newer record in Redis wins over both,
    /// and Redis unreachable leaves the state file's), resolves every name and binds every listener
    /// and the admin endpoint (port 0 picks a free port). An upstream name that does not resolve is
    /// not fatal: it is tried again every resolver.refresh through `resolver`. `config_file`: where
    /// a reload reads the configuration again (empty: reloads are refused). Throws StartupError.
    explicit Server(config::Config cfg, NameResolver resolver = resolve_with_system,
                    std::string config_file = "");
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Starts the worker threads and the control thread; returns at once.
    void start();
    /// Begins a graceful shutdown: stop accepting, finish in-flight requests
    /// within timeouts.shutdown, then stop. Idempotent; any thread.
    void shutdown();
    /// Blocks until every thread has stopped.
    void wait();

    /// Re-reads the configuration file (SIGHUP): the outcome is logged, each
    /// problem on a line of its own. Returns at once; any thread.
    void reload_in_background(std::string source);

    /// Upgrades in place (SIGUSR2): starts the binary now at this one's path
    /// with its arguments, listening sockets and state-file lock. Once it
    /// serves, this process signals itself SIGTERM and shuts down; if it
    /// fails, this one goes on serving. Returns at once; any thread.
    void upgrade_in_background(std::string source);
    /// The process this one handed over to, once it serves (0 before).
    int successor_pid() const { return successor_pid_.load(); }
    /// How long a new process may take to report that it serves.
    static constexpr std::chrono::seconds kUpgradeReadyTimeout{30};

    /// The bound ports of the `listen` entries, in order.
    const std::vector<std::uint16_t>& listen_ports() const { return listen_ports_; }
    std::optional<std::uint16_t> preview_port() const { return preview_port_; }
    std::uint16_t admin_port() const;

    /// The configuration as started. Changed by reloads, on the control thread.
    const config::Config& config() const { return cfg_; }
    /// The color served now, and where it came from at start (state file or
    /// configuration), in words for the start-up log.
    Color active() const { return color_state_->load().active; }
    const std::string& active_source() const { return active_source_; }
    routing::ColorState& color_state() { return *color_state_; }
    routing::Router& router() { return *router_; }
    worker::Shared& shared() { return *shared_; }

  private:
    /// What a reload does, on the control thread: validate, prepare what
    /// can fail, then apply.
    control::ReloadOutcome reload(const std::string& source);  // counted in the metrics
    control::ReloadOutcome reload_once(const std::string& source);
    /// The upgrade itself, on the control thread: the new process's PID, or
    /// why none was started.
    std::variant<int, std::string> upgrade(const std::string& source);
    void adopt_fleet_record(state::SwitchState& initial);
    struct Bound;
    struct ListenerSpec;
    struct PreparedReload;
    static std::vector<ListenerSpec> listeners_of(const config::Config& cfg);
    PreparedReload prepare_reload(const config::Config& next);
    void apply_reload(config::Config next, PreparedReload prep,
                      std::vector<Color>& lists_from_file);
    /// Binds `hp` on every worker's context (not yet accepting).
    Bound bind_everywhere(const config::HostPort& hp, const char* what);

    config::Config cfg_;
    std::string config_file_;
    std::vector<int> inherited_fds_;  // sockets systemd passed, until start-up claims them
    state::StateStore store_;
    std::string active_source_;
    std::unique_ptr<routing::ColorState> color_state_;
    std::unique_ptr<routing::Router> router_;
    std::unique_ptr<worker::Shared> shared_;
    std::shared_ptr<spdlog::logger> access_log_;  // null when off; replaced by reloads
    std::vector<std::unique_ptr<worker::Worker>> workers_;
    std::unique_ptr<control::Switcher> switcher_;
    std::unique_ptr<admin::Routes> routes_;
    // Declared after what the control thread's coroutines refer to, and before
    // the objects that own I/O objects on it, so destruction runs safely.
    std::unique_ptr<boost::asio::io_context> control_;
    std::unique_ptr<health::HealthChecker> health_;
    std::unique_ptr<control::UpstreamDirectory> directory_;
    std::unique_ptr<control::Observer> observer_;
    std::unique_ptr<control::Fleet> fleet_;  // fleet mode only
    std::unique_ptr<admin::AdminServer> admin_;
    struct Housekeeping;  // the control thread's periodic chores
    std::unique_ptr<Housekeeping> housekeeping_;

    std::vector<std::thread> threads_;
    std::thread control_thread_;
    std::vector<std::uint16_t> listen_ports_;
    std::optional<std::uint16_t> preview_port_;

    std::mutex mutex_;
    std::condition_variable stopped_cv_;
    bool stopped_ = false;
    std::thread deadline_thread_;
    bool upgrading_ = false;  // control thread
    std::thread upgrade_thread_;
    std::atomic<int> successor_pid_{0};
};

}  // namespace bgs
