#include "proxy/drain/drain_manager.hpp"

#include <algorithm>

namespace bgs::drain {

void DrainManager::start(Color color, TimePoint now, Duration timeout, Duration spread) {
    start(Target{color, 0}, now, timeout, spread);
}

void DrainManager::start_upstream(Color color, std::uint64_t upstream, TimePoint now,
                                  Duration timeout, Duration spread) {
    start(Target{color, upstream}, now, timeout, spread);
}

void DrainManager::start(Target target, TimePoint now, Duration timeout, Duration spread) {
    std::erase_if(drains_, [&](const Running& d) { return d.target == target; });
    drains_.emplace_back(target, DrainSchedule(now, timeout, spread));
}

bool DrainManager::cancel(Color color) {
    return std::erase_if(drains_, [&](const Running& d) {
               return d.target == Target{color, 0};
           }) > 0;
}

void DrainManager::cancel_all() {
    drains_.clear();
}

void DrainManager::start_shutdown(TimePoint now, Duration spread) {
    drains_.clear();
    for (Color c : kColors) {
        drains_.emplace_back(Target{c, 0}, DrainSchedule(now, spread, spread));
        drains_.back().reason = StopReason::ShutdownDeadline;
    }
}

bool DrainManager::draining(Color color) const {
    return std::any_of(drains_.begin(), drains_.end(), [&](const Running& d) {
        return d.target == Target{color, 0};
    });
}

bool DrainManager::closable(const TrackedSession& s, Target target) {
    const auto a = s.activity();
    return s.color() == target.color && !s.drain_signalled() &&
           (target.upstream == 0 || s.upstream() == target.upstream) &&
           (a == Activity::Upgraded || a == Activity::Stream);
}

std::size_t DrainManager::count_closable(Target target) {
    std::size_t n = 0;
    registry_.for_each([&](TrackedSession& s) { n += closable(s, target) ? 1 : 0; });
    return n;
}

std::size_t DrainManager::close_some(Target target, StopReason reason, std::size_t most) {
    std::size_t closed = 0;
    registry_.for_each([&](TrackedSession& s) {
        if (closed < most && closable(s, target)) {
            s.stop(reason);  // marks it drain_signalled: not closable again
            ++closed;
        }
    });
    return closed;
}

bool DrainManager::advance(Running& d, TimePoint now, Step& step) {
    auto wake_at = [&](TimePoint t) { step.next = step.next ? std::min(*step.next, t) : t; };
    if (now >= d.schedule.deadline()) {
        close_some(d.target, d.reason, SIZE_MAX);
        return true;
    }
    if (now < d.schedule.close_from()) {
        wake_at(d.schedule.close_from());
        return false;
    }
    if (!d.spreading) {
        // The spread covers what is open when it begins; what opens later
        // is closed at the deadline.
        d.spreading = true;
        d.total = count_closable(d.target);
    }
    const auto due = d.schedule.due_by(now, d.total);
    if (d.closed < due) {
        d.closed += close_some(d.target, d.reason, due - d.closed);
    }
    if (d.closed < due) {
        d.closed = d.total;  // the rest ended by themselves
    }
    wake_at(d.schedule.next_due(d.closed, d.total));
    return false;
}

DrainManager::Step DrainManager::run_due(TimePoint now) {
    Step step;
    std::erase_if(drains_, [&](Running& d) {
        const bool ended = advance(d, now, step);
        if (ended && d.target.upstream == 0) {
            step.finished[index(d.target.color)] = true;
        }
        return ended;
    });
    return step;
}

}  // namespace bgs::drain
