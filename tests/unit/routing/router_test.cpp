#include "proxy/routing/router.hpp"

#include <gtest/gtest.h>

namespace bgs::routing {
namespace {

config::Config two_by_three() {
    config::Config cfg;
    for (std::uint16_t p : {9001, 9002, 9003}) {
        cfg.colors[index(Color::Blue)].upstreams.push_back({"127.0.0.1", p});
    }
    cfg.colors[index(Color::Green)].upstreams.push_back({"127.0.0.1", 9101});
    return cfg;
}

TEST(ColorStateTest, PublishesColorAndVersionTogether) {
    ColorState s(Color::Blue, 0);
    EXPECT_EQ(s.load().active, Color::Blue);
    s.publish(Color::Green, 7);
    EXPECT_EQ(s.load().active, Color::Green);
    EXPECT_EQ(s.load().version, 7u);
}

TEST(RouterTest, LiveGoesToActivePreviewToIdle) {
    auto cfg = two_by_three();
    ColorState s(Color::Blue, 0);
    Router r(cfg, s);
    EXPECT_EQ(r.route(Audience::Live), Color::Blue);
    EXPECT_EQ(r.route(Audience::Preview), Color::Green);
    s.publish(Color::Green, 1);
    EXPECT_EQ(r.route(Audience::Live), Color::Green);
    EXPECT_EQ(r.route(Audience::Preview), Color::Blue);
}

TEST(RouterTest, RoundRobinSkipsUnhealthy) {
    auto cfg = two_by_three();
    ColorState s(Color::Blue, 0);
    Router r(cfg, s);
    std::size_t cursor = 0;
    std::vector<std::size_t> picks;
    for (int i = 0; i < 6; ++i) {
        picks.push_back(*r.pick(Color::Blue, cursor));
    }
    EXPECT_EQ(picks, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
    r.upstream(Color::Blue, 1).healthy = false;
    picks.clear();
    for (int i = 0; i < 4; ++i) {
        picks.push_back(*r.pick(Color::Blue, cursor));
    }
    EXPECT_EQ(picks, (std::vector<std::size_t>{0, 2, 0, 2}));
}

TEST(RouterTest, AllUnhealthyStillTriesAndExcludeIsHonoured) {
    auto cfg = two_by_three();
    ColorState s(Color::Blue, 0);
    Router r(cfg, s);
    for (std::size_t i = 0; i < 3; ++i) {
        r.upstream(Color::Blue, i).healthy = false;
    }
    std::size_t cursor = 0;
    EXPECT_EQ(r.pick(Color::Blue, cursor), 0u);
    EXPECT_EQ(r.pick(Color::Blue, cursor, 1), 2u);
    std::size_t green_cursor = 0;
    EXPECT_FALSE(r.pick(Color::Green, green_cursor, 0));
}

}  // namespace
}  // namespace bgs::routing
