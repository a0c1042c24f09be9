// The Redis client against a real redis-server on a loopback port: commands
// and every reply type, AUTH and SELECT from the URL, a Lua compare-and-set,
// publish/subscribe, and what a stalled or stopped server gives.
#include "proxy/state/redis.hpp"
#include "proxy/state/fleet_store.hpp"
#include "tests/support/redis_server.hpp"
#include "tests/support/test_net.hpp"
#include "tests/support/test_pki.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <functional>

namespace bgs::test {
namespace {

using redis::Reply;

// ASSERT_* returns, which a coroutine may not: these co_return instead.
#define CO_ASSERT_TRUE(cond)                      \
    if (!(cond)) {                                \
        ADD_FAILURE() << "expected true: " #cond; \
        co_return;                                \
    }

// Runs `body` as a coroutine on a fresh io_context until it ends. In the
// bodies, commands and URLs are named before they are awaited: GCC 12 destroys
// the temporaries of a co_await's operands twice.
void run(const std::function<net::Task<void>(net::asio::any_io_executor)>& body) {
    net::asio::io_context ioc;
    std::exception_ptr failed;
    net::asio::co_spawn(ioc, body(ioc.get_executor()), [&](std::exception_ptr e) { failed = e; });
    ioc.run();
    if (failed) {
        std::rethrow_exception(failed);
    }
}

Reply reply_of(const redis::Result& r) {
    if (const auto* err = std::get_if<std::string>(&r)) {
        ADD_FAILURE() << "not a reply: " << *err;
        return {};
    }
    return std::get<Reply>(r);
}

redis::Url url_of(const std::string& text) {
    std::string why;
    auto u = redis::Url::parse(text, &why);
    if (!u) {
        ADD_FAILURE() << text << ": " << why;
        return {};
    }
    return *u;
}

class RedisTest : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!RedisServer::available()) {
            GTEST_SKIP() << "redis-server is not installed (deploy/setup.sh installs it)";
        }
    }
};

TEST_F(RedisTest, CommandsAndEveryReplyType) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        redis::Connection c(ex);
        const auto url = url_of(server.url());
        const auto err = co_await c.connect(url, std::chrono::seconds(2));
        EXPECT_FALSE(err) << *err;
        const std::vector<std::string> set_k{"SET", "k", "a value\r\nwith CRLF"};
        auto r = reply_of(co_await c.command(set_k, 2s));
        EXPECT_EQ(r.type, Reply::Type::Status);
        EXPECT_EQ(r.str, "OK");
        const std::vector<std::string> get_k{"GET", "k"};
        r = reply_of(co_await c.command(get_k, 2s));
        EXPECT_EQ(r.type, Reply::Type::String);
        EXPECT_EQ(r.str, "a value\r\nwith CRLF");
        const std::vector<std::string> get_missing{"GET", "missing"};
        r = reply_of(co_await c.command(get_missing, 2s));
        EXPECT_EQ(r.type, Reply::Type::Nil);
        const std::vector<std::string> incr{"INCR", "n"};
        r = reply_of(co_await c.command(incr, 2s));
        EXPECT_EQ(r.type, Reply::Type::Integer);
        EXPECT_EQ(r.integer, 1);
        const std::vector<std::string> rpush{"RPUSH", "l", "x", "y"};
        r = reply_of(co_await c.command(rpush, 2s));
        const std::vector<std::string> lrange{"LRANGE", "l", "0", "-1"};
        r = reply_of(co_await c.command(lrange, 2s));
        EXPECT_EQ(r.type, Reply::Type::Array);
        CO_ASSERT_TRUE(r.elements.size() == 2u);
        EXPECT_EQ(r.elements[1].str, "y");
        const std::vector<std::string> unknown{"NOSUCHCOMMAND"};
        r = reply_of(co_await c.command(unknown, 2s));
        EXPECT_TRUE(r.is_error());
        EXPECT_TRUE(c.connected());  // an error reply leaves the connection usable
        // A large value comes back whole.
        const std::string big(1 << 20, 'b');
        const std::vector<std::string> set_big{"SET", "big", big};
        reply_of(co_await c.command(set_big, 2s));
        const std::vector<std::string> get_big{"GET", "big"};
        r = reply_of(co_await c.command(get_big, 2s));
        EXPECT_EQ(r.str.size(), big.size());
    });
}

// The fleet's compare-and-set shape: a Lua script that writes only when the
// version is the one the caller saw.
TEST_F(RedisTest, ALuaCompareAndSetLetsOneOfTwoWin) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        redis::Connection c(ex);
        const auto url = url_of(server.url());
        co_await c.connect(url, 2s);
        const std::string cas =
            "if (redis.call('HGET', KEYS[1], 'version') or '0') == ARGV[1] then "
            "redis.call('HSET', KEYS[1], 'version', ARGV[2]) return 1 else return 0 end";
        const std::vector<std::string> cas_call{"EVAL", cas, "1", "fleet", "0", "1"};
        auto first = reply_of(co_await c.command(cas_call, 2s));
        auto second = reply_of(co_await c.command(cas_call, 2s));
        EXPECT_EQ(first.integer, 1);
        EXPECT_EQ(second.integer, 0);
    });
}

TEST_F(RedisTest, PasswordAndDatabaseComeFromTheUrl) {
    RedisServer server({"--requirepass", "s3cret"});
    const auto port = std::to_string(server.port());
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        redis::Connection c(ex);
        const auto good = url_of("redis://:s3cret@127.0.0.1:" + port + "/3");
        auto err = co_await c.connect(good, 2s);
        EXPECT_FALSE(err) << *err;
        const std::vector<std::string> set_in3{"SET", "in3", "yes"};
        reply_of(co_await c.command(set_in3, 2s));
        const std::vector<std::string> select0{"SELECT", "0"};
        auto r = reply_of(co_await c.command(select0, 2s));
        const std::vector<std::string> get_in3{"GET", "in3"};
        r = reply_of(co_await c.command(get_in3, 2s));
        EXPECT_EQ(r.type, Reply::Type::Nil);  // it was written in database 3

        redis::Connection wrong(ex);
        const auto wrong_password = url_of("redis://:nope@127.0.0.1:" + port);
        err = co_await wrong.connect(wrong_password, 2s);
        CO_ASSERT_TRUE(err);
        EXPECT_NE(err->find("AUTH refused"), std::string::npos) << *err;
        EXPECT_FALSE(wrong.connected());
    });
}

TEST_F(RedisTest, PublishedMessagesReachASubscriber) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        redis::Connection sub(ex);
        redis::Connection pub(ex);
        const auto url = url_of(server.url());
        co_await sub.connect(url, 2s);
        co_await pub.connect(url, 2s);
        const std::vector<std::string> subscribe{"SUBSCRIBE", "bgswitch:shop:changed"};
        auto r = reply_of(co_await sub.command(subscribe, 2s));
        EXPECT_EQ(r.elements.at(0).str, "subscribe");
        const std::vector<std::string> publish{"PUBLISH", "bgswitch:shop:changed", "9"};
        r = reply_of(co_await pub.command(publish, 2s));
        EXPECT_EQ(r.integer, 1);
        r = reply_of(co_await sub.next_reply(2s));
        CO_ASSERT_TRUE(r.elements.size() == 3u);
        EXPECT_EQ(r.elements[0].str, "message");
        EXPECT_EQ(r.elements[1].str, "bgswitch:shop:changed");
        EXPECT_EQ(r.elements[2].str, "9");
    });
}

TEST_F(RedisTest, AQuietSubscriptionStaysOpenAndAClosedConnectionIsNoticed) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        redis::Connection sub(ex);
        redis::Connection pub(ex);
        const auto url = url_of(server.url());
        co_await sub.connect(url, 2s);
        co_await pub.connect(url, 2s);
        const std::vector<std::string> subscribe{"SUBSCRIBE", "fleet:changed"};
        reply_of(co_await sub.command(subscribe, 2s));
        // Nothing within the wait: nullopt, and the subscription is intact.
        const auto quiet = co_await sub.poll(100ms);
        EXPECT_FALSE(quiet);
        EXPECT_TRUE(sub.connected());
        const std::vector<std::string> publish{"PUBLISH", "fleet:changed", "3"};
        reply_of(co_await pub.command(publish, 2s));
        const auto message = co_await sub.poll(2s);
        CO_ASSERT_TRUE(message && std::holds_alternative<redis::Reply>(*message));
        EXPECT_EQ(std::get<redis::Reply>(*message).elements.at(2).str, "3");

        // Redis closes an idle connection (as on a restart): usable() sees it
        // without sending anything, and drops it.
        EXPECT_TRUE(pub.usable());
        const std::vector<std::string> kill{"CLIENT", "KILL", "TYPE", "pubsub"};
        reply_of(co_await pub.command(kill, 2s));
        for (int i = 0; i < 100 && sub.connected(); ++i) {
            const auto gone = co_await sub.poll(20ms);
            if (gone) {
                EXPECT_TRUE(std::holds_alternative<std::string>(*gone));
            }
        }
        EXPECT_FALSE(sub.connected());

        state::FleetStore store(ex, url, "fleet");
        const auto none = co_await store.version();
        EXPECT_EQ(std::get<std::uint64_t>(none), 0u);
        const std::vector<std::string> self{"CLIENT", "KILL", "TYPE", "normal"};
        co_await pub.command(self, 2s);  // every normal client, the store's too
        net::asio::steady_timer tick(ex);
        for (int i = 0; i < 100 && store.connection().usable(); ++i) {
            tick.expires_after(20ms);
            co_await tick.async_wait(net::asio::use_awaitable);
        }
        EXPECT_FALSE(store.connection().connected());
        // The store connects again for its next call.
        const auto again = co_await store.version();
        EXPECT_TRUE(std::holds_alternative<std::uint64_t>(again)) << std::get<std::string>(again);
    });
}

TEST_F(RedisTest, RedissVerifiesTheServerAndCarriesTheFleetRecord) {
    const auto& pki = TestPki::get();
    auto server = RedisServer::with_tls(pki.cert, pki.key, pki.ca);
    // The system trust store, as OpenSSL finds it: here the test's CA.
    ::setenv("SSL_CERT_FILE", pki.ca.c_str(), 1);
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        const auto url = url_of(server.url());
        EXPECT_TRUE(url.tls);
        state::FleetStore store(ex, url, "bgswitch:tls");
        state::SwitchState st;
        st.active = Color::Green;
        st.version = 1;
        const auto cas = co_await store.commit(0, st);
        EXPECT_EQ(cas.result, state::CasOutcome::Result::Applied) << cas.error;
        const auto read = co_await store.read();
        CO_ASSERT_TRUE(std::holds_alternative<std::optional<state::SwitchState>>(read));
        const auto& record = std::get<std::optional<state::SwitchState>>(read);
        CO_ASSERT_TRUE(record.has_value());
        EXPECT_EQ(record->active, Color::Green);
        EXPECT_TRUE(store.connection().usable()) << "an idle TLS connection stays usable";

        // A server the trust store does not vouch for is refused, with why.
        ::setenv("SSL_CERT_FILE", pki.other_ca.c_str(), 1);
        redis::Connection untrusted(ex);
        const auto refused = co_await untrusted.connect(url, 2s);
        CO_ASSERT_TRUE(refused.has_value());
        EXPECT_NE(refused->find("certificate verification failed"), std::string::npos) << *refused;
        EXPECT_FALSE(untrusted.connected());
    });
    ::unsetenv("SSL_CERT_FILE");
}

TEST_F(RedisTest, AStalledOrStoppedServerGivesAnErrorWithinTheDeadline) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        redis::Connection c(ex);
        const auto url = url_of(server.url());
        co_await c.connect(url, 2s);
        server.pause();
        const std::vector<std::string> ping{"PING"};
        auto r = co_await c.command(ping, std::chrono::milliseconds(300));
        CO_ASSERT_TRUE(std::holds_alternative<std::string>(r));
        EXPECT_EQ(std::get<std::string>(r), "no reply within the deadline");
        EXPECT_FALSE(c.connected());
        server.resume();
        EXPECT_FALSE(co_await c.connect(url, 2s));
        server.stop();
        r = co_await c.command(ping, 2s);
        CO_ASSERT_TRUE(std::holds_alternative<std::string>(r));
        EXPECT_EQ(std::get<std::string>(r).rfind("connection lost", 0), 0u);
        const auto err = co_await c.connect(url, 2s);
        CO_ASSERT_TRUE(err);
        EXPECT_NE(err->find("cannot connect to redis://127.0.0.1:"), std::string::npos) << *err;
    });
}

// --- the fleet's record ----------------------------------------------------------

state::SwitchState version_of(std::uint64_t v, Color active) {
    state::SwitchState s;
    s.version = v;
    s.active = active;
    s.upstreams[index(Color::Green)] = std::vector<std::string>{"app-green:8080"};
    return s;
}

TEST_F(RedisTest, TwoInstancesRacingForOneVersionCannotBothWin) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        const auto url = url_of(server.url());
        state::FleetStore a(ex, url, "bgswitch:shop");
        state::FleetStore b(ex, url, "bgswitch:shop");
        redis::Connection watcher(ex);
        co_await watcher.connect(url, 2s);
        const std::vector<std::string> subscribe{"SUBSCRIBE", a.keys().channel()};
        co_await watcher.command(subscribe, 2s);

        const auto to_green = version_of(2, Color::Green);
        const auto to_blue = version_of(2, Color::Blue);
        const auto first = co_await a.commit(0, to_green);
        const auto second = co_await b.commit(0, to_blue);
        EXPECT_EQ(first.result, state::CasOutcome::Result::Applied) << first.error;
        EXPECT_EQ(second.result, state::CasOutcome::Result::Conflict);
        EXPECT_EQ(second.current_version, 2u);

        // The winner's change is announced, and is what everyone reads.
        const auto announced = reply_of(co_await watcher.next_reply(2s));
        CO_ASSERT_TRUE(announced.elements.size() == 3u);
        EXPECT_EQ(announced.elements[2].str, "2");
        const auto read = co_await b.read();
        const auto* record = std::get_if<std::optional<state::SwitchState>>(&read);
        CO_ASSERT_TRUE(record != nullptr && record->has_value());
        EXPECT_EQ((*record)->active, Color::Green);
        EXPECT_EQ((*record)->version, 2u);
        EXPECT_EQ((*record)->upstreams[index(Color::Green)],
                  to_green.upstreams[index(Color::Green)]);
        // The next change must name the version it saw.
        const auto third = version_of(3, Color::Blue);
        EXPECT_EQ((co_await b.commit(2, third)).result, state::CasOutcome::Result::Applied);
    });
}

// Redis lost its data: the instances re-seed the record, and the newest
// version any of them applied wins; nobody's version goes backwards.
TEST_F(RedisTest, AnEmptyRecordIsReseededByTheNewestVersion) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        const auto url = url_of(server.url());
        state::FleetStore store(ex, url, "bgswitch:shop");
        const auto none = co_await store.read();
        EXPECT_FALSE(std::get<std::optional<state::SwitchState>>(none).has_value());

        const auto older = version_of(5, Color::Blue);
        const auto newer = version_of(7, Color::Green);
        EXPECT_TRUE(std::get<bool>(co_await store.seed(older)));
        EXPECT_TRUE(std::get<bool>(co_await store.seed(newer)));
        EXPECT_FALSE(std::get<bool>(co_await store.seed(older)));  // 5 < 7: kept
        const auto read = co_await store.read();
        EXPECT_EQ(std::get<std::optional<state::SwitchState>>(read)->version, 7u);

        const std::vector<std::string> corrupt{"HSET", "bgswitch:shop", "state", "{not json"};
        co_await store.connection().command(corrupt, 2s);
        const auto broken = co_await store.read();
        CO_ASSERT_TRUE(std::holds_alternative<std::string>(broken));
        EXPECT_NE(std::get<std::string>(broken).find("unreadable"), std::string::npos);
    });
}

TEST_F(RedisTest, HeartbeatsListTheLiveNodes) {
    RedisServer server;
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        const auto url = url_of(server.url());
        state::FleetStore store(ex, url, "bgswitch:shop");
        EXPECT_FALSE(co_await store.heartbeat("a", 9, "green", std::chrono::seconds(5)));
        EXPECT_FALSE(co_await store.heartbeat("b", 8, "blue", std::chrono::milliseconds(200)));
        auto listed = std::get<std::vector<state::NodeReport>>(co_await store.nodes());
        CO_ASSERT_TRUE(listed.size() == 2u);
        EXPECT_EQ(listed[0].node, "a");
        EXPECT_EQ(listed[0].applied_version, 9u);
        EXPECT_LT(listed[0].age, std::chrono::seconds(2));
        EXPECT_EQ(listed[0].active, "green");
        EXPECT_EQ(listed[1].active, "blue");
        EXPECT_EQ(listed[1].backend, "ok");

        // b stops beating: it drops out once its heartbeat expires.
        net::asio::steady_timer tick(ex);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (listed.size() != 1u && std::chrono::steady_clock::now() < deadline) {
            tick.expires_after(std::chrono::milliseconds(50));
            co_await tick.async_wait(net::asio::use_awaitable);
            listed = std::get<std::vector<state::NodeReport>>(co_await store.nodes());
        }
        CO_ASSERT_TRUE(listed.size() == 1u);
        EXPECT_EQ(listed[0].node, "a");
    });
}

TEST_F(RedisTest, AnUnreachableStoreSaysSo) {
    const auto port = dead_port();
    run([&](net::asio::any_io_executor ex) -> net::Task<void> {
        const auto url = url_of("redis://127.0.0.1:" + std::to_string(port));
        state::FleetStore store(ex, url, "bgswitch:shop", std::chrono::milliseconds(500));
        const auto next = version_of(2, Color::Green);
        const auto out = co_await store.commit(1, next);
        EXPECT_EQ(out.result, state::CasOutcome::Result::Unavailable);
        EXPECT_NE(out.error.find("cannot connect"), std::string::npos) << out.error;
        EXPECT_TRUE(std::holds_alternative<std::string>(co_await store.read()));
    });
}

TEST(RedisUrlTest, ParsesWhatFleetConfigurationsSay) {
    std::string why;
    auto u = redis::Url::parse("redis://:p%40ss@redis:6380/2", &why);
    ASSERT_TRUE(u) << why;
    EXPECT_EQ(u->host, "redis");
    EXPECT_EQ(u->port, 6380);
    EXPECT_EQ(u->password, "p@ss");
    EXPECT_EQ(u->db, 2u);
    EXPECT_FALSE(u->tls);
    EXPECT_EQ(u->redacted(), "redis://:***@redis:6380/2");
    u = redis::Url::parse("rediss://app:secret@[::1]", &why);
    ASSERT_TRUE(u) << why;
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->user, "app");
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->port, 6379);
    EXPECT_EQ(u->redacted(), "rediss://app:***@[::1]:6379/0");
    for (const char* bad : {"http://redis", "redis://", "redis://h:0", "redis://h:99999",
                            "redis://h/x", "redis://[::1", "redis://%zz@h"}) {
        EXPECT_FALSE(redis::Url::parse(bad, &why)) << bad;
    }
    EXPECT_EQ(redis::encode({"SET", "k", ""}), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
}

}  // namespace
}  // namespace bgs::test
