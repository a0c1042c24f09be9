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
class Fleet;

struct SwitchRequest {
    bool rollback = false;
    std::optional<Color> to;  // required unless rollback
    std::optional<Duration> drain_timeout;
    bool dry_run = false;
    bool skip_smoke = false;  // rollback only
    std::string reason;
    std::optional<std::uint64_t> expect_version;
    std::string source;                  // the caller's address, for the history
    std::optional<Duration> observe;     // switch only: instead of switch.observe
    bool automatic = false;              // an observation's own rollback
    std::optional<Duration> wait_fleet;  // fleet mode: answer once the fleet applied it
    /// POST /v1/canary: the share of new sessions for `to` (0 ends the canary).
    /// With `automatic`, the observation's rollback of a canary.
    std::optional<unsigned> canary;
};

/// A color's upstream list set through the API.
struct UpstreamsRequest {
    Color color = Color::Blue;
    std::vector<config::HostPort> upstreams;
    std::string reason;
    std::optional<std::uint64_t> expect_version;
    std::string source;
    std::optional<Duration> wait_fleet;
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
    BackendUnavailable,  // fleet mode: Redis did not take the change
    Canary,              // a canary's share was set
    CanaryEnded,         // ... set to 0, or rolled back
    NoCanary,            // nothing to end
    CanaryOnActive,      // a canary to the color that is already active
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
    std::string error;  // PersistFailed, BackendUnavailable: why
    /// Switched with an observation: when it ends.
    std::optional<std::chrono::system_clock::time_point> observe_until;
    /// Canary results and a switch that completed a canary: its share after
    /// the call.
    std::optional<unsigned> percent;
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
    net::Task<SwitchOutcome> set_upstreams(UpstreamsRequest req);

    /// Fleet mode: changes commit through `fleet` (a compare-and-set on the
    /// version in Redis) instead of the state file alone.
    void set_fleet(Fleet* fleet, std::string node) {
        fleet_ = fleet;
        node_ = std::move(node);
    }
    /// Fleet mode: a newer version of the fleet's record, committed by any
    /// instance, applied here: color, drains, upstream lists, history, and the
    /// local state file (the restart fallback).
    void apply_fleet(state::SwitchState remote);

    /// Keeps a reload in the history; `from_file` are the colors whose list
    /// the reloaded file replaced (an API list of theirs no longer wins at
    /// start). The error when the state file could not be written. In fleet
    /// mode a reload is this instance's own: it goes to the local file only,
    /// and the fleet's next version replaces that history.
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
    /// Switches run again (an upgrade that did not happen).
    void resume() { stopping_ = false; }

  private:
    struct CommitFailure {
        Result result;
        std::uint64_t current_version = 0;
        std::string error;
    };
    /// Makes `next` the state of record on `expected`: the fleet's
    /// compare-and-set and then the local file in fleet mode, the state file
    /// alone otherwise.
    net::Task<std::optional<CommitFailure>> commit(const state::SwitchState& next,
                                                   std::uint64_t expected);
    SwitchOutcome failed(SwitchOutcome out, const CommitFailure& f);
    static std::string describe(const CommitFailure& f);
    SwitchOutcome finish(SwitchOutcome out);
    void start_drain(Color color, Duration timeout);
    void cancel_drain(Color color);
    /// Makes state_ what the workers route by (color, version, canary).
    void publish();
    net::Task<SwitchOutcome> canary(SwitchRequest req);
    /// Fleet mode with Redis away: no change the fleet would not see (dry
    /// runs still run). Sets `out` and returns true then.
    bool backend_down(SwitchOutcome& out, bool dry_run) const;
    /// The gates on out.to (its names asked again first); false when the
    /// change stops here (out.result says why: shutting down, or the version
    /// moved meanwhile).
    net::Task<bool> pass_gates(SwitchOutcome& out, bool with_smoke, const char* action,
                               std::uint64_t base_version);
    /// Sets the canary's share to 0: by percent 0, a rollback, or the
    /// observation's rollback. The canary's color drains.
    net::Task<SwitchOutcome> end_canary(SwitchRequest req, SwitchOutcome out);
    /// The history event of a change requested by `req`, before its result.
    state::HistoryEvent event_for(const SwitchRequest& req, const SwitchOutcome& out,
                                  const char* action) const;
    /// Gate failures and dry runs: kept in the history without a new version.
    net::Task<SwitchOutcome> refused(SwitchOutcome out, state::HistoryEvent event,
                                     std::uint64_t base_version, const char* action);

    const config::Config& cfg_;
    UpstreamDirectory& upstreams_;
    Observer* observer_ = nullptr;
    Fleet* fleet_ = nullptr;
    std::string node_;
    bool committing_ = false;  // a compare-and-set of ours is on its way
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
