#include "proxy/routing/router.hpp"
#include "proxy/routing/upstream.hpp"

#include <gtest/gtest.h>

namespace bgs::routing {
namespace {

Members members_on(std::initializer_list<std::uint16_t> ports) {
    Members out;
    for (auto p : ports) {
        out.push_back(std::make_shared<Upstream>(
            config::HostPort{"127.0.0.1", p},
            boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), p), true));
    }
    return out;
}

TEST(ColorStateTest, PublishesColorAndVersionTogether) {
    ColorState s(Color::Blue, 0);
    EXPECT_EQ(s.load().active, Color::Blue);
    s.publish(Color::Green, 7);
    EXPECT_EQ(s.load().active, Color::Green);
    EXPECT_EQ(s.load().version, 7u);
}

TEST(RouterTest, LiveGoesToActivePreviewToIdle) {
    ColorState s(Color::Blue, 0);
    Router r(s);
    EXPECT_EQ(r.route(Audience::Live), Color::Blue);
    EXPECT_EQ(r.route(Audience::Preview), Color::Green);
    s.publish(Color::Green, 1);
    EXPECT_EQ(r.route(Audience::Live), Color::Green);
    EXPECT_EQ(r.route(Audience::Preview), Color::Blue);
}

TEST(PickTest, RoundRobinSkipsUnhealthy) {
    const auto m = members_on({9001, 9002, 9003});
    std::size_t cursor = 0;
    std::vector<std::size_t> picks;
    for (int i = 0; i < 6; ++i) {
        picks.push_back(*pick(m, cursor));
    }
    EXPECT_EQ(picks, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2}));
    m[1]->healthy = false;
    picks.clear();
    for (int i = 0; i < 4; ++i) {
        picks.push_back(*pick(m, cursor));
    }
    EXPECT_EQ(picks, (std::vector<std::size_t>{0, 2, 0, 2}));
}

TEST(PickTest, AllUnhealthyStillTriesAndExcludeIsHonoured) {
    const auto m = members_on({9001, 9002, 9003});
    for (const auto& u : m) {
        u->healthy = false;
    }
    std::size_t cursor = 0;
    EXPECT_EQ(pick(m, cursor), 0u);
    EXPECT_EQ(pick(m, cursor, 1), 2u);
    std::size_t green_cursor = 0;
    const auto one = members_on({9101});
    EXPECT_FALSE(pick(one, green_cursor, 0));
    EXPECT_FALSE(pick(Members{}, green_cursor));
}

TEST(UpstreamTest, NamesSayWhichAddressANameResolvedTo) {
    const Upstream literal(config::HostPort{"10.0.0.7", 8080},
                           {boost::asio::ip::make_address("10.0.0.7"), 8080}, true);
    EXPECT_EQ(literal.name, "10.0.0.7:8080");
    const Upstream named(config::HostPort{"app-green", 8080},
                         {boost::asio::ip::make_address("172.18.0.5"), 8080}, false);
    EXPECT_EQ(named.name, "app-green:8080 (172.18.0.5)");
    EXPECT_EQ(named.address, "172.18.0.5:8080");
    const Upstream v6(config::HostPort{"localhost", 80}, {boost::asio::ip::make_address("::1"), 80},
                      true);
    EXPECT_EQ(v6.address, "[::1]:80");
    EXPECT_NE(literal.id, named.id);
}

}  // namespace
}  // namespace bgs::routing
