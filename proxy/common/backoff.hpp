// How an accept loop waits after a failed accept (EMFILE, ENFILE, ENOBUFS):
// exponentially longer pauses, and one log line per interval however often it
// fails. Pure logic with the time passed in; one loop's own state.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace bgs {

class AcceptBackoff {
  public:
    using Clock = std::chrono::steady_clock;
    static constexpr auto kFirst = std::chrono::milliseconds(10);
    static constexpr auto kMax = std::chrono::seconds(1);
    static constexpr auto kLogEvery = std::chrono::seconds(60);

    struct Step {
        std::chrono::milliseconds wait;  // pause this long before accepting again
        bool log = false;                // say so now (the first failure, then once per kLogEvery)
        std::uint64_t suppressed = 0;    // failures not logged since the last line
    };

    /// An accept failed at `now`.
    Step failed(Clock::time_point now) {
        Step s;
        next_ = next_.count() == 0 ? kFirst : std::min<std::chrono::milliseconds>(next_ * 2, kMax);
        s.wait = next_;
        if (!logged_once_ || now - last_log_ >= kLogEvery) {
            s.log = true;
            s.suppressed = suppressed_;
            suppressed_ = 0;
            last_log_ = now;
            logged_once_ = true;
        } else {
            ++suppressed_;
        }
        return s;
    }

    /// An accept succeeded: the next failure starts from kFirst again.
    void succeeded() { next_ = std::chrono::milliseconds(0); }

  private:
    std::chrono::milliseconds next_{0};
    Clock::time_point last_log_{};
    bool logged_once_ = false;
    std::uint64_t suppressed_ = 0;
};

}  // namespace bgs
