#include "proxy/drain/drain_schedule.hpp"

#include <algorithm>

namespace bgs::drain {

DrainSchedule::DrainSchedule(TimePoint start, Duration timeout, Duration spread) {
    timeout = std::clamp(timeout, Duration{0}, kMaxDuration);
    spread = std::clamp(spread, Duration{0}, timeout);
    deadline_ = start + timeout;
    close_from_ = deadline_ - spread;
}

std::size_t DrainSchedule::due_by(TimePoint now, std::size_t total) const {
    if (now >= deadline_) {
        return total;
    }
    if (now < close_from_ || total == 0) {
        return 0;
    }
    // i is due when i * window <= (now - close_from) * total; count those i.
    const auto window = (deadline_ - close_from_).count();
    const auto elapsed = (now - close_from_).count();
    const auto due = static_cast<std::size_t>(static_cast<long double>(elapsed) *
                                              static_cast<long double>(total) / window) +
                     1;
    return std::min(due, total);
}

TimePoint DrainSchedule::next_due(std::size_t closed, std::size_t total) const {
    if (closed >= total) {
        return deadline_;
    }
    const auto window = deadline_ - close_from_;
    // Rounded up, so that due_by() at this time counts the close as due.
    const auto at = close_from_ + std::chrono::ceil<TimePoint::duration>(
                                      window * static_cast<long double>(closed) /
                                      static_cast<long double>(total));
    return std::min(at, deadline_);
}

}  // namespace bgs::drain
