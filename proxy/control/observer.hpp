// The watch after a switch (SPEC section 10): for switch.observe the new
// color's own figures are judged over a sliding window, and crossing a
// threshold over a full window rolls back on its own. The figures are the
// workers' cumulative counters (metrics::Metrics::totals), sampled once a
// second on the control thread and differenced: the request path does no
// more than the increments it always did. Control thread only.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/metrics/metrics.hpp"
#include "proxy/net/http_io.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

namespace bgs::control {

class Switcher;

enum class Verdict { Ok, Inconclusive, Failing };
const char* to_string(Verdict v);

/// One window's figures.
struct ObserveFigures {
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;  // 5xx
    double error_ratio = 0;
    std::optional<double> p99_ms;  // none without a timed request
    Duration span{};               // how much time the window covers
};

/// Cumulative samples in, windows out. Pure: the caller passes the time.
class ObserveWindow {
  public:
    using TimePoint = std::chrono::steady_clock::time_point;

    /// Adds a sample taken at `t`; samples older than `keep` before it go
    /// (but the newest of those, the base of a window of `keep`).
    void add(TimePoint t, const metrics::Metrics::Totals& totals, Duration keep);
    /// The figures from the newest sample at or before `window` ago (the
    /// oldest while there is none) to the newest. Empty before two samples.
    ObserveFigures figures(Duration window) const;
    void clear() { samples_.clear(); }

  private:
    std::deque<std::pair<TimePoint, metrics::Metrics::Totals>> samples_;
};

/// ok, inconclusive (fewer than min_requests: never a rollback) or failing.
Verdict judge(const ObserveFigures& f, const config::AutoRollback& limits);

/// The figures in words, naming the threshold crossed when failing, over
/// the configured window: "5xx ratio 0.12 > 0.05 over 30s (412 of 3400 requests)".
std::string describe(const ObserveFigures& f, const config::AutoRollback& limits);

/// What the status shows of an observation, running or ended.
struct ObservationView {
    Color color = Color::Blue;
    /// A canary's share is judged; a failing one ends the canary.
    bool canary = false;
    Verdict verdict = Verdict::Inconclusive;
    ObserveFigures figures;
    std::chrono::system_clock::time_point ends_at;
    /// Once ended: ok, inconclusive, failing (a rollback was refused),
    /// rolled_back, stopped or ended_by_switch.
    std::string result;
    std::string note;  // why a rollback did not happen, when it did not
};

class Observer {
  public:
    /// `cfg` is read at every tick (a reload may change it in place).
    Observer(const config::Config& cfg, const metrics::Metrics& metrics, Switcher& switcher);

    void start(const net::asio::any_io_executor& ex);
    void stop();

    /// A switch to `color` (or a canary step to it) committed: an observation
    /// of `length` begins (none with a zero length). Ends the one running, if
    /// any.
    void begin(Color color, Duration length, bool canary = false);
    /// Ends the running observation with `result`; false when none ran.
    bool end(const std::string& result);

    bool running() const { return current_.has_value(); }
    const std::optional<ObservationView>& current() const { return current_; }
    const std::optional<ObservationView>& last() const { return last_; }
    std::uint64_t auto_rollbacks() const { return auto_rollbacks_; }
    /// For the metric: 0 none, 1 ok, 2 inconclusive, 3 failing.
    int state_number() const;

  private:
    net::Task<void> run();
    /// One sample and judgement; true when a rollback is due.
    bool tick(std::chrono::steady_clock::time_point now);
    net::Task<void> roll_back();

    const config::Config& cfg_;
    const metrics::Metrics& metrics_;
    Switcher& switcher_;
    std::unique_ptr<net::asio::steady_timer> timer_;
    bool stopping_ = false;

    std::optional<ObservationView> current_;
    std::optional<ObservationView> last_;
    ObserveWindow window_;
    std::chrono::steady_clock::time_point started_{};
    std::chrono::steady_clock::time_point ends_{};
    std::chrono::steady_clock::time_point next_try_{};  // a refused rollback is tried again then
    bool rolling_back_ = false;
    std::uint64_t auto_rollbacks_ = 0;
};

}  // namespace bgs::control
