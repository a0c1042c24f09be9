// The bgswitch binary: command-line parsing and the composition of the server
// for `run` and `demo`. Exceptions end here.
#include "proxy/common/logging.hpp"
#include "proxy/common/random.hpp"
#include "proxy/config/loader.hpp"
#include "proxy/demo/demo_config.hpp"
#include "proxy/demo/demo_upstream.hpp"
#include "proxy/server.hpp"

#include <openssl/opensslv.h>
#include <CLI/CLI.hpp>
#include <boost/version.hpp>

#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

namespace {

using namespace bgs;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;

void print_problems(const std::string& source, const std::vector<std::string>& errors) {
    std::cerr << "bgswitch: " << source << ": " << errors.size()
              << (errors.size() == 1 ? " problem" : " problems") << ":\n";
    for (const auto& e : errors) {
        std::cerr << "  " << e << "\n";
    }
}

// Blocks SIGINT and SIGTERM in every thread (the workers inherit the mask) so
// that only the main thread's sigwait sees them.
sigset_t block_stop_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    return set;
}

int serve_until_signal(Server& server, const sigset_t& signals) {
    server.start();
    int sig = 0;
    sigwait(&signals, &sig);
    log().info("received {}, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
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
    try {
        Server server(std::move(*loaded.config));
        std::string ports;
        for (auto p : server.listen_ports()) {
            ports += (ports.empty() ? "" : ", ") + std::to_string(p);
        }
        log().info("bgswitch {} serving on port {} with {} workers, active color {}",
                   BGSWITCH_VERSION, ports, server.config().worker_count(),
                   to_string(server.config().active));
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
    std::cout << "bgswitch: configuration " << path << " is valid\n";
    return kExitOk;
}

struct DemoOptions {
    std::string listen = "127.0.0.1:8080";
    std::string admin = "127.0.0.1:9901";
    std::uint16_t blue_port = 0;
    std::uint16_t green_port = 0;
};

int cmd_demo(const DemoOptions& opt) {
    const auto signals = block_stop_signals();
    init_logging("info");
    try {
        demo::DemoUpstream blue(Color::Blue, "127.0.0.1", opt.blue_port);
        demo::DemoUpstream green(Color::Green, "127.0.0.1", opt.green_port);

        const auto state_dir = std::filesystem::temp_directory_path() /
                               ("bgswitch-demo-" + std::to_string(::getuid()));
        std::filesystem::create_directories(state_dir);
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
        std::cout << "\n"
                  << "  bgswitch demo is running.\n\n"
                  << "  proxy   http://" << proxy << "/      (active color: blue)\n"
                  << "  blue    http://" << values.at("DEMO_BLUE") << "/\n"
                  << "  green   http://" << values.at("DEMO_GREEN") << "/\n"
                  << "  admin token: " << values.at("DEMO_TOKEN") << "\n\n"
                  << "  Try:\n"
                  << "    curl -i http://" << proxy << "/color\n"
                  << "    curl -N http://" << proxy << "/events          # an SSE stream\n"
                  << "    open http://" << proxy
                  << "/ in a browser      # the page names its color\n"
                  << "    WebSocket echo at ws://" << proxy << "/ws\n\n"
                  << "  Press Ctrl-C to stop.\n\n"
                  << std::flush;
        return serve_until_signal(server, signals);
    } catch (const std::exception& e) {
        log().error("demo cannot start: {}", e.what());
        return kExitUsage;
    }
}

int cmd_version() {
    std::cout << "bgswitch " << BGSWITCH_VERSION << "\n"
              << "build: " << BGSWITCH_BUILD_TYPE << ", " << __VERSION__ << ", C++" << __cplusplus
              << "\n"
              << "libraries: Boost " << BOOST_VERSION / 100000 << "." << BOOST_VERSION / 100 % 1000
              << ", " << OPENSSL_VERSION_TEXT << "\n";
    return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bgswitch: a blue-green traffic switcher and reverse proxy"};
    app.require_subcommand(1);
    app.set_help_all_flag("--help-all", "help for every command");

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

    auto* version = app.add_subcommand("version", "print version and build information");

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
    } else if (version->parsed()) {
        rc = cmd_version();
    }
    shutdown_logging();
    return rc;
}
