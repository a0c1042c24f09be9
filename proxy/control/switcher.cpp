#include "proxy/control/switcher.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/control/fleet.hpp"
#include "proxy/control/observer.hpp"
#include "proxy/worker/worker.hpp"

#include <fmt/ranges.h>

namespace bgs::control {
namespace {

// Marks the switcher busy for a change's lifetime, across its awaits.
struct BusyFor {
    explicit BusyFor(bool& flag) : flag_(flag) { flag_ = true; }
    ~BusyFor() { flag_ = false; }
    BusyFor(const BusyFor&) = delete;
    BusyFor& operator=(const BusyFor&) = delete;

  private:
    bool& flag_;
};

}  // namespace

const char* to_string(Result r) {
    switch (r) {
        case Result::Switched:
            return "switched";
        case Result::Updated:
            return "updated";
        case Result::AlreadyActive:
            return "already_active";
        case Result::DryRunPassed:
            return "dry_run_passed";
        case Result::Busy:
            return "conflict";
        case Result::VersionMismatch:
            return "version_mismatch";
        case Result::NoPrevious:
            return "no_previous";
        case Result::GateFailed:
            return "gate_failed";
        case Result::PersistFailed:
            return "persist_failed";
        case Result::ShuttingDown:
            return "shutting_down";
        case Result::BackendUnavailable:
            return "backend_unavailable";
        case Result::Canary:
            return "canary";
        case Result::CanaryEnded:
            return "canary_ended";
        case Result::NoCanary:
            return "no_canary";
        case Result::CanaryOnActive:
            return "canary_on_active";
    }
    return "unknown";
}

Switcher::Switcher(const config::Config& cfg, UpstreamDirectory& upstreams,
                   routing::ColorState& colors, state::StateStore& store,
                   state::SwitchState initial, std::vector<worker::Worker*> workers)
    : cfg_(cfg),
      upstreams_(upstreams),
      colors_(colors),
      store_(store),
      state_(std::move(initial)),
      workers_(std::move(workers)) {
    for (auto r : {Result::Switched, Result::GateFailed, Result::Busy}) {
        counts_[to_string(r)] = 0;
    }
    publish();  // a canary kept in the state file routes from the start
}

void Switcher::publish() {
    const auto& c = state_.canary;
    colors_.publish(state_.active, state_.version, c ? c->percent : 0, c ? c->epoch : 0);
}

state::HistoryEvent Switcher::event_for(const SwitchRequest& req, const SwitchOutcome& out,
                                        const char* action) const {
    state::HistoryEvent event;
    event.time = std::chrono::system_clock::now();
    event.action = action;
    event.from = out.from;
    event.to = out.to;
    event.source = req.source;
    event.reason = req.reason;
    event.dry_run = req.dry_run;
    event.health_us = static_cast<std::uint64_t>(out.gates.health_ms * 1000.0);
    event.smoke_us = static_cast<std::uint64_t>(out.gates.smoke_ms * 1000.0);
    event.node = node_;
    return event;
}

net::Task<SwitchOutcome> Switcher::refused(SwitchOutcome out, state::HistoryEvent event,
                                           std::uint64_t base_version, const char* action) {
    // Failed and dry runs change no color and no version; they are kept in
    // the history (best effort: a write failure here must not hide the gate
    // result).
    out.result = out.gates.passed() ? Result::DryRunPassed : Result::GateFailed;
    if (!out.gates.passed()) {
        event.failure = health::first_failure(out.gates);
        log().warn("{} to {} refused: {}", action, bgs::to_string(out.to), event.failure);
    }
    event.result = to_string(out.result);
    event.version = state_.version;
    auto next = state_;
    next.record(event);
    if (auto failure = co_await commit(next, state_.version)) {
        log().warn("{} not kept in the history of record: {}", event.result, describe(*failure));
        if (state_.version == base_version) {
            state_.record(event);
        }
    } else {
        state_ = std::move(next);
    }
    co_return finish(out);
}

Switcher::Phase Switcher::phase() const {
    if (busy_) {
        return Phase::Switching;
    }
    return drain_deadline(Color::Blue) || drain_deadline(Color::Green) ? Phase::Draining
                                                                       : Phase::Steady;
}

std::optional<std::chrono::system_clock::time_point> Switcher::drain_deadline(Color color) const {
    const auto& d = drain_deadlines_[index(color)];
    if (d && *d > std::chrono::system_clock::now()) {
        return d;
    }
    return std::nullopt;
}

SwitchOutcome Switcher::finish(SwitchOutcome out) {
    ++counts_[to_string(out.result)];
    return out;
}

net::Task<SwitchOutcome> Switcher::run(SwitchRequest req) {
    SwitchOutcome out;
    out.from = state_.active;
    out.version = state_.version;
    if (stopping_) {
        out.result = Result::ShuttingDown;
        co_return finish(out);
    }
    if (busy_) {
        out.result = Result::Busy;
        co_return finish(out);
    }
    if (req.canary) {
        co_return co_await canary(std::move(req));
    }
    if (req.rollback && state_.canary) {
        // A rollback during a canary takes its sessions back; no color moves.
        if (req.expect_version && *req.expect_version != state_.version) {
            out.result = Result::VersionMismatch;
            co_return finish(out);
        }
        co_return co_await end_canary(std::move(req), out);
    }
    if (req.rollback) {
        if (!state_.previous) {
            out.result = Result::NoPrevious;
            co_return finish(out);
        }
        req.to = state_.previous;
    }
    out.to = *req.to;
    if (req.expect_version && *req.expect_version != state_.version) {
        out.result = Result::VersionMismatch;
        co_return finish(out);
    }
    if (out.to == out.from) {
        out.result = Result::AlreadyActive;
        co_return finish(out);
    }
    if (backend_down(out, req.dry_run)) {
        co_return finish(out);  // no switch the fleet would not see
    }
    const auto base_version = state_.version;

    // --- gates ---------------------------------------------------------------
    const BusyFor busy_for(busy_);
    const char* action = req.automatic ? "auto_rollback" : req.rollback ? "rollback" : "switch";
    log().info("{} {} -> {} requested by {}{}: running gates", action, bgs::to_string(out.from),
               bgs::to_string(out.to), req.source, req.dry_run ? " (dry run)" : "");
    const bool gated =
        co_await pass_gates(out, !(req.rollback && req.skip_smoke), action, base_version);
    if (!gated) {
        co_return finish(out);
    }

    auto event = event_for(req, out, action);
    if (!out.gates.passed() || req.dry_run) {
        co_return co_await refused(out, std::move(event), base_version, action);
    }

    // --- durable state, then the flip ----------------------------------------
    if (state_.version >= state::SwitchState::kMaxVersion) {
        out.result = Result::PersistFailed;
        out.error = "the state version is at its maximum; reset the state file";
        co_return finish(out);
    }
    const auto timeout = req.drain_timeout.value_or(cfg_.switching.drain_timeout);
    auto next = state_;
    next.previous = out.from;
    next.active = out.to;
    next.version = state_.version + 1;
    next.committed_at = std::chrono::system_clock::now();
    if (next.canary) {
        // To the canary's color: the canary is complete, every session moves.
        next.canary.reset();
        event.percent = 100;
        out.percent = 100;
    }
    event.result = to_string(Result::Switched);
    event.version = next.version;
    event.drain_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
    next.record(event);
    if (auto failure = co_await commit(next, state_.version)) {
        log().error("{} to {} failed, traffic stays on {}: {}", action, bgs::to_string(out.to),
                    bgs::to_string(out.from), describe(*failure));
        co_return finish(failed(out, *failure));
    }
    state_ = std::move(next);
    publish();
    out.version = state_.version;
    out.result = Result::Switched;
    if (observer_ != nullptr) {
        if (req.automatic) {
            observer_->end("rolled_back");
        } else if (req.rollback) {
            observer_->end("ended_by_switch");
        } else {
            observer_->begin(out.to, req.observe.value_or(cfg_.switching.observe));
            if (observer_->running()) {
                out.observe_until = observer_->current()->ends_at;
            }
        }
    }

    // --- drain the old color -------------------------------------------------
    cancel_drain(out.to);  // a rollback to a draining color keeps its connections
    start_drain(out.from, timeout);
    log().info("{}: traffic now on {} (version {}); {} drains for {}", action,
               bgs::to_string(out.to), out.version, bgs::to_string(out.from),
               format_duration(timeout));
    co_return finish(out);
}

bool Switcher::backend_down(SwitchOutcome& out, bool dry_run) const {
    if (fleet_ == nullptr || fleet_->up() || dry_run) {
        return false;
    }
    out.result = Result::BackendUnavailable;
    out.error = fleet_->error();
    return true;
}

net::Task<bool> Switcher::pass_gates(SwitchOutcome& out, bool with_smoke, const char* action,
                                     std::uint64_t base_version) {
    // The new containers may have started a moment ago: their names are
    // asked again before the gate probes what they resolve to.
    co_await upstreams_.refresh(out.to);
    const auto members = upstreams_.members(out.to);
    out.gates = co_await health::run_gates(cfg_, members, with_smoke);
    out.gates_ran = true;
    if (stopping_) {
        log().info("{} to {} abandoned after its gates: shutting down", action,
                   bgs::to_string(out.to));
        out.result = Result::ShuttingDown;
        co_return false;
    }
    if (state_.version != base_version) {
        // Another instance of the fleet committed a change meanwhile.
        out.result = Result::VersionMismatch;
        out.version = state_.version;
        co_return false;
    }
    co_return true;
}

net::Task<SwitchOutcome> Switcher::canary(SwitchRequest req) {
    SwitchOutcome out;
    out.from = state_.active;
    out.to = req.to.value_or(other(state_.active));
    out.version = state_.version;
    const unsigned percent = *req.canary;
    if (req.expect_version && *req.expect_version != state_.version) {
        out.result = Result::VersionMismatch;
        co_return finish(out);
    }
    if (percent == 0) {
        if (!state_.canary) {
            out.result = Result::NoCanary;
            out.percent = 0;
            co_return finish(out);
        }
        co_return co_await end_canary(std::move(req), out);
    }
    if (out.to == state_.active) {
        out.result = Result::CanaryOnActive;
        co_return finish(out);
    }
    if (backend_down(out, req.dry_run)) {
        co_return finish(out);
    }
    const auto base_version = state_.version;
    const BusyFor busy_for(busy_);
    log().info("canary {}% to {} requested by {}{}: running gates", percent, bgs::to_string(out.to),
               req.source, req.dry_run ? " (dry run)" : "");
    const bool gated = co_await pass_gates(out, true, "canary", base_version);
    if (!gated) {
        co_return finish(out);
    }
    auto event = event_for(req, out, "canary");
    event.percent = percent;
    if (!out.gates.passed() || req.dry_run) {
        co_return co_await refused(out, std::move(event), base_version, "canary");
    }
    if (state_.version >= state::SwitchState::kMaxVersion) {
        out.result = Result::PersistFailed;
        out.error = "the state version is at its maximum; reset the state file";
        co_return finish(out);
    }
    auto next = state_;
    next.version = state_.version + 1;
    next.committed_at = std::chrono::system_clock::now();
    if (!next.canary) {
        // A new canary: its epoch makes earlier canaries' cookies stale.
        next.canary = state::Canary{out.to, percent, next.version, *next.committed_at};
    }
    next.canary->percent = percent;
    event.result = to_string(Result::Canary);
    event.version = next.version;
    next.record(event);
    if (auto failure = co_await commit(next, state_.version)) {
        log().error("canary to {} not set: {}", bgs::to_string(out.to), describe(*failure));
        co_return finish(failed(out, *failure));
    }
    const unsigned before = state_.canary ? state_.canary->percent : 0;
    state_ = std::move(next);
    cancel_drain(out.to);  // it takes traffic again
    publish();
    out.version = state_.version;
    out.result = Result::Canary;
    out.percent = percent;
    if (observer_ != nullptr) {
        observer_->begin(out.to, req.observe.value_or(cfg_.switching.observe), /*canary=*/true);
        if (observer_->running()) {
            out.observe_until = observer_->current()->ends_at;
        }
    }
    log().info("canary: {}% of new sessions to {} (was {}%; version {})", percent,
               bgs::to_string(out.to), before, state_.version);
    co_return finish(out);
}

net::Task<SwitchOutcome> Switcher::end_canary(SwitchRequest req, SwitchOutcome out) {
    const auto canary_color = state_.canary->to;
    out.from = canary_color;
    out.to = state_.active;
    if (backend_down(out, false)) {
        co_return finish(out);
    }
    const BusyFor busy_for(busy_);
    const char* action = req.automatic ? "auto_rollback" : req.rollback ? "rollback" : "canary";
    auto event = event_for(req, out, action);
    event.dry_run = false;
    event.percent = 0;
    const auto timeout = req.drain_timeout.value_or(cfg_.switching.drain_timeout);
    event.drain_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count());
    auto next = state_;
    next.version = state_.version + 1;
    next.committed_at = event.time;
    next.canary.reset();
    event.result = to_string(Result::CanaryEnded);
    event.version = next.version;
    next.record(event);
    if (auto failure = co_await commit(next, state_.version)) {
        log().error("canary on {} not ended: {}", bgs::to_string(canary_color), describe(*failure));
        co_return finish(failed(out, *failure));
    }
    state_ = std::move(next);
    publish();
    out.version = state_.version;
    out.result = Result::CanaryEnded;
    out.percent = 0;
    if (observer_ != nullptr) {
        observer_->end(req.automatic  ? "rolled_back"
                       : req.rollback ? "ended_by_switch"
                                      : "stopped");
    }
    // Its sessions are back on the active color; its WebSockets and streams
    // end as an old color's do.
    start_drain(canary_color, timeout);
    log().info("{}: the canary on {} ended{}; every session on {} (version {}); {} drains for {}",
               action, bgs::to_string(canary_color),
               req.reason.empty() ? std::string() : " (" + req.reason + ")",
               bgs::to_string(state_.active), state_.version, bgs::to_string(canary_color),
               format_duration(timeout));
    co_return finish(out);
}

net::Task<SwitchOutcome> Switcher::set_upstreams(UpstreamsRequest req) {
    SwitchOutcome out;
    out.from = out.to = req.color;
    out.version = state_.version;
    if (stopping_) {
        out.result = Result::ShuttingDown;
        co_return out;
    }
    if (busy_) {
        out.result = Result::Busy;
        co_return out;
    }
    if (req.expect_version && *req.expect_version != state_.version) {
        out.result = Result::VersionMismatch;
        co_return out;
    }
    if (state_.version >= state::SwitchState::kMaxVersion) {
        out.result = Result::PersistFailed;
        out.error = "the state version is at its maximum; reset the state file";
        co_return out;
    }
    const BusyFor busy_for(busy_);
    std::vector<std::string> list;
    for (const auto& hp : req.upstreams) {
        list.push_back(hp.to_string());
    }
    state::HistoryEvent event;
    event.time = std::chrono::system_clock::now();
    event.action = "set_upstreams";
    event.from = event.to = req.color;
    event.result = to_string(Result::Updated);
    event.source = req.source;
    event.reason = req.reason;
    event.node = node_;
    for (const auto& hp : upstreams_.list(req.color)) {
        event.old_upstreams.push_back(hp.to_string());
    }
    event.new_upstreams = list;
    auto next = state_;
    next.version = state_.version + 1;
    next.committed_at = event.time;
    next.upstreams[index(req.color)] = list;
    event.version = next.version;
    next.record(std::move(event));
    if (auto failure = co_await commit(next, state_.version)) {
        log().error("upstreams of {} not changed: {}", bgs::to_string(req.color),
                    describe(*failure));
        co_return failed(out, *failure);
    }
    state_ = std::move(next);
    // The version moves with the state file, even though no color moved.
    publish();
    log().info("upstreams of {} set by {} to {} (version {})", bgs::to_string(req.color),
               req.source, fmt::join(list, ", "), state_.version);
    upstreams_.set_list(req.color, std::move(req.upstreams), ListSource::Api);
    out.version = state_.version;
    out.result = Result::Updated;
    co_return out;
}

net::Task<std::optional<Switcher::CommitFailure>> Switcher::commit(const state::SwitchState& next,
                                                                   std::uint64_t expected) {
    if (fleet_ == nullptr) {
        if (auto err = store_.save(next)) {
            co_return CommitFailure{Result::PersistFailed, 0, *err};
        }
        co_return std::nullopt;
    }
    if (!fleet_->up()) {
        co_return CommitFailure{Result::BackendUnavailable, 0, fleet_->error()};
    }
    committing_ = true;
    const auto cas = co_await fleet_->commit(expected, next);
    committing_ = false;
    switch (cas.result) {
        case state::CasOutcome::Result::Applied:
            break;
        case state::CasOutcome::Result::Conflict:
            co_return CommitFailure{Result::VersionMismatch, cas.current_version, ""};
        case state::CasOutcome::Result::Unavailable:
            co_return CommitFailure{Result::BackendUnavailable, 0, cas.error};
    }
    // The fleet has it; the local copy is what a restart without Redis uses.
    if (auto err = store_.save(next)) {
        log().error("fleet: version {} committed, but the local state file was not written: {}",
                    next.version, *err);
    }
    co_return std::nullopt;
}

std::string Switcher::describe(const CommitFailure& f) {
    switch (f.result) {
        case Result::VersionMismatch:
            return "the fleet's record moved on to version " + std::to_string(f.current_version);
        case Result::BackendUnavailable:
            return "the fleet's state backend: " + f.error;
        default:
            return "state file: " + f.error;
    }
}

SwitchOutcome Switcher::failed(SwitchOutcome out, const CommitFailure& f) {
    out.result = f.result;
    out.error = f.error;
    if (f.result == Result::VersionMismatch) {
        out.version = std::max(f.current_version, state_.version);
    }
    return out;
}

void Switcher::apply_fleet(state::SwitchState remote) {
    if (remote.version <= state_.version || committing_) {
        return;  // ours, or older; a version our own commit races is read again next turn
    }
    const auto old = std::exchange(state_, std::move(remote));
    for (Color c : kColors) {
        const auto& list = state_.upstreams[index(c)];
        if (list == old.upstreams[index(c)]) {
            continue;
        }
        if (!list) {
            upstreams_.set_list(c, cfg_.group(c).upstreams, ListSource::Config);
            continue;
        }
        std::vector<config::HostPort> parsed;
        for (const auto& text : *list) {
            std::string why;
            if (auto hp = config::HostPort::parse(text, &why)) {
                parsed.push_back(*hp);
            } else {
                log().error("fleet: upstreams of {} in version {}: \"{}\": {}; list not applied",
                            bgs::to_string(c), state_.version, text, why);
                parsed.clear();
                break;
            }
        }
        if (!parsed.empty()) {
            upstreams_.set_list(c, std::move(parsed), ListSource::Api);
        }
    }
    publish();
    // Traffic moved with that store: the apply is measured to here.
    std::string delay;
    if (state_.committed_at) {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::system_clock::now() - *state_.committed_at)
                            .count();
        delay = fmt::format(", {:.2f} ms after its commit", static_cast<double>(us) / 1000.0);
    }
    const state::HistoryEvent* event = nullptr;
    for (const auto& e : state_.history) {
        if (e.version == state_.version && e.result != "gate_failed" &&
            e.result != "dry_run_passed") {
            event = &e;
            break;
        }
    }
    const auto drain = event != nullptr && event->drain_ms != 0
                           ? Duration(std::chrono::milliseconds(event->drain_ms))
                           : cfg_.switching.drain_timeout;
    if (state_.active != old.active) {
        cancel_drain(state_.active);
        start_drain(old.active, drain);
        if (observer_ != nullptr && observer_->running()) {
            observer_->end("ended_by_switch");
        }
    } else if (old.canary && !state_.canary) {
        start_drain(old.canary->to, drain);  // the canary ended elsewhere
    }
    if (state_.canary) {
        cancel_drain(state_.canary->to);
    }
    if (auto err = store_.save(state_)) {
        log().error("fleet: version {} applied, but the local state file was not written: {}",
                    state_.version, *err);
    }
    log().info("fleet: applied version {} ({} through {}){}; serving {}", state_.version,
               event == nullptr
                   ? std::string("a re-seeded record")
                   : fmt::format("{} {} -> {}", event->action, bgs::to_string(event->from),
                                 bgs::to_string(event->to)),
               event == nullptr || event->node.empty() ? std::string("?") : event->node, delay,
               bgs::to_string(state_.active));
}

std::optional<std::string> Switcher::record_reload(std::vector<std::string> changed,
                                                   std::string source,
                                                   const std::vector<Color>& from_file) {
    state::HistoryEvent event;
    event.time = std::chrono::system_clock::now();
    event.action = "reload";
    event.from = event.to = state_.active;
    event.result = "reloaded";
    event.source = std::move(source);
    event.version = state_.version;
    event.changed = std::move(changed);
    event.node = node_;
    auto next = state_;
    for (Color c : from_file) {
        next.upstreams[index(c)].reset();
    }
    next.record(std::move(event));
    auto err = store_.save(next);
    if (err) {
        log().error("reload not kept in the history: state file: {}", *err);
    } else {
        state_ = std::move(next);
    }
    return err;
}

void Switcher::start_drain(Color color, Duration timeout) {
    const auto now = std::chrono::steady_clock::now();
    for (auto* w : workers_) {
        w->start_drain(color, now, timeout, cfg_.switching.close_spread);
    }
    drain_deadlines_[index(color)] =
        std::chrono::system_clock::now() +
        std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout);
}

void Switcher::cancel_drain(Color color) {
    if (drain_deadlines_[index(color)]) {
        for (auto* w : workers_) {
            w->cancel_drain(color);
        }
        drain_deadlines_[index(color)].reset();
    }
}

}  // namespace bgs::control
