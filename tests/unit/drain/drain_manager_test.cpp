// The drain policy on simulated time: a manual clock, sessions that only
// record what they were told, no sockets and no sleeps.
#include "proxy/drain/drain_manager.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace bgs::drain {
namespace {

using namespace std::chrono_literals;

// A session that records its stops.
class FakeSession final : public TrackedSession {
  public:
    FakeSession(SessionRegistry& r, Activity a, Color c) : TrackedSession(r) { set(a, c); }
    std::vector<StopReason> stops;

  protected:
    void on_stop(StopReason why) override { stops.push_back(why); }
};

struct Sessions {
    ActivityCounts counts;
    SessionRegistry registry{counts};
    std::vector<std::unique_ptr<FakeSession>> all;

    FakeSession& add(Activity a, Color c) {
        all.push_back(std::make_unique<FakeSession>(registry, a, c));
        return *all.back();
    }
    std::size_t stopped() const {
        std::size_t n = 0;
        for (const auto& s : all) {
            n += s->stops.empty() ? 0 : 1;
        }
        return n;
    }
};

const TimePoint t0{std::chrono::hours(1)};

TEST(DrainScheduleTest, SpreadArithmetic) {
    const DrainSchedule s(t0, 10s, 4s);
    EXPECT_EQ(s.deadline(), t0 + 10s);
    EXPECT_EQ(s.close_from(), t0 + 6s);
    // Four closes: at 6, 7, 8 and 9 s; all by the deadline.
    EXPECT_EQ(s.due_by(t0 + 5999ms, 4), 0u);
    EXPECT_EQ(s.due_by(t0 + 6s, 4), 1u);
    EXPECT_EQ(s.due_by(t0 + 6999ms, 4), 1u);
    EXPECT_EQ(s.due_by(t0 + 7s, 4), 2u);
    EXPECT_EQ(s.due_by(t0 + 9500ms, 4), 4u);
    EXPECT_EQ(s.due_by(t0 + 10s, 4), 4u);
    EXPECT_EQ(s.next_due(1, 4), t0 + 7s);
    EXPECT_EQ(s.next_due(3, 4), t0 + 9s);
    EXPECT_EQ(s.next_due(4, 4), t0 + 10s);
    // No spread: nothing before the deadline.
    const DrainSchedule none(t0, 10s, 0s);
    EXPECT_EQ(none.close_from(), none.deadline());
    EXPECT_EQ(none.due_by(t0 + 9999ms, 3), 0u);
    EXPECT_EQ(none.due_by(t0 + 10s, 3), 3u);
    // A spread longer than the window is the window; absurd values are clamped.
    EXPECT_EQ(DrainSchedule(t0, 2s, 5s).close_from(), t0);
    EXPECT_EQ(DrainSchedule(t0, Duration::max(), 0s).deadline(), t0 + kMaxDuration);
    EXPECT_EQ(DrainSchedule(t0, -5s, 0s).deadline(), t0);
}

TEST(DrainManagerTest, NothingClosesBeforeTheWindowAndRequestsNeverClose) {
    Sessions s;
    auto& ws = s.add(Activity::Upgraded, Color::Blue);
    auto& request = s.add(Activity::Request, Color::Blue);
    auto& idle = s.add(Activity::Idle, Color::Blue);
    DrainManager m(s.registry);
    m.start(Color::Blue, t0, 30s, 0s);
    auto step = m.run_due(t0 + 29s);
    EXPECT_EQ(step.next, t0 + 30s);
    EXPECT_EQ(s.stopped(), 0u);
    step = m.run_due(t0 + 30s);
    EXPECT_FALSE(step.next);
    EXPECT_TRUE(step.finished[index(Color::Blue)]);
    ASSERT_EQ(ws.stops.size(), 1u);
    EXPECT_EQ(ws.stops[0], StopReason::Drain);
    EXPECT_TRUE(ws.drain_signalled());
    EXPECT_TRUE(request.stops.empty());
    EXPECT_TRUE(idle.stops.empty());
    EXPECT_FALSE(m.draining(Color::Blue));
}

TEST(DrainManagerTest, ClosesAreSpreadEvenlyOverTheLastStretch) {
    Sessions s;
    for (int i = 0; i < 4; ++i) {
        s.add(i % 2 == 0 ? Activity::Upgraded : Activity::Stream, Color::Blue);
    }
    auto& other_color = s.add(Activity::Upgraded, Color::Green);
    DrainManager m(s.registry);
    m.start(Color::Blue, t0, 10s, 4s);
    EXPECT_EQ(m.run_due(t0).next, t0 + 6s);
    // Driven as the worker drives it: wake at each time it is given.
    std::vector<std::pair<TimePoint, std::size_t>> seen;
    TimePoint now = t0 + 6s;
    for (int guard = 0; guard < 10; ++guard) {
        const auto step = m.run_due(now);
        seen.emplace_back(now, s.stopped());
        if (!step.next) {
            break;
        }
        now = *step.next;
    }
    const std::vector<std::pair<TimePoint, std::size_t>> expected{
        {t0 + 6s, 1}, {t0 + 7s, 2}, {t0 + 8s, 3}, {t0 + 9s, 4}, {t0 + 10s, 4}};
    EXPECT_EQ(seen, expected);
    EXPECT_TRUE(other_color.stops.empty());
}

// What opens after the spread began is not in its count: it is closed at the
// deadline.
TEST(DrainManagerTest, LateArrivalsCloseAtTheDeadline) {
    Sessions s;
    s.add(Activity::Stream, Color::Blue);
    DrainManager m(s.registry);
    m.start(Color::Blue, t0, 10s, 10s);
    m.run_due(t0);
    EXPECT_EQ(s.stopped(), 1u);
    auto& late = s.add(Activity::Upgraded, Color::Blue);
    EXPECT_EQ(m.run_due(t0 + 5s).next, t0 + 10s);
    EXPECT_TRUE(late.stops.empty());
    m.run_due(t0 + 10s);
    EXPECT_EQ(late.stops.size(), 1u);
}

// A rollback to a draining color keeps its connections.
TEST(DrainManagerTest, CancelKeepsTheRest) {
    Sessions s;
    s.add(Activity::Upgraded, Color::Blue);
    s.add(Activity::Upgraded, Color::Blue);
    DrainManager m(s.registry);
    m.start(Color::Blue, t0, 10s, 10s);
    m.run_due(t0);
    EXPECT_EQ(s.stopped(), 1u);
    EXPECT_TRUE(m.cancel(Color::Blue));
    EXPECT_FALSE(m.cancel(Color::Blue));
    EXPECT_FALSE(m.run_due(t0 + 1h).next);
    EXPECT_EQ(s.stopped(), 1u);
}

// A second switch away from the same color restarts its window.
TEST(DrainManagerTest, StartingAgainReplacesTheWindow) {
    Sessions s;
    auto& ws = s.add(Activity::Upgraded, Color::Blue);
    DrainManager m(s.registry);
    m.start(Color::Blue, t0, 10s, 0s);
    m.start(Color::Blue, t0 + 5s, 10s, 0s);
    EXPECT_EQ(m.run_due(t0 + 10s).next, t0 + 15s);
    EXPECT_TRUE(ws.stops.empty());
    m.run_due(t0 + 15s);
    EXPECT_EQ(ws.stops.size(), 1u);
}

TEST(DrainManagerTest, BothColorsDrainIndependently) {
    Sessions s;
    auto& blue = s.add(Activity::Stream, Color::Blue);
    auto& green = s.add(Activity::Stream, Color::Green);
    DrainManager m(s.registry);
    m.start(Color::Blue, t0, 10s, 0s);
    m.start(Color::Green, t0, 20s, 0s);
    auto step = m.run_due(t0 + 10s);
    EXPECT_TRUE(step.finished[index(Color::Blue)]);
    EXPECT_FALSE(step.finished[index(Color::Green)]);
    EXPECT_EQ(step.next, t0 + 20s);
    EXPECT_EQ(blue.stops.size(), 1u);
    EXPECT_TRUE(green.stops.empty());
    m.cancel_all();
    EXPECT_FALSE(m.run_due(t0 + 1h).next);
    EXPECT_TRUE(green.stops.empty());
}

// A connection that ended by itself during the spread is not replaced by
// closing another one early.
TEST(DrainManagerTest, ConnectionsThatEndOnTheirOwnAreNotMadeUpFor) {
    Sessions s;
    s.add(Activity::Stream, Color::Blue);
    s.add(Activity::Stream, Color::Blue);
    s.add(Activity::Stream, Color::Blue);
    DrainManager m(s.registry);
    m.start(Color::Blue, t0, 9s, 9s);
    m.run_due(t0);  // the first of three
    EXPECT_EQ(s.stopped(), 1u);
    s.all[2]->set(Activity::Idle, Color::Blue);  // the third one finished
    m.run_due(t0 + 3s);                          // the second is due
    EXPECT_EQ(s.stopped(), 2u);
    EXPECT_EQ(m.run_due(t0 + 6s).next, t0 + 9s);  // nothing left to spread
}

// An address that left its color's list: only its own tunnels and streams
// are drained, at the window's deadline; the color's others stay, and a
// rollback (cancel of the color) does not bring the address back.
TEST(DrainManagerTest, AnUpstreamThatLeftDrainsOnlyItsOwnConnections) {
    Sessions s;
    auto& gone_ws = s.add(Activity::Upgraded, Color::Blue);
    gone_ws.set_upstream(7);
    auto& gone_stream = s.add(Activity::Stream, Color::Blue);
    gone_stream.set_upstream(7);
    auto& other = s.add(Activity::Upgraded, Color::Blue);
    other.set_upstream(8);
    auto& request = s.add(Activity::Request, Color::Blue);
    request.set_upstream(7);
    DrainManager m(s.registry);
    m.start_upstream(Color::Blue, 7, t0, 10s, 0s);
    EXPECT_FALSE(m.draining(Color::Blue));  // the color itself is not draining

    auto step = m.run_due(t0 + 5s);
    EXPECT_EQ(s.stopped(), 0u);  // not at once
    ASSERT_TRUE(step.next);
    EXPECT_EQ(*step.next, t0 + 10s);
    EXPECT_FALSE(m.cancel(Color::Blue));  // a rollback does not cancel it

    step = m.run_due(t0 + 10s);
    EXPECT_EQ(gone_ws.stops, (std::vector<StopReason>{StopReason::Drain}));
    EXPECT_EQ(gone_stream.stops, (std::vector<StopReason>{StopReason::Drain}));
    EXPECT_TRUE(other.stops.empty());
    EXPECT_TRUE(request.stops.empty());  // plain requests always finish
    EXPECT_FALSE(step.next);
    EXPECT_FALSE(step.finished[index(Color::Blue)]);  // no color drain ended
}

}  // namespace
}  // namespace bgs::drain
