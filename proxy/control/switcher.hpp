// The switch, as a small explicit state machine run on the control thread:
//
//   steady --request--> switching (gates: fresh health probe, then smoke)
//          --gates pass--> state written durably --> active color published
//          (one atomic store) --> old color draining --> steady
//
// One switch at a time; a second one meanwhile is refused. Traffic moves only
// after the new state is on disk, so a crash never leaves traffic on a color
// the state file does not name. Control thread only.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/control/upstream_directory.hpp"
#include "proxy/health/gates.hpp"
#include "proxy/routing/color_state.hpp"
#include "proxy/state/state_store.hpp"

#include <array>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bgs::worker {
class Worker;
}

namespace bgs::control {

class Observer;

struct SwitchRequest {
    bool rollback = false;
    std::optional<Color> to;  // required unless rollback
    std::optional<Duration> drain_timeout;
    bool dry_run = false;
    bool skip_smoke = false;  // rollback only
    std::string reason;
    std::optional<std::uint64_t> expect_version;
    std::string source;               // the caller's address, for the history
    std::optional<Duration> observe;  // switch only: instead of switch.observe
    bool automatic = false;           // an observation's own rollback
};

/// A color's upstream list set through the API.
struct UpstreamsRequest {
    Color color = Color::Blue;
    std::vector<config::HostPort> upstreams;
    std::string reason;
    std::optional<std::uint64_t> expect_version;
    std::string source;
};

enum class Result {
    Switched,
    Updated,  // an upstream list was set
    AlreadyActive,
    DryRunPassed,
    Busy,
    VersionMismatch,
    NoPrevious,
    GateFailed,
    PersistFailed,
    ShuttingDown,
};

/// The name used in the API, the history and the metrics.
const char* to_string(Result r);

struct SwitchOutcome {
    Result result = Result::Busy;
    Color from = Color::Blue;
    Color to = Color::Blue;
    std::uint64_t version = 0;  // after the call
    bool gates_ran = false;
    health::GateReport gates;
    std::string error;  // PersistFailed: why
    /// Switched with an observation: when it ends.
    std::optional<std::chrono::system_clock::time_point> observe_until;
};

class Switcher {
  public:
    enum class Phase { Steady, Switching, Draining };

    Switcher(const config::Config& cfg, UpstreamDirectory& upstreams, routing::ColorState& colors,
             state::StateStore& store, state::SwitchState initial,
             std::vector<worker::Worker*> workers);

    net::Task<SwitchOutcome> run(SwitchRequest req);

    /// Sets a color's upstream list: durable (state file, version bumped,
    /// history) before the directory applies it. Busy while a switch runs.
    SwitchOutcome set_upstreams(UpstreamsRequest req);

    /// Keeps a reload in the history; `from_file` are the colors whose list
    /// the reloaded file replaced (an API list of theirs no longer wins at
    /// start). The error when the state file could not be written.
    std::optional<std::string> record_reload(std::vector<std::string> changed, std::string source,
                                             const std::vector<Color>& from_file);

    /// A switch is running (its gates or its commit).
    bool busy() const { return busy_; }

    /// The observer told of every committed switch: a switch begins an
    /// observation, any other ends the one running.
    void set_observer(Observer* observer) { observer_ = observer; }

    const state::SwitchState& state() const { return state_; }
    Phase phase() const;
    /// When `color` is draining, the end of its window.
    std::optional<std::chrono::system_clock::time_point> drain_deadline(Color color) const;
    const std::map<std::string, std::uint64_t>& counts() const { return counts_; }

    /// The process is stopping: no switch starts or commits from now on (one
    /// whose gates are running ends as ShuttingDown and changes nothing).
    void stop() { stopping_ = true; }

  private:
    SwitchOutcome finish(SwitchOutcome out);
    void start_drain(Color color, Duration timeout);
    void cancel_drain(Color color);

    const config::Config& cfg_;
    UpstreamDirectory& upstreams_;
    Observer* observer_ = nullptr;
    routing::ColorState& colors_;
    state::StateStore& store_;
    state::SwitchState state_;
    std::vector<worker::Worker*> workers_;
    bool busy_ = false;
    bool stopping_ = false;
    std::array<std::optional<std::chrono::system_clock::time_point>, 2> drain_deadlines_;
    std::map<std::string, std::uint64_t> counts_;
};

}  // namespace bgs::control
