// The observation's arithmetic on synthetic samples: windows by difference,
// the p99 from the fine histogram, verdicts and their words. No clock, no
// sockets.
#include "proxy/control/observer.hpp"

#include <gtest/gtest.h>

namespace bgs::control {
namespace {

using namespace std::chrono_literals;
using Totals = metrics::Metrics::Totals;
const ObserveWindow::TimePoint t0{std::chrono::hours(1)};

// Adds `n` requests, `errors` of them 5xx, each lasting `seconds` (timed).
void add(Totals& t, std::uint64_t n, std::uint64_t errors, double seconds) {
    t.requests += n;
    t.errors += errors;
    const auto& edges = metrics::Metrics::fine_edges();
    const auto at = std::lower_bound(edges.begin(), edges.end(), seconds) - edges.begin();
    t.timed[static_cast<std::size_t>(at)] += n;
}

config::AutoRollback limits() {
    config::AutoRollback a;
    a.max_error_ratio = 0.05;
    a.max_p99 = 800ms;
    a.window = 30s;
    a.min_requests = 50;
    return a;
}

TEST(ObserveWindowTest, FiguresAreTheDifferenceAcrossTheWindow) {
    ObserveWindow w;
    Totals t;
    add(t, 1000, 500, 0.002);  // before the window: forgotten
    w.add(t0, t, 30s);
    for (int s = 1; s <= 40; ++s) {
        add(t, 100, 1, 0.010);
        w.add(t0 + std::chrono::seconds(s), t, 30s);
    }
    const auto f = w.figures(30s);
    EXPECT_EQ(f.span, 30s);
    EXPECT_EQ(f.requests, 3000u);
    EXPECT_EQ(f.errors, 30u);
    EXPECT_DOUBLE_EQ(f.error_ratio, 0.01);
    ASSERT_TRUE(f.p99_ms);
    // Within the bucket that holds 10 ms: at most 25 % off.
    EXPECT_GT(*f.p99_ms, 9.0);
    EXPECT_LE(*f.p99_ms, 12.5);
    EXPECT_EQ(judge(f, limits()), Verdict::Ok);
}

TEST(ObserveWindowTest, TwoSlowRequestsInAHundredSetTheP99) {
    ObserveWindow w;
    Totals t;
    w.add(t0, t, 30s);
    add(t, 980, 0, 0.005);
    add(t, 20, 0, 2.0);  // the slowest 2 %
    w.add(t0 + 1s, t, 30s);
    const auto f = w.figures(30s);
    ASSERT_TRUE(f.p99_ms);
    EXPECT_GT(*f.p99_ms, 1500.0);
    EXPECT_LE(*f.p99_ms, 2500.0);
    EXPECT_EQ(judge(f, limits()), Verdict::Failing);
    EXPECT_EQ(describe(f, limits()).rfind("p99 ", 0), 0u) << describe(f, limits());
}

TEST(ObserveWindowTest, VerdictsAndTheirWords) {
    ObserveWindow w;
    Totals t;
    w.add(t0, t, 30s);
    add(t, 40, 40, 0.001);
    w.add(t0 + 10s, t, 30s);
    // Every request failed, but too few to judge: never a rollback.
    EXPECT_EQ(judge(w.figures(30s), limits()), Verdict::Inconclusive);

    add(t, 3360, 372, 0.001);
    w.add(t0 + 30s, t, 30s);
    const auto f = w.figures(30s);
    EXPECT_EQ(judge(f, limits()), Verdict::Failing);
    EXPECT_EQ(describe(f, limits()), "5xx ratio 0.12 > 0.05 over 30s (412 of 3400 requests)");
}

TEST(ObserveWindowTest, NoTimedRequestMeansNoP99) {
    ObserveWindow w;
    Totals t;
    w.add(t0, t, 30s);
    t.requests += 100;  // streams only: counted, not timed
    w.add(t0 + 1s, t, 30s);
    const auto f = w.figures(30s);
    EXPECT_EQ(f.requests, 100u);
    EXPECT_FALSE(f.p99_ms);
    EXPECT_EQ(judge(f, limits()), Verdict::Ok);
    EXPECT_EQ(ObserveWindow{}.figures(30s).requests, 0u);  // no samples, no figures
}

}  // namespace
}  // namespace bgs::control
