// net::Stream's deadlines: a wheel that cancels what is pending once the time is
// up, reports beast::error::timeout, leaves the socket usable, and never fires
// before the deadline. Real loopback sockets, one io_context per test.
#include "proxy/net/http_io.hpp"
#include "tests/support/test_net.hpp"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <chrono>
#include <exception>
#include <string>
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

}  // namespace
}  // namespace bgs::test
