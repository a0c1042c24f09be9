// The client commands (status, switch, rollback, history, upstreams, reload,
// fleet): they call the admin API and print readable results. Exit codes: 0
// done, 1 refused (a gate failed, a switch already running, an instance of
// the fleet lagging), 2 usage, connection or authentication error.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace bgs::admin::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;
inline constexpr int kExitUsage = 2;

struct ClientOptions {
    std::string admin_url = "http://127.0.0.1:9901";  // --admin or BGSWITCH_ADMIN
    std::string token;                                // --token or BGSWITCH_ADMIN_TOKEN
    bool json = false;                                // print the raw JSON
};

struct SwitchOptions {
    std::string color;  // empty for rollback
    std::optional<std::string> drain_timeout;
    bool dry_run = false;
    bool skip_smoke = false;
    std::string reason;
    std::optional<unsigned long long> expect_version;
    std::optional<std::string> observe;     // switch: how long to watch the new color
    bool wait = false;                      // switch: return when the observation ends
    std::optional<std::string> wait_fleet;  // fleet mode: until every instance applied it
};

struct CanaryOptions {
    std::string color;                // empty: the idle color
    std::optional<unsigned> percent;  // one step
    std::vector<unsigned> steps;      // --steps 1,10,50,100 (100: the switch)
    std::string interval = "2m";      // --interval: each step's observation
    std::optional<std::string> observe;
    std::optional<std::string> drain_timeout;
    bool dry_run = false;
    std::string reason;
    std::optional<unsigned long long> expect_version;
    std::optional<std::string> wait_fleet;
};

struct UpstreamsOptions {
    std::string color;                   // empty: both colors (show only)
    std::vector<std::string> upstreams;  // set: the new list
    std::string reason;
    std::optional<unsigned long long> expect_version;
    std::optional<std::string> wait_fleet;
};

int status(const ClientOptions& opt);
/// `bgswitch upstreams [COLOR]`: each color's list, where it came from, and
/// what every entry resolved to with its health.
int show_upstreams(const ClientOptions& opt, const UpstreamsOptions& up);
/// `bgswitch upstreams set COLOR ADDR...`.
int set_upstreams(const ClientOptions& opt, const UpstreamsOptions& up);
/// `bgswitch reload`: the proxy re-reads its configuration file.
int reload(const ClientOptions& opt);
int switch_color(const ClientOptions& opt, const SwitchOptions& sw);
int rollback(const ClientOptions& opt, const SwitchOptions& sw);
int history(const ClientOptions& opt);
/// Sorts `canary`'s positionals, `[COLOR] [PERCENT]` in either order, into
/// `c`; the problem in words when they are not one color and one percent
/// 0..100 at most, or a percent beside --steps, or neither.
std::optional<std::string> take_canary_args(const std::vector<std::string>& args, CanaryOptions& c);
/// `bgswitch canary [COLOR] PERCENT`: one step (0 ends the canary); with
/// --steps, each step is observed for --interval and the next one follows an
/// ok or inconclusive verdict; a failing one ends the canary (exit 1). A step
/// of 100 completes it with a switch. Without COLOR the canary goes to the
/// idle color (asked of /v1/status).
int canary(const ClientOptions& opt, const CanaryOptions& c);
/// `bgswitch fleet`: every instance of the fleet, its applied version and
/// heartbeat (fleet mode).
int fleet(const ClientOptions& opt);
/// `bgswitch upgrade`: the proxy starts its new binary and hands over to it.
int upgrade(const ClientOptions& opt);

}  // namespace bgs::admin::cli
