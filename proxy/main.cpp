// The bgswitch binary: command-line parsing and the composition of the server
// for `run` and `demo`. Exceptions end here.
#include "admin/cli/client_commands.hpp"
#include "proxy/common/logging.hpp"
#include "proxy/common/random.hpp"
#include "proxy/common/systemd.hpp"
#include "proxy/common/upgrade.hpp"
#include "proxy/config/loader.hpp"
#include "proxy/demo/demo_config.hpp"
#include "proxy/demo/demo_upstream.hpp"
#include "proxy/server.hpp"

#include <openssl/opensslv.h>
#include <CLI/CLI.hpp>
#include <boost/version.hpp>

#include <netdb.h>
#include <sys/resource.h>
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

namespace {

using namespace bgs;

// SPEC 1's exit codes, defined once with the client commands.
using admin::cli::kExitOk;
using admin::cli::kExitRefused;
using admin::cli::kExitUsage;

void print_problems(const std::string& source, const std::vector<std::string>& errors) {
    std::cerr << "bgswitch: " << source << ": " << errors.size()
              << (errors.size() == 1 ? " problem" : " problems") << ":\n";
    for (const auto& e : errors) {
        std::cerr << "  " << e << "\n";
    }
}

// Blocks SIGINT, SIGTERM, SIGHUP and SIGUSR2 in every thread (the workers inherit the
// mask) so that only the main thread's sigwait sees them. A write to a closed
// socket must never kill the process: SIGPIPE is ignored.
sigset_t block_stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return set;
}

// A proxy holds two descriptors per proxied connection: take the hard limit
// rather than a shell's default of 1024 (as nginx's worker_rlimit_nofile).
void raise_descriptor_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        const auto before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &lim) == 0) {
            log().debug("descriptor limit raised from {} to {}", before, lim.rlim_cur);
        }
    }
}

// The monotonic clock in microseconds, as systemd wants it with RELOADING=1.
std::string monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::to_string(static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000);
}

int serve_until_signal(Server& server, const sigset_t& signals) {
    server.start();
    systemd::notify("READY=1\nSTATUS=serving");
    upgrade::report_ready();  // to the process before, when an upgrade started this one
    int sig = 0;
    for (;;) {
        sigwait(&signals, &sig);
        if (sig == SIGUSR2) {
            // As nginx and HAProxy: the binary now at this one's path takes over.
            log().info("received SIGUSR2: upgrading in place");
            server.upgrade_in_background("SIGUSR2");
            continue;
        }
        if (sig != SIGHUP) {
            break;
        }
        systemd::notify("RELOADING=1\nMONOTONIC_USEC=" + monotonic_usec());
        // As nginx and HAProxy do, and what logrotate sends: re-read the
        // configuration (and reopen the access log).
        log().info("received SIGHUP: reloading the configuration");
        server.reload_in_background("SIGHUP");
    }
    if (server.successor_pid() != 0) {
        log().info("handed over to pid {}: stopping", server.successor_pid());
    } else {
        log().info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    systemd::notify("STOPPING=1");
    server.shutdown();
    server.wait();
    log().info("stopped");
    return kExitOk;
}

int cmd_run(const std::string& path) {
    const auto signals = block_stop_signals();
    auto loaded = config::load_config_file(path);
    if (!loaded.config) {
        print_problems(path, loaded.errors);
        return kExitRefused;
    }
    init_logging(loaded.config->log.level);
    raise_descriptor_limit();
    try {
        Server server(std::move(*loaded.config), resolve_with_system, path);
        std::string ports;
        for (auto p : server.listen_ports()) {
            ports += (ports.empty() ? "" : ", ") + std::to_string(p);
        }
        log().info("bgswitch {} serving on port {} with {} workers, active color {} ({})",
                   BGSWITCH_VERSION, ports, server.config().worker_count(),
                   to_string(server.active()), server.active_source());
        return serve_until_signal(server, signals);
    } catch (const StartupError& e) {
        log().error("cannot start: {}", e.what());
        return kExitRefused;
    }
}

int cmd_check_config(const std::string& path) {
    auto loaded = config::load_config_file(path);
    if (!loaded.config) {
        print_problems(path, loaded.errors);
        return kExitRefused;
    }
    // A name that does not resolve here and now is not an error in the file
    // (the container may not be started yet), but the operator should know.
    const auto& cfg = *loaded.config;
    for (Color c : kColors) {
        const auto& ups = cfg.group(c).upstreams;
        for (std::size_t i = 0; i < ups.size(); ++i) {
            addrinfo hints{};
            hints.ai_socktype = SOCK_STREAM;
            addrinfo* res = nullptr;
            if (const int rc = ::getaddrinfo(ups[i].host.c_str(), nullptr, &hints, &res); rc != 0) {
                std::cerr << "bgswitch: warning: colors." << to_string(c) << ".upstreams[" << i
                          << "]: \"" << ups[i].to_string() << "\" does not resolve now ("
                          << ::gai_strerror(rc)
                          << "); bgswitch run starts without it and tries it again every "
                             "resolver.refresh\n";
            } else {
                ::freeaddrinfo(res);
            }
        }
    }
    // Every certificate and key loads, and each pair matches (an expired
    // certificate is logged, not refused).
    std::vector<std::string> tls_problems;
    const auto collect = [&](auto result) {
        if (auto* problems = std::get_if<std::vector<std::string>>(&result)) {
            tls_problems.insert(tls_problems.end(), problems->begin(), problems->end());
        }
    };
    for (std::size_t i = 0; i < cfg.listen.size(); ++i) {
        collect(load_listener_tls(cfg.tls_of_listen(i), "listen[" + std::to_string(i) + "].tls"));
    }
    collect(load_listener_tls(cfg.preview_tls, "preview.tls"));
    for (Color c : kColors) {
        collect(load_upstream_tls(cfg.group(c), c));
    }
    if (!tls_problems.empty()) {
        print_problems(path, tls_problems);
        return kExitRefused;
    }
    std::cout << "bgswitch: configuration " << path << " is valid\n";
    return kExitOk;
}

// How a user runs this binary from a shell: "bgswitch" when the PATH finds this
// very file, else its absolute path (a build tree's binary is not installed).
std::string cli_path() {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) {
        return "bgswitch";
    }
    if (const char* path = std::getenv("PATH")) {
        std::string_view rest(path);
        while (!rest.empty()) {
            const auto colon = rest.find(':');
            const auto dir = rest.substr(0, colon);
            rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
            if (dir.empty()) {
                continue;
            }
            const auto candidate = std::filesystem::path(dir) / "bgswitch";
            if (std::filesystem::equivalent(candidate, self, ec)) {
                return "bgswitch";
            }
        }
    }
    return self.string();
}

struct DemoOptions {
    std::string listen = "127.0.0.1:8080";
    std::string admin = "127.0.0.1:9901";
    std::uint16_t blue_port = 0;
    std::uint16_t green_port = 0;
};

struct DemoUpstreamOptions {
    std::string color = "blue";
    std::string listen = "127.0.0.1:8080";
    std::string version;
    std::string behaviour = "ok";
};

// One demo application on its own: what the deploy kit starts as a color
// (compose's app-blue/app-green, the deploy script's tests).
int cmd_demo_upstream(const DemoUpstreamOptions& opt) {
    const auto signals = block_stop_signals();
    init_logging("info");
    std::string why;
    const auto address = config::HostPort::parse(opt.listen, &why);
    if (!address) {
        std::cerr << "bgswitch: --listen " << opt.listen << ": " << why << "\n";
        return kExitUsage;
    }
    const auto behaviour = opt.behaviour == "unhealthy" ? demo::Behaviour::Unhealthy
                           : opt.behaviour == "failing" ? demo::Behaviour::Failing
                                                        : demo::Behaviour::Ok;
    try {
        demo::DemoUpstream app(*parse_color(opt.color),
                               address->host == "localhost" ? "127.0.0.1" : address->host,
                               address->port, std::chrono::seconds(1), behaviour, opt.version);
        log().info("demo upstream {} {} ({}) on {}:{}", opt.color, opt.version, opt.behaviour,
                   address->host, app.port());
        int sig = 0;
        do {
            sigwait(&signals, &sig);
        } while (sig == SIGHUP);
        return kExitOk;
    } catch (const std::exception& e) {
        log().error("demo upstream cannot start: {}", e.what());
        return kExitUsage;
    }
}

int cmd_demo(const DemoOptions& opt) {
    const auto signals = block_stop_signals();
    init_logging("info");
    raise_descriptor_limit();
    try {
        demo::DemoUpstream blue(Color::Blue, "127.0.0.1", opt.blue_port);
        demo::DemoUpstream green(Color::Green, "127.0.0.1", opt.green_port);

        const auto state_dir = std::filesystem::temp_directory_path() /
                               ("bgswitch-demo-" + std::to_string(::getuid()));
        std::filesystem::create_directories(state_dir);
        // Every demo starts from blue: its state is a playground, not a deployment.
        std::filesystem::remove(state_dir / "state.json");
        const std::map<std::string, std::string> values{
            {"DEMO_LISTEN", opt.listen},
            {"DEMO_ADMIN", opt.admin},
            {"DEMO_TOKEN", make_secret_hex(16)},
            {"DEMO_BLUE", "127.0.0.1:" + std::to_string(blue.port())},
            {"DEMO_GREEN", "127.0.0.1:" + std::to_string(green.port())},
            {"DEMO_STATE", (state_dir / "state.json").string()},
        };
        auto env = [&](const std::string& name) -> std::optional<std::string> {
            if (auto it = values.find(name); it != values.end()) {
                return it->second;
            }
            return config::process_env(name);
        };
        auto loaded = config::load_config_text(demo::kDemoConfigYaml, "demo.yaml", env);
        if (!loaded.config) {
            print_problems("demo configuration", loaded.errors);
            return kExitUsage;
        }
        Server server(std::move(*loaded.config));
        const auto& cfg = server.config();
        const auto proxy =
            cfg.listen.front().host + ":" + std::to_string(server.listen_ports().front());
        const auto admin = cfg.admin.address.host + ":" + std::to_string(server.admin_port());
        const std::string flag = admin == "127.0.0.1:9901" ? "" : " --admin http://" + admin;
        const std::string cli = cli_path();
        std::cout
            << "\n"
            << "  bgswitch demo is running.\n\n"
            << "  proxy   http://" << proxy << "/      (active color: blue)\n"
            << "  blue    http://" << values.at("DEMO_BLUE") << "/\n"
            << "  green   http://" << values.at("DEMO_GREEN") << "/\n"
            << "  admin   http://" << admin << "/      (the on-call page; it asks for the token)\n"
            << "  admin token: " << values.at("DEMO_TOKEN") << "\n\n"
            << "  Try:\n"
            << "    curl -i http://" << proxy << "/color\n"
            << "    curl -N http://" << proxy << "/events          # an SSE stream\n"
            << "    open http://" << proxy << "/ in a browser      # the page names its color\n"
            << "    WebSocket echo at ws://" << proxy << "/ws\n\n"
            << "  Then move traffic; streams and WebSockets open on blue keep going for 30s:\n"
            << "    export BGSWITCH_ADMIN_TOKEN=" << values.at("DEMO_TOKEN") << "\n"
            << "    " << cli << " status" << flag << "\n"
            << "    " << cli << " switch green --dry-run" << flag << "\n"
            << "    " << cli << " switch green --reason 'first deploy'" << flag << "\n"
            << "    " << cli << " rollback" << flag << "\n"
            << "    " << cli << " canary green 20" << flag
            << "      # a share of new sessions first\n"
            << "    " << cli << " history" << flag << "\n\n"
            << "  Press Ctrl-C to stop.\n\n"
            << std::flush;
        return serve_until_signal(server, signals);
    } catch (const std::exception& e) {
        log().error("demo cannot start: {}", e.what());
        return kExitUsage;
    }
}

std::string version_text() {
    std::ostringstream out;
    out << "bgswitch " << BGSWITCH_VERSION;
    if (std::string_view(BGSWITCH_COMMIT).size() > 0) {
        out << " (commit " << BGSWITCH_COMMIT << ")";
    }
    out << "\nbuild: " << BGSWITCH_BUILD_TYPE << ", " << __VERSION__ << ", C++" << __cplusplus
        << "\nlibraries: Boost " << BOOST_VERSION / 100000 << "." << BOOST_VERSION / 100 % 1000
        << ", " << OPENSSL_VERSION_TEXT;
    return out.str();
}

int cmd_version() {
    std::cout << version_text() << "\n";
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    upgrade::remember_arguments(argc, argv);
    CLI::App app{"bgswitch: a blue-green traffic switcher and reverse proxy"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "help for every command");
    app.set_version_flag("--version", version_text(), "print version and build information");

    std::string run_config;
    auto* run = app.add_subcommand("run", "run the proxy and its admin endpoint in the foreground");
    run->add_option("-c,--config", run_config, "configuration file (YAML)")->required();

    std::string check_file;
    auto* check = app.add_subcommand(
        "check-config", "validate a configuration: exit 0, or print every problem and exit 1");
    check->add_option("file", check_file, "configuration file (YAML)")->required();

    DemoOptions demo_opt;
    auto* demo = app.add_subcommand(
        "demo", "run the proxy in front of two built-in upstreams, blue and green");
    demo->add_option("--listen", demo_opt.listen, "proxy address")->capture_default_str();
    demo->add_option("--admin", demo_opt.admin, "admin address")->capture_default_str();
    demo->add_option("--blue-port", demo_opt.blue_port, "blue upstream port (0: any free)");
    demo->add_option("--green-port", demo_opt.green_port, "green upstream port (0: any free)");

    DemoUpstreamOptions demo_up;
    auto* demo_upstream = app.add_subcommand(
        "demo-upstream", "run one demo application (a color's app, for the deploy kit)");
    demo_upstream->add_option("--color", demo_up.color, "blue or green")
        ->check(CLI::IsMember({"blue", "green"}))
        ->capture_default_str();
    demo_upstream->add_option("--listen", demo_up.listen, "address (host:port)")
        ->capture_default_str();
    demo_upstream->add_option("--version", demo_up.version, "a version label shown on /color");
    demo_upstream
        ->add_option("--behaviour", demo_up.behaviour,
                     "ok, unhealthy (/health answers 503) or failing (requests answer 500)")
        ->check(CLI::IsMember({"ok", "unhealthy", "failing"}))
        ->capture_default_str();

    auto* version = app.add_subcommand("version", "print version and build information");

    admin::cli::ClientOptions client;
    if (const char* t = std::getenv("BGSWITCH_ADMIN_TOKEN")) {
        client.token = t;
    }
    if (const char* a = std::getenv("BGSWITCH_ADMIN"); a != nullptr && *a != '\0') {
        client.admin_url = a;
    }
    auto add_client_options = [&](CLI::App* cmd) {
        cmd->add_option("--admin", client.admin_url, "admin API URL (default: $BGSWITCH_ADMIN)")
            ->capture_default_str();
        cmd->add_option("--token", client.token, "admin token (default: $BGSWITCH_ADMIN_TOKEN)");
        cmd->add_flag("--json", client.json, "print the raw JSON answer");
    };
    auto* status =
        app.add_subcommand("status", "show colors, upstream health, connections and drains");
    add_client_options(status);

    admin::cli::SwitchOptions sw;
    auto add_switch_options = [&](CLI::App* cmd) {
        cmd->add_option("--drain-timeout", sw.drain_timeout,
                        "how long old-color WebSockets and streams may live on (e.g. 30s)");
        cmd->add_flag("--dry-run", sw.dry_run, "run the gates only; do not switch");
        cmd->add_option("--reason", sw.reason, "kept in the history");
        cmd->add_option("--expect-version", sw.expect_version,
                        "refuse unless the current state version is this one");
        cmd->add_option("--wait-fleet", sw.wait_fleet,
                        "fleet mode: wait this long (e.g. 5s) for every instance to apply it; "
                        "exit 1 when one lagged");
    };
    auto* switch_cmd = app.add_subcommand(
        "switch", "switch traffic to COLOR after its health and smoke checks pass");
    switch_cmd->add_option("color", sw.color, "blue or green")
        ->required()
        ->check(CLI::IsMember({"blue", "green"}));
    switch_cmd->add_option("--observe", sw.observe,
                           "watch the new color this long and roll back on its own if it "
                           "fails (e.g. 3m; default: switch.observe)");
    switch_cmd->add_flag("--wait", sw.wait,
                         "return when the observation ends: exit 0 ok, 1 rolled back");
    add_switch_options(switch_cmd);
    add_client_options(switch_cmd);
    auto* rollback_cmd = app.add_subcommand("rollback", "switch back to the previous color");
    add_switch_options(rollback_cmd);
    rollback_cmd->add_flag("--skip-smoke", sw.skip_smoke, "run the health gate only");
    add_client_options(rollback_cmd);
    admin::cli::CanaryOptions can;
    auto* canary_cmd = app.add_subcommand(
        "canary",
        "send PERCENT of new sessions to COLOR after its gates pass (0 ends the canary), or "
        "step through --steps");
    std::vector<std::string> canary_args;
    canary_cmd
        ->add_option("COLOR PERCENT", canary_args,
                     "COLOR blue or green (default: the idle color), PERCENT "
                     "0 to 100")
        ->type_name("");
    auto* steps_opt = canary_cmd
                          ->add_option("--steps", can.steps,
                                       "percents to step through, e.g. 1,10,50,100 (100 switches)")
                          ->delimiter(',')
                          ->check(CLI::Range(1u, 100u));
    canary_cmd
        ->add_option("--interval", can.interval,
                     "with --steps: how long each step is observed before the next (default 2m)")
        ->needs(steps_opt);
    canary_cmd
        ->add_option("--observe", can.observe,
                     "watch the canary's share this long; a failing share ends the canary")
        ->excludes(steps_opt);
    canary_cmd->add_option("--drain-timeout", can.drain_timeout,
                           "when it ends: how long the canary's WebSockets and streams live on");
    canary_cmd->add_flag("--dry-run", can.dry_run, "run the gates only");
    canary_cmd->add_option("--reason", can.reason, "kept in the history");
    canary_cmd->add_option("--expect-version", can.expect_version,
                           "refuse unless the current state version is this one");
    canary_cmd->add_option("--wait-fleet", can.wait_fleet,
                           "fleet mode: wait this long for every instance to apply each step");
    add_client_options(canary_cmd);
    auto* history_cmd = app.add_subcommand("history", "recent switches and rollbacks");
    add_client_options(history_cmd);

    admin::cli::UpstreamsOptions ups;
    auto* upstreams_cmd =
        app.add_subcommand("upstreams", "show a color's upstreams, or set them (upstreams set)");
    upstreams_cmd->add_option("color", ups.color, "blue or green (default: both)")
        ->check(CLI::IsMember({"blue", "green"}));
    add_client_options(upstreams_cmd);
    auto* upstreams_set = upstreams_cmd->add_subcommand(
        "set",
        "replace COLOR's upstreams with ADDR... (host:port; names resolve to every address)");
    upstreams_set->add_option("color", ups.color, "blue or green")
        ->required()
        ->check(CLI::IsMember({"blue", "green"}));
    upstreams_set->add_option("addresses", ups.upstreams, "host:port ...")->required();
    upstreams_set->add_option("--reason", ups.reason, "kept in the history");
    upstreams_set->add_option("--expect-version", ups.expect_version,
                              "refuse unless the current state version is this one");
    upstreams_set->add_option("--wait-fleet", ups.wait_fleet,
                              "fleet mode: wait this long (e.g. 5s) for every instance to apply "
                              "it; exit 1 when one lagged");
    add_client_options(upstreams_set);
    auto* reload_cmd =
        app.add_subcommand("reload", "make the proxy re-read its configuration file");
    add_client_options(reload_cmd);
    auto* fleet_cmd = app.add_subcommand(
        "fleet", "fleet mode: every instance, the version it applied and its heartbeat");
    add_client_options(fleet_cmd);
    auto* upgrade_cmd = app.add_subcommand(
        "upgrade",
        "start the binary now installed in the running proxy's place, handing it the "
        "listening sockets; the old process then shuts down gracefully");
    add_client_options(upgrade_cmd);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? kExitOk : kExitUsage;
    }

    int rc = kExitUsage;
    if (run->parsed()) {
        rc = cmd_run(run_config);
    } else if (check->parsed()) {
        rc = cmd_check_config(check_file);
    } else if (demo->parsed()) {
        rc = cmd_demo(demo_opt);
    } else if (demo_upstream->parsed()) {
        rc = cmd_demo_upstream(demo_up);
    } else if (version->parsed()) {
        rc = cmd_version();
    } else if (status->parsed()) {
        rc = admin::cli::status(client);
    } else if (switch_cmd->parsed()) {
        rc = admin::cli::switch_color(client, sw);
    } else if (rollback_cmd->parsed()) {
        rc = admin::cli::rollback(client, sw);
    } else if (canary_cmd->parsed()) {
        if (const auto problem = admin::cli::take_canary_args(canary_args, can)) {
            std::cerr << "bgswitch canary: " << *problem << "\n";
            return kExitUsage;
        }
        rc = admin::cli::canary(client, can);
    } else if (history_cmd->parsed()) {
        rc = admin::cli::history(client);
    } else if (upstreams_set->parsed()) {
        rc = admin::cli::set_upstreams(client, ups);
    } else if (upstreams_cmd->parsed()) {
        rc = admin::cli::show_upstreams(client, ups);
    } else if (reload_cmd->parsed()) {
        rc = admin::cli::reload(client);
    } else if (fleet_cmd->parsed()) {
        rc = admin::cli::fleet(client);
    } else if (upgrade_cmd->parsed()) {
        rc = admin::cli::upgrade(client);
    }
    shutdown_logging();
    return rc;
}
