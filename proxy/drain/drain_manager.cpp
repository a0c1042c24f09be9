#include "proxy/drain/drain_manager.hpp"

#include <algorithm>

namespace bgs::drain {

void DrainManager::start(Color color, TimePoint now, Duration timeout, Duration spread) {
    drains_[index(color)].emplace(DrainSchedule(now, timeout, spread));
}

bool DrainManager::cancel(Color color) {
    auto& d = drains_[index(color)];
    const bool was = d.has_value();
    d.reset();
    return was;
}

void DrainManager::cancel_all() {
    for (auto& d : drains_) {
        d.reset();
    }
}

bool DrainManager::closable(const TrackedSession& s, Color color) {
    const auto a = s.activity();
    return s.color() == color && !s.drain_signalled() &&
           (a == Activity::Upgraded || a == Activity::Stream);
}

std::size_t DrainManager::count_closable(Color color) {
    std::size_t n = 0;
    registry_.for_each([&](TrackedSession& s) { n += closable(s, color) ? 1 : 0; });
    return n;
}

bool DrainManager::close_one(Color color) {
    TrackedSession* victim = nullptr;
    registry_.for_each([&](TrackedSession& s) {
        if (victim == nullptr && closable(s, color)) {
            victim = &s;
        }
    });
    if (victim == nullptr) {
        return false;
    }
    victim->stop(StopReason::Drain);
    return true;
}

DrainManager::Step DrainManager::run_due(TimePoint now) {
    Step step;
    auto wake_at = [&](TimePoint t) { step.next = step.next ? std::min(*step.next, t) : t; };
    for (Color color : kColors) {
        auto& d = drains_[index(color)];
        if (!d) {
            continue;
        }
        if (now >= d->schedule.deadline()) {
            while (close_one(color)) {
            }
            d.reset();
            step.finished[index(color)] = true;
            continue;
        }
        if (now < d->schedule.close_from()) {
            wake_at(d->schedule.close_from());
            continue;
        }
        if (!d->spreading) {
            // The spread covers what is open when it begins; what opens later
            // is closed at the deadline.
            d->spreading = true;
            d->total = count_closable(color);
        }
        const auto due = d->schedule.due_by(now, d->total);
        while (d->closed < due && close_one(color)) {
            ++d->closed;
        }
        if (d->closed < due) {
            d->closed = d->total;  // the rest ended by themselves
        }
        wake_at(d->schedule.next_due(d->closed, d->total));
    }
    return step;
}

}  // namespace bgs::drain
