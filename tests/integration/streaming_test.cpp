// Streamed responses (SSE, chunked) are forwarded piece by piece the moment
// each arrives: the upstream holds the rest back until the client has seen the
// first event, which would deadlock (and time out) behind a buffering proxy.
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

namespace bgs::test {
namespace {

std::string chunk(std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    return size + std::string(data) + "\r\n";
}

TEST(StreamingTest, SseEventsArriveWithoutWaitingForMore) {
    std::promise<void> client_saw_first;
    auto first_seen = client_saw_first.get_future().share();
    ScriptedUpstream sse([first_seen](Socket& s, ScriptedUpstream& u) {
        u.next_request(s);
        s.send(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
        s.send(chunk("data: first\n\n"));
        if (first_seen.wait_for(10s) != std::future_status::ready) {
            return;
        }
        s.send(chunk("data: second\n\n") + "0\r\n\r\n");
    });
    RunningProxy proxy(test_config({sse.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET /events HTTP/1.1\r\nHost: a\r\nAccept: text/event-stream\r\n\r\n");
    auto head = c.read_until("\r\n\r\n", 3s);
    EXPECT_NE(head.find("text/event-stream"), std::string::npos);
    EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos);
    auto first = c.read_until("data: first\n\n\r\n", 3s);
    client_saw_first.set_value();
    auto rest = c.read_until("0\r\n\r\n", 3s);
    EXPECT_NE(rest.find("data: second"), std::string::npos);
}

TEST(StreamingTest, ResponseHeaderIsForwardedBeforeAnyBody) {
    std::promise<void> client_saw_header;
    auto header_seen = client_saw_header.get_future().share();
    ScriptedUpstream slow([header_seen](Socket& s, ScriptedUpstream& u) {
        u.next_request(s);
        s.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        if (header_seen.wait_for(10s) == std::future_status::ready) {
            s.send("4\r\nbody\r\n0\r\n\r\n");
        }
    });
    RunningProxy proxy(test_config({slow.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    c.read_until("\r\n\r\n", 3s);
    client_saw_header.set_value();
    EXPECT_NE(c.read_until("0\r\n\r\n", 3s).find("body"), std::string::npos);
}

TEST(StreamingTest, ResponseOfUnknownLengthIsRechunked) {
    ScriptedUpstream eof([](Socket& s, ScriptedUpstream& u) {
        u.next_request(s);
        s.send("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ");
        s.send("part two");
    });
    RunningProxy proxy(test_config({eof.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    auto res = read_response(c);
    EXPECT_TRUE(res.chunked);
    EXPECT_EQ(res.body, "part one, part two");
    // The client connection survives: the length came from the chunking.
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(read_response(c).body, "part one, part two");
}

TEST(StreamingTest, SlowClientDoesNotStallOtherClients) {
    const std::string big(4 * 1024 * 1024, 'z');
    ScriptedUpstream up([&big](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            s.send(http_response(200, req->target == "/big" ? big : "small"));
        }
    });
    RunningProxy proxy(test_config({up.port()}));
    auto slow = Socket::connect(proxy.port());
    slow.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n");  // and never read
    for (int i = 0; i < 20; ++i) {
        auto c = Socket::connect(proxy.port());
        c.send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n");
        EXPECT_EQ(read_response(c, 3s).body, "small");
    }
}

// A client that leaves a quiet stream ends it at once: the upstream
// connection closes within moments, not at the next event or the idle
// timeout (here 30 s), and the metrics count a client that left.
TEST(StreamingTest, AClientLeavingAQuietStreamClosesItsUpstreamConnectionAtOnce) {
    std::promise<double> upstream_closed_after;
    auto closed_after = upstream_closed_after.get_future();
    ScriptedUpstream sse([&](Socket& s, ScriptedUpstream& u) {
        u.next_request(s);
        s.send(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
        s.send(chunk("data: only\n\n"));
        const auto sent = std::chrono::steady_clock::now();
        const bool closed = s.closed_within(20s);
        upstream_closed_after.set_value(
            closed ? std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count()
                   : -1.0);
    });
    auto cfg = test_config({sse.port()});
    cfg.timeouts.idle = std::chrono::seconds(30);
    RunningProxy proxy(std::move(cfg));
    {
        auto c = Socket::connect(proxy.port());
        c.send("GET /events HTTP/1.1\r\nHost: a\r\n\r\n");
        c.read_until("data: only\n\n", 3s);
    }  // the client leaves
    ASSERT_EQ(closed_after.wait_for(25s), std::future_status::ready);
    const double after = closed_after.get();
    EXPECT_GE(after, 0.0) << "the upstream connection was never closed";
    EXPECT_LT(after, 2.0);
}

// A client that leaves while the upstream has not answered yet (a long poll)
// ends the exchange once the wait outlasts a second: the upstream connection
// closes long before timeouts.upstream_response (here 30 s), and the request
// is not tried again elsewhere.
TEST(StreamingTest, AClientLeavingALongPollClosesItsUpstreamConnection) {
    std::promise<double> upstream_closed_after;
    auto closed_after = upstream_closed_after.get_future();
    std::atomic<int> requests{0};
    ScriptedUpstream poll([&](Socket& s, ScriptedUpstream& u) {
        if (!u.next_request(s)) {
            return;
        }
        if (++requests > 1) {
            return;
        }
        const auto got = std::chrono::steady_clock::now();
        const bool closed = s.closed_within(20s);
        upstream_closed_after.set_value(
            closed ? std::chrono::duration<double>(std::chrono::steady_clock::now() - got).count()
                   : -1.0);
    });
    auto cfg = test_config({poll.port()});
    cfg.timeouts.upstream_response = std::chrono::seconds(30);
    RunningProxy proxy(std::move(cfg));
    {
        auto c = Socket::connect(proxy.port());
        c.send("GET /poll HTTP/1.1\r\nHost: a\r\n\r\n");
    }  // the client leaves at once
    ASSERT_EQ(closed_after.wait_for(25s), std::future_status::ready);
    const double after = closed_after.get();
    EXPECT_GE(after, 0.0) << "the upstream connection was never closed";
    EXPECT_LT(after, 3.0);
    EXPECT_EQ(requests.load(), 1);
}

// A response head that takes longer than the watch's second, and arrives in
// two pieces around it, is relayed whole, and the connection serves its next
// request: the watch does not disturb a client that stays.
TEST(StreamingTest, AResponseHeadArrivingAfterTheWatchArmsIsRelayed) {
    ScriptedUpstream slow([](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->target != "/slow") {
                s.send(http_response(200, "next"));
                continue;
            }
            s.send("HTTP/1.1 200 OK\r\nContent-");
            // A slow upstream: the rest of its head comes 1.5 s later.
            std::promise<void> never;
            never.get_future().wait_for(1500ms);
            s.send("Length: 4\r\n\r\ndone");
        }
    });
    auto cfg = test_config({slow.port()});
    cfg.timeouts.upstream_response = std::chrono::seconds(30);
    RunningProxy proxy(std::move(cfg));
    auto c = Socket::connect(proxy.port());
    c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    auto res = read_response(c, 10s);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "done");
    c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    res = read_response(c, 5s);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "next");
}

// The watch on the client during a streamed body does not take a pipelined
// request for a departure: it is answered after the stream.
TEST(StreamingTest, APipelinedRequestDuringAStreamedBodyIsServedAfterIt) {
    std::promise<void> second_sent;
    auto second = second_sent.get_future().share();
    ScriptedUpstream up([second](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->target == "/stream") {
                s.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                s.send(chunk("part one;"));
                if (second.wait_for(5s) != std::future_status::ready) {
                    return;
                }
                s.send(chunk("part two") + "0\r\n\r\n");
            } else {
                s.send(http_response(200, "second"));
            }
        }
    });
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    c.read_until("part one;", 3s);
    c.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n");  // while the stream is quiet
    second_sent.set_value();
    c.read_until("part two\r\n0\r\n\r\n", 5s);
    auto res = read_response(c, 5s);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "second");
}

// Body bytes pass through a scratch buffer shared by every connection of a
// worker; a client that reads slowly makes writes stop half-way. Several such
// downloads and uploads on one worker at once must still arrive byte-exact.
TEST(StreamingTest, ConcurrentBackpressuredBodiesArriveIntact) {
    constexpr std::size_t kSize = 12 * 1024 * 1024;  // more than socket buffers hold
    auto pattern = [](std::size_t seed) {
        std::string body(kSize, '\0');
        for (std::size_t j = 0; j < kSize; ++j) {
            body[j] = static_cast<char>((seed * 31 + j * 7 + j / 4093) % 251);
        }
        return body;
    };
    ScriptedUpstream up([&](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            // GET /N returns pattern N; POST echoes whether the upload matched.
            const auto seed = static_cast<std::size_t>(std::stoul(req->target.substr(1)));
            if (req->method == "POST") {
                s.send(http_response(200, req->body == pattern(seed) ? "intact" : "corrupt"));
            } else {
                s.send(http_response(200, pattern(seed)));
            }
        }
    });
    auto cfg = test_config({up.port()});
    cfg.proxy.workers = 1;  // every connection shares the one worker's scratch
    cfg.limits.max_body_bytes = 32 * 1024 * 1024;
    RunningProxy proxy(std::move(cfg));

    std::vector<std::future<std::string>> results;
    for (std::size_t seed = 1; seed <= 4; ++seed) {
        results.push_back(std::async(std::launch::async, [&, seed]() -> std::string {
            auto c = Socket::connect(proxy.port());
            c.send("GET /" + std::to_string(seed) + " HTTP/1.1\r\nHost: a\r\n\r\n");
            // Not reading yet: the proxy fills this socket's buffer and has to
            // keep the rest of a piece while the others use the scratch.
            eventually([&] { return c.readable() >= 32 * 1024; }, 5s);
            auto res = read_response(c, 20s);
            if (res.body != pattern(seed)) {
                return "download " + std::to_string(seed) + " differs";
            }
            const auto upload = pattern(seed + 10);
            c.send("POST /" + std::to_string(seed + 10) +
                   " HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n" +
                   upload);
            return read_response(c, 20s).body;
        }));
    }
    for (auto& r : results) {
        EXPECT_EQ(r.get(), "intact");
    }
}

}  // namespace
}  // namespace bgs::test
