#include "proxy/routing/canary.hpp"

#include <gtest/gtest.h>

namespace bgs::routing {
namespace {

net::FlatFields fields(std::initializer_list<std::pair<const char*, const char*>> kv) {
    net::FlatFields f;
    for (const auto& [k, v] : kv) {
        f.insert(k, v);
    }
    return f;
}

TEST(ColorStateTest, PacksTheCanarysShareWithColorAndVersion) {
    ColorState s(Color::Blue, 1);
    EXPECT_EQ(s.load().canary_percent, 0u);
    s.publish(Color::Green, (std::uint64_t{1} << 53) - 1, 100, 9);
    const auto snap = s.load();
    EXPECT_EQ(snap.active, Color::Green);
    EXPECT_EQ(snap.version, (std::uint64_t{1} << 53) - 1);
    EXPECT_EQ(snap.canary_percent, 100u);
    EXPECT_EQ(snap.canary(), Color::Blue);
    EXPECT_EQ(s.canary_epoch(), 9u);
    s.publish(Color::Blue, 3, 250);  // clamped
    EXPECT_EQ(s.load().canary_percent, 100u);
}

TEST(SessionCookieTest, FindsTheCookieAmongOthersAndFields) {
    auto c = find_session_cookie(fields({{"Cookie", "a=1; bgswitch_color=green.17;b=2"}}),
                                 "bgswitch_color");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->color, Color::Green);
    EXPECT_EQ(c->epoch, 17u);

    c = find_session_cookie(fields({{"Cookie", "a=1"}, {"cookie", " x=y ;  sess = blue "}}),
                            "sess");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->color, Color::Blue);
    EXPECT_FALSE(c->epoch);

    EXPECT_EQ(find_session_cookie(fields({{"Cookie", "s=\"green.4\""}}), "s")->epoch, 4u);
    // The name must match exactly: a prefix or suffix is another cookie.
    EXPECT_FALSE(
        find_session_cookie(fields({{"Cookie", "xbgswitch_color=green"}}), "bgswitch_color"));
    EXPECT_FALSE(find_session_cookie(fields({{"X-Cookie", "s=green"}}), "s"));
}

TEST(SessionCookieTest, MalformedValuesAreNoCookie) {
    for (const char* v :
         {"s=red", "s=", "s=green.", "s=green.x", "s=green.1.2", "s=green.99999999999999999999999",
          "s", "=green", "s=green.-1", "s=GREEN", ";;;", "s=\"green"}) {
        EXPECT_FALSE(find_session_cookie(fields({{"Cookie", v}}), "s")) << v;
    }
}

TEST(StickyBucketTest, IsStableAndSpreadsEvenly) {
    EXPECT_EQ(sticky_bucket("user-1", 5), sticky_bucket("user-1", 5));
    EXPECT_LT(sticky_bucket("", 0), 10000u);
    // A new canary (epoch) shuffles who goes first.
    int moved = 0;
    std::array<int, 10> deciles{};
    for (int i = 0; i < 10000; ++i) {
        std::string id = "u";  // not "u" + ...: a GCC 12 -Wstringop-overflow false positive
        id += std::to_string(i);
        const auto b = sticky_bucket(id, 5);
        ++deciles[b / 1000];
        moved += (b < 1000) != (sticky_bucket(id, 6) < 1000) ? 1 : 0;
    }
    for (int d : deciles) {
        EXPECT_GT(d, 850);
        EXPECT_LT(d, 1150);
    }
    EXPECT_GT(moved, 1000);
}

TEST(CanaryDecisionTest, WithoutACanaryEverythingGoesToTheActiveColor) {
    const ColorState::Snapshot snap{Color::Green, 4, 0};
    const auto d =
        decide(snap, 0, fields({{"Cookie", "bgswitch_color=blue"}}), "bgswitch_color", "", 0);
    EXPECT_EQ(d.color, Color::Green);
    EXPECT_FALSE(d.set_cookie);
}

TEST(CanaryDecisionTest, CookieHeaderOrADraw) {
    const ColorState::Snapshot snap{Color::Blue, 9, 10};
    const auto none = fields({});
    // A new session: the draw decides (bucket = draw % 10000), and the cookie is set.
    EXPECT_EQ(decide(snap, 7, none, "c", "", 999).color, Color::Green);
    EXPECT_EQ(decide(snap, 7, none, "c", "", 1000).color, Color::Blue);
    EXPECT_TRUE(decide(snap, 7, none, "c", "", 1000).set_cookie);
    // The cookie of this canary holds; another canary's does not.
    auto mine = fields({{"Cookie", "c=green.7"}});
    EXPECT_EQ(decide(snap, 7, mine, "c", "", 5000).color, Color::Green);
    EXPECT_FALSE(decide(snap, 7, mine, "c", "", 5000).set_cookie);
    auto stale = fields({{"Cookie", "c=green.6"}});
    EXPECT_EQ(decide(snap, 7, stale, "c", "", 5000).color, Color::Blue);
    EXPECT_TRUE(decide(snap, 7, stale, "c", "", 5000).set_cookie);
    // The sticky header wins over a cookie and sets none.
    auto user = fields({{"X-User", "alice"}, {"Cookie", "c=green.7"}});
    const bool alice_on_canary = sticky_bucket("alice", 7) < 1000;
    const auto d = decide(snap, 7, user, "c", "x-user", 0);
    EXPECT_EQ(d.color, alice_on_canary ? Color::Green : Color::Blue);
    EXPECT_FALSE(d.set_cookie);
}

TEST(CanaryDecisionTest, TheCookieNamesColorAndEpoch) {
    std::string out;
    append_session_cookie(out, "bgswitch_color", Color::Green, 12, false);
    EXPECT_EQ(out, "Set-Cookie: bgswitch_color=green.12; Path=/; HttpOnly; SameSite=Lax\r\n");
    out.clear();
    append_session_cookie(out, "s", Color::Blue, 18446744073709551615ULL, true);
    EXPECT_EQ(
        out, "Set-Cookie: s=blue.18446744073709551615; Path=/; HttpOnly; SameSite=Lax; Secure\r\n");
}

}  // namespace
}  // namespace bgs::routing
