#include "proxy/common/backoff.hpp"

#include <gtest/gtest.h>

namespace bgs {
namespace {

using namespace std::chrono_literals;

TEST(AcceptBackoffTest, WaitsDoubleUpToASecondAndStartOverAfterASuccess) {
    AcceptBackoff b;
    const AcceptBackoff::Clock::time_point t0{};
    const std::chrono::milliseconds expected[] = {10ms,  20ms,  40ms,   80ms,  160ms,
                                                  320ms, 640ms, 1000ms, 1000ms};
    for (auto want : expected) {
        EXPECT_EQ(b.failed(t0).wait, want);
    }
    b.succeeded();
    EXPECT_EQ(b.failed(t0).wait, 10ms);
}

// EMFILE once logged 40 lines a second; now one line, then one a minute that
// says how many were not logged.
TEST(AcceptBackoffTest, LogsTheFirstFailureThenOnceAMinute) {
    AcceptBackoff b;
    AcceptBackoff::Clock::time_point t{};
    EXPECT_TRUE(b.failed(t).log);
    for (int i = 0; i < 100; ++i) {
        t += 100ms;
        EXPECT_FALSE(b.failed(t).log);
    }
    t += 60s;
    const auto s = b.failed(t);
    EXPECT_TRUE(s.log);
    EXPECT_EQ(s.suppressed, 100u);
}

}  // namespace
}  // namespace bgs
