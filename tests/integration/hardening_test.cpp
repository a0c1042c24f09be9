// Faults an adversarial probe found, each as the scenario that showed it: an
// upstream that writes past its response, stale pooled connections, framing
// that never ends, interim responses that never stop, and requests whose
// target or Host lie. Each test fails without its fix.
#include "proxy/worker/worker.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include <boost/asio/post.hpp>

namespace bgs::test {
namespace {

std::string get(std::string_view target, std::string_view extra = "") {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: app.test\r\n" + std::string(extra) +
           "\r\n";
}

// An upstream that answers a HEAD, and once the client has that answer, writes
// a whole second response nobody asked for onto the same connection. The next
// request, from another client, must never receive it.
TEST(PoolHygieneTest, BytesAfterAResponseNeverReachTheNextClient) {
    std::promise<void> head_delivered;
    auto delivered = head_delivered.get_future().share();
    std::atomic<bool> stray_sent{false};
    ScriptedUpstream up([&](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->method == "HEAD") {
                s.send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
                delivered.wait();
                s.send("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL");
                stray_sent = true;
            } else {
                s.send(http_response(200, "good"));
            }
        }
    });
    auto cfg = test_config({up.port()});
    cfg.proxy.workers = 1;  // both clients meet the same pool
    RunningProxy proxy(cfg);

    auto a = Socket::connect(proxy.port());
    a.send("HEAD / HTTP/1.1\r\nHost: app.test\r\n\r\n");
    EXPECT_EQ(read_response(a, 5s, /*head_request=*/true).status, 200);
    head_delivered.set_value();
    ASSERT_TRUE(eventually([&] { return stray_sent.load(); }));

    auto b = Socket::connect(proxy.port());
    b.send(get("/"));
    auto res = read_response(b);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "good");
}

// An upstream that closes keep-alive connections after a short idle time (the
// probe's upstream did after 300 ms; 50 ms here). A POST must not be sent on a
// pooled connection it closed: its body could not be sent again.
TEST(PoolHygieneTest, APostNeverGoesOutOnAConnectionTheUpstreamClosed) {
    std::atomic<int> closed{0};
    ScriptedUpstream up([&](Socket& s, ScriptedUpstream& u) {
        if (auto req = u.next_request(s)) {
            s.send(http_response(200, "ok " + req->body));
            try {
                if (u.next_request(s, 50ms)) {
                    s.send(http_response(200, "not expected"));
                }
            } catch (const Timeout&) {
                // idle for 50 ms: closed, as an upstream's keep-alive timeout does
            }
        }
        s.close();
        ++closed;
    });
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    for (int i = 0; i < 5; ++i) {
        c.send("POST /p HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc");
        auto res = read_response(c);
        ASSERT_EQ(res.status, 200) << "request " << i << ": " << res.body;
        EXPECT_EQ(res.body, "ok abc");
        // The upstream closes the idle connection before the next POST.
        ASSERT_TRUE(eventually([&] { return closed.load() == i + 1; }));
    }
}

// A chunk-size line, a chunk extension (one with an unclosed quote too) or a
// trailer section that never ends: 400 at its bound, not buffering until the
// idle timeout.
TEST(FramingBoundsTest, EndlessChunkFramingFromAClientGets400) {
    const std::string flood(256 * 1024, 'a');
    const std::string cases[] = {
        "1" + flood,                             // an endless chunk size
        "1;ext=" + flood,                        // an endless extension
        "1;ext=\"" + flood,                      // an extension with an unclosed quote
        "3\r\nabc\r\n0\r\nX-Trailer: " + flood,  // an endless trailer section
    };
    for (const auto& body : cases) {
        ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
            while (auto req = u.next_request(s)) {
                s.send(http_response(200, "ok"));
            }
        });
        auto cfg = test_config({up.port()});
        cfg.timeouts.idle = std::chrono::seconds(60);
        RunningProxy proxy(cfg);
        auto c = Socket::connect(proxy.port());
        c.send("POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n");
        try {
            c.send(body);
        } catch (const std::exception&) {
            // The proxy may close before all of it is written.
        }
        auto res = read_response(c, 5s);
        EXPECT_EQ(res.status, 400) << body.substr(0, 12);
        EXPECT_TRUE(c.closed_within(5s));
    }
}

TEST(FramingBoundsTest, EndlessChunkFramingFromAnUpstreamEndsTheResponse) {
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        if (u.next_request(s)) {
            s.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1;x=");
            const std::string flood(64 * 1024, 'a');
            for (int i = 0; i < 16 && !s.closed_within(0ms); ++i) {
                try {
                    s.send(flood);
                } catch (const std::exception&) {
                    break;
                }
            }
            s.closed_within(10s);
        }
    });
    auto cfg = test_config({up.port()});
    cfg.timeouts.idle = std::chrono::seconds(60);
    RunningProxy proxy(cfg);
    auto c = Socket::connect(proxy.port());
    c.send(get("/"));
    auto head = c.read_until("\r\n\r\n");
    EXPECT_NE(head.find("200 OK"), std::string::npos);
    // The client sees the body so far, then the connection ends: no terminating
    // chunk, so it knows the response was cut.
    const auto rest = c.read_to_eof(5s);
    EXPECT_EQ(rest.find("0\r\n\r\n"), std::string::npos) << rest;
}

// Body bytes pass through one scratch buffer per worker thread. A chunk's data
// followed by an incomplete chunk-size line once made the parser wait for more
// input with that data still in the shared buffer, where another connection's
// body overwrote it. Two uploads on one worker, the first paused exactly there.
TEST(ScratchBufferTest, AnUploadPausedBetweenChunksKeepsItsBytes) {
    ScriptedUpstream up([&](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            s.send(http_response(200, req->body));
        }
    });
    auto cfg = test_config({up.port()});
    cfg.proxy.workers = 1;
    RunningProxy proxy(cfg);

    auto a = Socket::connect(proxy.port());
    a.send("POST /a HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n");
    a.send("3\r\nabc\r\n5");  // the next size line is not complete yet
    // Another upload through the same worker meanwhile, in one piece.
    const std::string other(12000, 'x');
    auto b = Socket::connect(proxy.port());
    b.send("POST /b HTTP/1.1\r\nHost: app.test\r\nContent-Length: " + std::to_string(other.size()) +
           "\r\n\r\n" + other);
    auto rb = read_response(b);
    EXPECT_EQ(rb.status, 200);
    EXPECT_EQ(rb.body, other);
    a.send("\r\nhello\r\n0\r\n\r\n");
    auto ra = read_response(a);
    EXPECT_EQ(ra.status, 200);
    EXPECT_EQ(ra.body, "abchello");
}

// timeouts.upstream_response runs to the final response; interim ones do not
// extend it.
TEST(UpstreamTimeoutTest, InterimResponsesDoNotHoldARequestForever) {
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        if (u.next_request(s)) {
            // A 100 every 100 ms, for up to 10 s, until the proxy gives up.
            for (int i = 0; i < 100; ++i) {
                try {
                    s.send("HTTP/1.1 100 Continue\r\n\r\n");
                } catch (const std::exception&) {
                    return;
                }
                if (s.closed_within(100ms)) {
                    return;
                }
            }
            s.send(http_response(200, "late"));
        }
    });
    auto cfg = test_config({up.port()});
    cfg.timeouts.upstream_response = std::chrono::milliseconds(500);
    RunningProxy proxy(cfg);
    auto c = Socket::connect(proxy.port());
    c.send(get("/"));
    EXPECT_EQ(read_response(c, 5s).status, 504);
}

TEST(RequestTargetTest, AbsoluteFormUsesItsAuthorityAndGoesUpstreamInOriginForm) {
    ScriptedUpstream up(ScriptedUpstream::respond_with("ok"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET http://other.test/echo?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(read_response(c).status, 200);
    const auto seen = up.requests().at(0);
    EXPECT_EQ(seen.target, "/echo?x=1");
    EXPECT_EQ(seen.header("Host"), "other.test");
    EXPECT_EQ(seen.count("Host"), 1u);
}

TEST(RequestTargetTest, BadHostsAndConnectAreRefusedAndNeverForwarded) {
    struct Case {
        std::string request;
        int status;
    };
    const Case cases[] = {
        {"GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: user:pass@evil\r\n\r\n", 400},
        {"GET http://user:pass@evil/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET nothing HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", 405},
    };
    for (const auto& k : cases) {
        ScriptedUpstream up(ScriptedUpstream::respond_with("ok"));
        RunningProxy proxy(test_config({up.port()}));
        auto c = Socket::connect(proxy.port());
        c.send(k.request);
        auto res = read_response(c);
        EXPECT_EQ(res.status, k.status) << k.request;
        EXPECT_TRUE(c.closed_within(5s)) << k.request;
        EXPECT_EQ(up.request_count(), 0u) << k.request;
    }
}

// RFC 9112 §2.6: a higher minor version is handled as HTTP/1.1.
TEST(RequestTargetTest, AHigherMinorVersionIsServedAsHttp11) {
    ScriptedUpstream up(ScriptedUpstream::respond_with("ok"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET / HTTP/1.2\r\nHost: a\r\n\r\n");
    auto res = read_response(c);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.version, "HTTP/1.1");
    EXPECT_EQ(up.requests().at(0).version, "HTTP/1.1");
}

TEST(ForwardedHeadersTest, ATrustedProxysHeadersAreKeptAnyOtherPeersReplaced) {
    ScriptedUpstream up(ScriptedUpstream::respond_with("ok"));
    const std::string spoof =
        "X-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: https\r\n"
        "X-Forwarded-Host: shop.example\r\nConnection: Host\r\n";
    {
        RunningProxy proxy(test_config({up.port()}));
        auto c = Socket::connect(proxy.port());
        c.send(get("/", spoof));
        EXPECT_EQ(read_response(c).status, 200);
    }
    {
        auto cfg = test_config({up.port()});
        std::string why;
        cfg.proxy.trusted_proxies.push_back(*config::Cidr::parse("127.0.0.0/8", &why));
        RunningProxy proxy(cfg);
        auto c = Socket::connect(proxy.port());
        c.send(get("/", spoof));
        EXPECT_EQ(read_response(c).status, 200);
    }
    const auto seen = up.requests();
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].header("X-Forwarded-For"), "127.0.0.1");
    EXPECT_EQ(seen[0].header("X-Forwarded-Proto"), "http");
    EXPECT_EQ(seen[0].header("X-Forwarded-Host"), "app.test");
    EXPECT_EQ(seen[0].header("Host"), "app.test");  // Connection cannot remove it
    EXPECT_EQ(seen[1].header("X-Forwarded-For"), "198.51.100.7, 127.0.0.1");
    EXPECT_EQ(seen[1].header("X-Forwarded-Proto"), "https");
    EXPECT_EQ(seen[1].header("X-Forwarded-Host"), "shop.example");
}

#ifndef NDEBUG
// Debug and sanitizer builds check the thread rule that lets workers go
// without locks: a worker's pool touched from another thread aborts.
TEST(WorkerThreadDeathTest, APoolUsedFromAnotherThreadAborts) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(
        {
            auto cfg = test_config({dead_port()});
            routing::ColorState colors(Color::Blue, 1);
            routing::Router router(colors);
            worker::Shared shared(router);
            worker::Worker w(shared, 0, std::make_shared<const config::Config>(cfg), nullptr);
            std::thread runner([&] { w.run(); });
            // The worker's thread has started once its pool answers there.
            std::promise<void> started;
            net::asio::post(w.context(), [&] {
                w.pool();
                started.set_value();
            });
            started.get_future().wait();
            w.pool();  // from this thread: the rule is broken
            runner.join();
        },
        "used from another thread");
}
#endif

}  // namespace
}  // namespace bgs::test
