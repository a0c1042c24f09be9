// The time policy of one drain, as arithmetic: when its window ends, when the
// spread of its closes begins, and how many closes are due at a given moment.
// Pure and clock-free (times are passed in), so it is tested on simulated time.
// Any thread.
#pragma once

#include "proxy/common/units.hpp"

#include <chrono>
#include <cstddef>

namespace bgs::drain {

using TimePoint = std::chrono::steady_clock::time_point;

class DrainSchedule {
  public:
    /// A drain that starts at `start` and lasts `timeout`; its closes are
    /// spread over the last `spread` of the window (0: all at the deadline).
    /// Both are clamped to [0, kMaxDuration], and spread to the timeout.
    DrainSchedule(TimePoint start, Duration timeout, Duration spread);

    TimePoint deadline() const { return deadline_; }
    /// When the spread begins (the deadline when there is none).
    TimePoint close_from() const { return close_from_; }

    /// How many of `total` connections (those open when the spread began)
    /// must be closed by `now`: the i-th (from 0) falls due at
    /// close_from + window * i / total, and all of them at the deadline.
    std::size_t due_by(TimePoint now, std::size_t total) const;

    /// When the close after the first `closed` of `total` falls due; the
    /// deadline when none is left before it.
    TimePoint next_due(std::size_t closed, std::size_t total) const;

  private:
    TimePoint deadline_;
    TimePoint close_from_;
};

}  // namespace bgs::drain
