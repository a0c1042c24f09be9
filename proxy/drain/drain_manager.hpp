// The drain policy of one worker, in one place: which connections a drain
// covers, when each of them is told to close (the deadline, the close spread),
// a rollback's cancel, and what ends a drain. No I/O and no clock of its own:
// the worker's driver passes the time in and waits until the time it is given
// back, so the whole policy runs on simulated time in tests. Worker thread only.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/drain/drain_schedule.hpp"
#include "proxy/drain/session_registry.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace bgs::drain {

class DrainManager {
  public:
    explicit DrainManager(SessionRegistry& registry) : registry_(registry) {}

    /// Starts draining `color` at `now`: its WebSockets, streams and other
    /// tunnels are closed over the last `spread` of `timeout`, and whatever is
    /// left at the deadline then. Plain requests are never closed by a drain.
    /// Replaces a drain of `color` already running.
    void start(Color color, TimePoint now, Duration timeout, Duration spread);

    /// Starts draining the connections to one upstream (routing::Upstream::id)
    /// of `color` that left its list, on the same terms. A rollback does not
    /// cancel it: the address is gone either way.
    void start_upstream(Color color, std::uint64_t upstream, TimePoint now, Duration timeout,
                        Duration spread);

    /// Ends a drain of `color` (a rollback to it): its connections are kept.
    /// True when one was running.
    bool cancel(Color color);

    /// Forgets every drain (shutdown has its own ending).
    void cancel_all();

    /// A shutdown with switch.close_spread: every color's WebSockets and
    /// streams are closed evenly over `spread` from `now`, as ends of the
    /// shutdown (reason ShutdownDeadline: 1001, the terminating chunk).
    void start_shutdown(TimePoint now, Duration spread);

    bool draining(Color color) const;

    struct Step {
        std::optional<TimePoint> next;   // when to call run_due again; none while no drain runs
        std::array<bool, 2> finished{};  // by color: its drain ended at this call
    };

    /// Tells every connection whose close is due at `now` to stop (reason
    /// Drain), ends the drains whose deadline has passed, and says when the
    /// next close falls due.
    Step run_due(TimePoint now);

  private:
    /// What a drain covers: the connections of a color, or of one upstream of it.
    struct Target {
        Color color = Color::Blue;
        std::uint64_t upstream = 0;  // 0: the whole color
        bool operator==(const Target&) const = default;
    };
    struct Running {
        Running(Target t, DrainSchedule s) : target(t), schedule(s) {}
        Target target;
        DrainSchedule schedule;
        bool spreading = false;  // the spread began and `total` was counted
        std::size_t total = 0;   // connections to close over the spread
        std::size_t closed = 0;  // of those, closed so far
        StopReason reason = StopReason::Drain;
    };

    void start(Target target, TimePoint now, Duration timeout, Duration spread);
    /// Advances one drain; true when it ended at this call.
    bool advance(Running& d, TimePoint now, Step& step);
    static bool closable(const TrackedSession& s, Target target);
    std::size_t count_closable(Target target);
    /// Stops up to `most` closable sessions in one walk of the registry (a
    /// drain of n connections is one pass at its deadline, not n).
    std::size_t close_some(Target target, StopReason reason, std::size_t most);

    SessionRegistry& registry_;
    std::vector<Running> drains_;  // a few at most
};

}  // namespace bgs::drain
