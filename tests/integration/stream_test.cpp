// net::Stream's deadlines: a wheel that cancels what is pending once the time is
// up, reports beast::error::timeout, leaves the socket usable, and never fires
// before the deadline. Real loopback sockets, one io_context per test.
#include "proxy/http/tunnel.hpp"
#include "proxy/http/ws_frame.hpp"
#include "proxy/metrics/metrics.hpp"
#include "proxy/net/http_io.hpp"
#include "tests/support/test_net.hpp"
#include "tests/support/ws_util.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <tuple>

namespace bgs::test {
namespace {

namespace asio = net::asio;
using Clock = std::chrono::steady_clock;

// An accepted connection on `ctx` and the blocking test socket at its other end.
struct Pair {
    explicit Pair(asio::io_context& ctx)
        : acceptor(ctx, {asio::ip::address_v4::loopback(), 0}),
          peer(Socket::connect(acceptor.local_endpoint().port())),
          stream(acceptor.accept()) {}
    net::tcp::acceptor acceptor;
    Socket peer;
    net::Stream stream;
};

struct ReadResult {
    net::error_code ec;
    std::size_t n = 0;
    Clock::duration took{};
};

// Runs one read_some on `s` to completion (the wheel may still be ticking for
// a later deadline, so the context is stopped rather than run dry).
ReadResult read_once(asio::io_context& ctx, net::Stream& s, char* into, std::size_t size) {
    ReadResult r;
    const auto start = Clock::now();
    asio::co_spawn(
        ctx,
        [&]() -> net::Task<void> {
            std::tie(r.ec, r.n) = co_await net::read_some(s, asio::buffer(into, size));
        },
        [&](std::exception_ptr) { ctx.stop(); });
    ctx.restart();
    ctx.run();
    r.took = Clock::now() - start;
    return r;
}

TEST(StreamTest, AQuietReadTimesOutAfterItsDeadlineAndTheSocketStaysUsable) {
    asio::io_context ctx(1);
    Pair p(ctx);
    char buf[16];
    p.stream.expires_after(300ms);
    auto r = read_once(ctx, p.stream, buf, sizeof buf);
    EXPECT_EQ(r.ec, net::beast::error::timeout) << r.ec.message();
    EXPECT_GE(r.took, 300ms);  // never early
    EXPECT_LT(r.took, 1500ms);

    // Unlike beast::tcp_stream, the socket is still open: data sent now arrives.
    p.peer.send("late");
    p.stream.expires_after(5s);
    r = read_once(ctx, p.stream, buf, sizeof buf);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(std::string(buf, r.n), "late");
}

TEST(StreamTest, ADeadlineMovedEarlierTakesEffect) {
    asio::io_context ctx(1);
    Pair p(ctx);
    char buf[16];
    p.stream.expires_after(30s);
    p.stream.expires_after(200ms);  // refiled in an earlier slot of the wheel
    const auto r = read_once(ctx, p.stream, buf, sizeof buf);
    EXPECT_EQ(r.ec, net::beast::error::timeout);
    EXPECT_LT(r.took, 1500ms);
}

TEST(StreamTest, NoDeadlineMeansNoTimeoutAndDataIsReadAtOnce) {
    asio::io_context ctx(1);
    Pair p(ctx);
    char buf[16];
    p.stream.expires_after(100ms);
    p.stream.expires_never();  // the earlier deadline is gone with it
    p.peer.send("now");
    const auto r = read_once(ctx, p.stream, buf, sizeof buf);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(std::string(buf, r.n), "now");
}

TEST(StreamTest, AnExpiredStreamFailsItsNextOperationUntilTheDeadlineIsReset) {
    asio::io_context ctx(1);
    Pair p(ctx);
    char buf[16];
    p.stream.expires_after(50ms);
    // Let the wheel expire the stream while nothing is pending.
    asio::steady_timer wait(ctx, 400ms);
    wait.async_wait([](net::error_code) {});
    ctx.run();
    EXPECT_TRUE(p.stream.expired());
    p.peer.send("x");
    auto r = read_once(ctx, p.stream, buf, sizeof buf);
    EXPECT_EQ(r.ec, net::beast::error::timeout);
    p.stream.expires_after(5s);
    r = read_once(ctx, p.stream, buf, sizeof buf);
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(std::string(buf, r.n), "x");
}

// A stop can come at any moment of a parkable tunnel's way to its park: as
// the wheel times out its quiet reads (their completions queued, not run
// yet), between the two directions' ends, after the run ended Quiet. Here the
// handlers run one at a time and the stop comes after k more of them, for
// every k up to and past the park: each time, a WebSocket gets Close 1001 on
// both sides, never a cut.
TEST(TunnelStopTest, AStopAnywhereOnTheWayToTheParkStillSendsGoingAwayBothWays) {
    for (int k = 0; k < 8; ++k) {
        SCOPED_TRACE("stopped " + std::to_string(k) + " handlers after the quiet reads timed out");
        asio::io_context ctx(1);
        Pair client(ctx);
        Pair upstream(ctx);
        metrics::Metrics metrics;
        http::Tunnel tunnel(/*websocket=*/true, metrics);
        net::beast::flat_buffer client_pending;
        net::beast::flat_buffer upstream_pending;
        std::optional<http::TunnelEnd> end;
        auto run = [&] {
            end.reset();
            asio::co_spawn(
                ctx,
                [&]() -> net::Task<void> {
                    end = co_await tunnel.run(client.stream, client_pending, upstream.stream,
                                              upstream_pending, std::chrono::seconds(30),
                                              /*may_park=*/true);
                },
                [&](std::exception_ptr) {
                    if (end != http::TunnelEnd::Quiet) {
                        ctx.stop();
                    }
                });
        };
        run();
        const auto deadline = Clock::now() + std::chrono::seconds(5);
        while (!client.stream.expired() && !upstream.stream.expired() && Clock::now() < deadline) {
            ctx.run_one_for(std::chrono::milliseconds(100));
        }
        ASSERT_TRUE(client.stream.expired() || upstream.stream.expired());
        for (int i = 0; i < k && !end; ++i) {
            ctx.run_one_for(std::chrono::milliseconds(20));
        }
        tunnel.stop(drain::StopReason::Drain);
        if (end == http::TunnelEnd::Quiet) {
            run();  // parked: its owner runs it again on the stop
        }
        std::thread worker([&] { ctx.run(); });
        std::optional<Frame> to_client;
        std::optional<Frame> to_upstream;
        try {
            to_client = read_frame(client.peer, std::chrono::seconds(5));
            to_upstream = read_frame(upstream.peer, std::chrono::seconds(5));
        } catch (const std::exception& e) {
            ADD_FAILURE() << "no Close frame: " << e.what();
        }
        client.peer.close();  // both peers answer by closing: the tunnel ends
        upstream.peer.close();
        worker.join();
        ASSERT_TRUE(to_client && to_upstream);
        EXPECT_EQ(to_client->close_code(), 1001);
        EXPECT_FALSE(to_client->masked);
        EXPECT_EQ(to_upstream->close_code(), 1001);
        EXPECT_TRUE(to_upstream->masked);
        EXPECT_EQ(end, http::TunnelEnd::Closed);
    }
}

}  // namespace
}  // namespace bgs::test
