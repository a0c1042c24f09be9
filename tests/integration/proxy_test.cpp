// SPEC section 6 against real loopback upstreams: forwarding, keep-alive and
// pooling, retries, the proxy's own answers, header rewriting, HTTP/1.0,
// Expect, pipelining, large bodies, dying upstreams, access log, shutdown.
#include "proxy/worker/worker.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>

#include <thread>

#include <fstream>
#include <future>
#include <regex>
#include <sstream>

namespace bgs::test {
namespace {

std::string get(std::string_view target, std::string_view extra = "") {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: app.test\r\n" + std::string(extra) +
           "\r\n";
}

// An upstream that answers every request with its target in the body.
ScriptedUpstream::Handler echo_target(std::string name) {
    return [name](Socket& s, ScriptedUpstream& up) {
        while (auto req = up.next_request(s)) {
            s.send(http_response(200, name + " " + req->target, "X-Upstream: " + name + "\r\n"));
        }
    };
}

// A configuration in front of `upstream` that writes JSON access log lines to
// a fresh file of this process named after `name`; the file's path in `path`.
config::Config with_json_access_log(std::uint16_t upstream, const std::string& name,
                                    std::string& path) {
    path = ::testing::TempDir() + "/bgswitch_" + name + "_" + std::to_string(::getpid()) + ".log";
    std::remove(path.c_str());
    auto cfg = test_config({upstream});
    cfg.log.access = path;
    cfg.log.format = config::LogFormat::Json;
    return cfg;
}

// The first line of the access log at `path`, once it is written.
std::string first_access_line(const std::string& path) {
    std::string line;
    eventually([&] {
        std::ifstream in(path);
        std::getline(in, line);
        return !line.empty();
    });
    return line;
}

TEST(ProxyTest, ForwardsAndKeepsBothSidesAlive) {
    ScriptedUpstream up(echo_target("blue"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    for (int i = 0; i < 3; ++i) {
        c.send(get("/r" + std::to_string(i)));
        auto res = read_response(c);
        EXPECT_EQ(res.status, 200);
        EXPECT_EQ(res.body, "blue /r" + std::to_string(i));
        EXPECT_FALSE(res.header("Connection"));
    }
    // Three requests, one pooled upstream connection.
    EXPECT_EQ(up.connections(), 1);
}

TEST(ProxyTest, RoundRobinOverTheColorsUpstreams) {
    ScriptedUpstream a(echo_target("a"));
    ScriptedUpstream b(echo_target("b"));
    RunningProxy proxy(test_config({a.port(), b.port()}));
    auto c = Socket::connect(proxy.port());
    std::map<std::string, int> seen;
    for (int i = 0; i < 10; ++i) {
        c.send(get("/"));
        ++seen[*read_response(c).header("X-Upstream")];
    }
    EXPECT_EQ(seen["a"], 5);
    EXPECT_EQ(seen["b"], 5);
}

TEST(ProxyTest, RetriesOnceOnAnotherUpstreamWhenConnectIsRefused) {
    ScriptedUpstream live(echo_target("live"));
    RunningProxy proxy(test_config({dead_port(), live.port()}));
    auto c = Socket::connect(proxy.port());
    for (int i = 0; i < 6; ++i) {
        c.send(get("/"));
        auto res = read_response(c);
        ASSERT_EQ(res.status, 200) << "request " << i;
        EXPECT_EQ(res.header("X-Upstream"), "live");
    }
}

TEST(ProxyTest, Answers502WhenNoUpstreamCanBeReached) {
    RunningProxy proxy(test_config({dead_port(), dead_port()}));
    auto c = Socket::connect(proxy.port());
    c.send(get("/"));
    auto res = read_response(c);
    EXPECT_EQ(res.status, 502);
    EXPECT_EQ(res.body, "502 Bad Gateway\n");
    EXPECT_TRUE(res.header("X-Request-Id"));
    // The connection stays usable for the next request.
    c.send(get("/"));
    EXPECT_EQ(read_response(c).status, 502);
}

TEST(ProxyTest, Answers504WhenTheUpstreamNeverAnswers) {
    ScriptedUpstream silent([](Socket& s, ScriptedUpstream& up) {
        up.next_request(s);
        s.read_to_eof(30s);  // holds the request until the proxy gives up
    });
    auto cfg = test_config({silent.port()});
    cfg.timeouts.upstream_response = std::chrono::milliseconds(300);
    RunningProxy proxy(std::move(cfg));
    auto c = Socket::connect(proxy.port());
    c.send(get("/slow"));
    auto res = read_response(c);
    EXPECT_EQ(res.status, 504);
    EXPECT_EQ(res.body, "504 Gateway Timeout\n");
}

TEST(ProxyTest, Answers408WhenTheHeaderIsNotCompleteInTime) {
    ScriptedUpstream up(echo_target("x"));
    auto cfg = test_config({up.port()});
    cfg.timeouts.header_read = std::chrono::milliseconds(300);
    RunningProxy proxy(std::move(cfg));
    auto c = Socket::connect(proxy.port());
    c.send("GET / HTTP/1.1\r\nHost: a\r\n");  // never finished
    auto res = read_response(c);
    EXPECT_EQ(res.status, 408);
    EXPECT_EQ(res.header("Connection"), "close");
    EXPECT_TRUE(c.closed_within(3s));
    EXPECT_EQ(up.request_count(), 0u);
}

// A keep-alive connection quiet for longer than the proxy keeps its read
// buffer still serves its next request, and one quiet past timeouts.idle is
// closed.
TEST(ProxyTest, QuietKeepAliveConnectionsServeUntilTheIdleTimeout) {
    ScriptedUpstream up(echo_target("x"));
    auto cfg = test_config({up.port()});
    cfg.timeouts.idle = std::chrono::milliseconds(2500);
    RunningProxy proxy(std::move(cfg));
    auto c = Socket::connect(proxy.port());
    c.send(get("/first"));
    EXPECT_EQ(read_response(c).status, 200);
    // Quiet past the 1 s the proxy keeps a read buffer, inside the idle timeout.
    EXPECT_FALSE(c.closed_within(1500ms));
    c.send(get("/second"));
    auto res = read_response(c);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(up.request_count(), 2u);
    EXPECT_TRUE(c.closed_within(5s));  // nothing more: the idle timeout ends it
}

// A keep-alive connection between requests parks: its session ends and the
// socket waits alone (bgswitch_idle_connections counts it); its next request
// builds a session again, and a shutdown still closes it.
TEST(ProxyTest, IdleKeepAliveConnectionsParkAndComeBack) {
    ScriptedUpstream up(echo_target("x"));
    auto cfg = test_config({up.port()});
    cfg.admin.token = "park";
    RunningProxy proxy(std::move(cfg));
    auto idle_count = [&] { return metric_value(proxy, "bgswitch_idle_connections"); };
    std::vector<Socket> clients;
    for (int i = 0; i < 20; ++i) {
        clients.push_back(Socket::connect(proxy.port()));
        clients.back().send(get("/first"));
        EXPECT_EQ(read_response(clients.back()).status, 200);
    }
    EXPECT_TRUE(eventually([&] { return idle_count() == 20; })) << idle_count();
    for (auto& c : clients) {
        c.send(get("/second"));
        EXPECT_EQ(read_response(c).status, 200);
    }
    EXPECT_EQ(up.request_count(), 40u);
    EXPECT_TRUE(eventually([&] { return idle_count() == 20; })) << idle_count();
    // Pipelined: both answered in order, whether or not the connection parked.
    clients.front().send(get("/a") + get("/b"));
    EXPECT_EQ(read_response(clients.front()).status, 200);
    EXPECT_EQ(read_response(clients.front()).status, 200);
    proxy.server.reset();  // shutdown: parked connections close
    for (auto& c : clients) {
        EXPECT_TRUE(c.closed_within(3s));
    }
}

TEST(ProxyTest, Answers431ForAnOversizedHeader) {
    ScriptedUpstream up(echo_target("x"));
    auto cfg = test_config({up.port()});
    cfg.limits.max_header_bytes = 1024;
    RunningProxy proxy(std::move(cfg));
    auto c = Socket::connect(proxy.port());
    c.send(get("/", "X-Big: " + std::string(4096, 'a') + "\r\n"));
    auto res = read_response(c);
    EXPECT_EQ(res.status, 431);
    EXPECT_TRUE(c.closed_within(3s));
    EXPECT_EQ(up.request_count(), 0u);
}

TEST(ProxyTest, Answers413ForABodyOverTheLimit) {
    ScriptedUpstream up(echo_target("x"));
    auto cfg = test_config({up.port()});
    cfg.limits.max_body_bytes = 1000;
    RunningProxy proxy(std::move(cfg));
    {
        auto c = Socket::connect(proxy.port());
        c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n");
        EXPECT_EQ(read_response(c).status, 413);
        EXPECT_TRUE(c.closed_within(3s));
    }
    {
        // Chunked: the limit is only known to be crossed mid-body.
        auto c = Socket::connect(proxy.port());
        c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        c.send("400\r\n" + std::string(1024, 'x') + "\r\n");
        c.send("400\r\n" + std::string(1024, 'x') + "\r\n0\r\n\r\n");
        EXPECT_EQ(read_response(c).status, 413);
    }
}

TEST(ProxyTest, Answers503OverMaxConnections) {
    ScriptedUpstream up(echo_target("x"));
    auto cfg = test_config({up.port()});
    cfg.limits.max_connections = 1;
    RunningProxy proxy(std::move(cfg));
    auto first = Socket::connect(proxy.port());
    first.send(get("/"));
    ASSERT_EQ(read_response(first).status, 200);  // the first is now surely counted
    auto second = Socket::connect(proxy.port());
    second.send(get("/"));
    auto res = read_response(second);
    EXPECT_EQ(res.status, 503);
    EXPECT_TRUE(second.closed_within(3s));
    first.close();
    EXPECT_TRUE(eventually([&] {
        auto c = Socket::connect(proxy.port());
        c.send(get("/"));
        return read_response(c).status == 200;
    }));
}

TEST(ProxyTest, RemovesHopByHopHeadersBothWays) {
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        while (u.next_request(s)) {
            s.send(http_response(200, "ok",
                                 "Connection: X-Resp-Private\r\nX-Resp-Private: 1\r\n"
                                 "Keep-Alive: timeout=5\r\nX-Resp-Public: 2\r\n"));
        }
    });
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send(get("/",
               "Connection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: 5\r\n"
               "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\n"
               "Upgrade: h2c\r\nX-Public: 2\r\n"));
    auto res = read_response(c);
    ASSERT_EQ(res.status, 200);
    auto seen = up.requests().at(0);
    for (const char* name : {"X-Private", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
                             "Upgrade", "Connection"}) {
        EXPECT_FALSE(seen.header(name)) << name << " reached the upstream";
    }
    EXPECT_EQ(seen.header("X-Public"), "2");
    EXPECT_FALSE(res.header("X-Resp-Private"));
    EXPECT_FALSE(res.header("Keep-Alive"));
    EXPECT_EQ(res.header("X-Resp-Public"), "2");
}

TEST(ProxyTest, AddsForwardedHeadersAndARequestId) {
    ScriptedUpstream up(echo_target("x"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send(get("/"));
    auto res = read_response(c);
    auto seen = up.requests().at(0);
    EXPECT_EQ(seen.header("X-Forwarded-For"), "127.0.0.1");
    EXPECT_EQ(seen.header("X-Forwarded-Proto"), "http");
    EXPECT_EQ(seen.header("X-Forwarded-Host"), "app.test");
    EXPECT_EQ(seen.header("Host"), "app.test");
    auto id = seen.header("X-Request-Id");
    ASSERT_TRUE(id);
    EXPECT_TRUE(std::regex_match(*id, std::regex("[0-9a-f]{32}")));
    EXPECT_EQ(res.header("X-Request-Id"), id);

    c.send(get("/", "X-Request-Id: trace-42\r\nX-Forwarded-For: 198.51.100.7\r\n"));
    res = read_response(c);
    seen = up.requests().at(1);
    EXPECT_EQ(seen.header("X-Request-Id"), "trace-42");
    EXPECT_EQ(res.header("X-Request-Id"), "trace-42");
    // From a peer outside proxy.trusted_proxies the client's list is replaced.
    EXPECT_EQ(seen.header("X-Forwarded-For"), "127.0.0.1");
}

// Header storage is reused from one exchange to the next and, between
// connections, through the worker's spares: nothing of one exchange may show in
// another, including after a header too large to keep.
TEST(ProxyTest, NothingOfOneExchangeShowsInTheNext) {
    int n = 0;
    ScriptedUpstream up([&n](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            ++n;
            const std::string extra =
                n == 1 ? "X-Only-First: " + std::string(20000, 'r') + "\r\n" : std::string();
            s.send(http_response(200, req->target, extra));
        }
    });
    RunningProxy proxy(test_config({up.port()}));
    {
        auto c = Socket::connect(proxy.port());
        c.send(get("/big", "X-Big: " + std::string(12000, 'b') + "\r\nX-Request-Id: first\r\n"));
        auto res = read_response(c);
        ASSERT_EQ(res.status, 200);
        EXPECT_EQ(res.header("X-Only-First")->size(), 20000u);
        EXPECT_EQ(res.header("X-Request-Id"), "first");
        c.send(get("/small"));
        res = read_response(c);
        ASSERT_EQ(res.status, 200);
        EXPECT_EQ(res.body, "/small");
        EXPECT_FALSE(res.header("X-Only-First"));
        EXPECT_NE(res.header("X-Request-Id"), "first");
    }
    for (int i = 0; i < 4; ++i) {  // new connections, served with the spares
        auto c = Socket::connect(proxy.port());
        c.send(get("/next" + std::to_string(i), i == 0 ? "X-Mine: 1\r\n" : ""));
        auto res = read_response(c);
        ASSERT_EQ(res.status, 200);
        EXPECT_EQ(res.body, "/next" + std::to_string(i));
    }
    const auto seen = up.requests();
    ASSERT_EQ(seen.size(), 6u);
    EXPECT_EQ(seen[0].header("X-Big")->size(), 12000u);
    for (std::size_t i = 1; i < seen.size(); ++i) {
        EXPECT_FALSE(seen[i].header("X-Big")) << i;
        EXPECT_NE(seen[i].header("X-Request-Id"), "first") << i;
        EXPECT_EQ(seen[i].header("X-Mine").has_value(), i == 2) << i;
        EXPECT_EQ(seen[i].header("Host"), "app.test") << i;
    }
}

// A client that asks to close gets its response and the FIN together (the
// proxy holds the last bytes for the close to send): all of it must arrive,
// with or without a body, and the connection must end.
TEST(ProxyTest, AClientThatAsksToCloseGetsTheWholeResponseThenTheClose) {
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->target == "/empty") {
                s.send("HTTP/1.1 204 No Content\r\n\r\n");
            } else {
                s.send(http_response(200, std::string(100000, 'z')));
            }
        }
    });
    RunningProxy proxy(test_config({up.port()}));
    for (const char* target : {"/big", "/empty"}) {
        auto c = Socket::connect(proxy.port());
        c.send(get(target, "Connection: close\r\n"));
        auto res = read_response(c);
        if (std::string_view(target) == "/big") {
            EXPECT_EQ(res.status, 200);
            EXPECT_EQ(res.body.size(), 100000u);
        } else {
            EXPECT_EQ(res.status, 204);
            EXPECT_TRUE(res.body.empty());
        }
        EXPECT_EQ(res.header("Connection"), "close");
        EXPECT_TRUE(c.closed_within(3s)) << target;
    }
    EXPECT_EQ(up.request_count(), 2u);
}

TEST(ProxyTest, StreamsAChunkedRequestBody) {
    ScriptedUpstream up(echo_target("x"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    c.send("1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
    EXPECT_EQ(read_response(c).status, 200);
    auto seen = up.requests().at(0);
    EXPECT_TRUE(seen.chunked);
    EXPECT_EQ(seen.body, "hello world");
}

TEST(ProxyTest, Expect100ContinueIsAnsweredBeforeTheBody) {
    ScriptedUpstream up(echo_target("x"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    EXPECT_EQ(c.read_until("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
    c.send("data");
    EXPECT_EQ(read_response(c).status, 200);
    auto seen = up.requests().at(0);
    EXPECT_EQ(seen.body, "data");
    EXPECT_FALSE(seen.header("Expect"));
}

TEST(ProxyTest, PipelinedRequestsAreAnsweredInOrder) {
    ScriptedUpstream up(echo_target("x"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send(get("/1") + "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + get("/3"));
    EXPECT_EQ(read_response(c).body, "x /1");
    EXPECT_EQ(read_response(c).body, "x /2");
    EXPECT_EQ(read_response(c).body, "x /3");
}

TEST(ProxyTest, Http10ClientGetsAnUnchunkedBodyThenClose) {
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        u.next_request(s);
        s.send(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
            "chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n");
        s.read_to_eof(10s);
    });
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET / HTTP/1.0\r\n\r\n");
    auto res = read_response(c);
    EXPECT_EQ(res.start_line.substr(0, 8), "HTTP/1.0");
    EXPECT_FALSE(res.header("Transfer-Encoding"));
    EXPECT_EQ(res.body, "abcdef");  // read to EOF: the proxy closed after the body
    // HTTP/1.0 requests reach the upstream as HTTP/1.1 with a Host.
    EXPECT_EQ(up.requests().at(0).version, "HTTP/1.1");
    EXPECT_TRUE(up.requests().at(0).header("Host"));
}

TEST(ProxyTest, Http10KeepAlive) {
    ScriptedUpstream up(echo_target("x"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    for (int i = 0; i < 2; ++i) {
        c.send("GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        auto res = read_response(c);
        EXPECT_EQ(res.body, "x /k");
        EXPECT_EQ(res.header("Connection"), "keep-alive");
    }
    c.send("GET /k HTTP/1.0\r\n\r\n");
    EXPECT_EQ(read_response(c).status, 200);
    EXPECT_TRUE(c.closed_within(3s));
}

TEST(ProxyTest, HeadResponsesKeepTheirLengthButCarryNoBody) {
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->method == "HEAD") {
                s.send("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
            } else {
                s.send(http_response(200, "body"));
            }
        }
    });
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    auto res = read_response(c, 5s, /*head_request=*/true);
    EXPECT_EQ(res.header("Content-Length"), "1234");
    c.send(get("/"));
    EXPECT_EQ(read_response(c).body, "body");  // nothing stray between the two
}

TEST(ProxyTest, UpstreamDyingMidResponseClosesTheClientAndOthersAreServed) {
    ScriptedUpstream dying([](Socket& s, ScriptedUpstream& u) {
        auto req = u.next_request(s);
        if (req && req->target == "/die") {
            s.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(100, 'x'));
            return;  // closes with 900 bytes missing
        }
        s.send(http_response(200, "fine"));
    });
    RunningProxy proxy(test_config({dying.port()}));
    auto c = Socket::connect(proxy.port());
    c.send(get("/die"));
    auto head = c.read_until("\r\n\r\n");
    EXPECT_NE(head.find("Content-Length: 1000"), std::string::npos);
    auto rest = c.read_to_eof(5s);
    EXPECT_LT(rest.size(), 1000u);  // the client sees the truncation, not a fake success

    auto other = Socket::connect(proxy.port());
    other.send(get("/ok"));
    EXPECT_EQ(read_response(other).body, "fine");
}

TEST(ProxyTest, UpstreamThatLiesAboutFramingGets502) {
    ScriptedUpstream liar([](Socket& s, ScriptedUpstream& u) {
        u.next_request(s);
        s.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello");
    });
    RunningProxy proxy(test_config({liar.port()}));
    auto c = Socket::connect(proxy.port());
    c.send(get("/"));
    EXPECT_EQ(read_response(c).status, 502);
}

TEST(ProxyTest, StalePooledConnectionIsReplacedTransparently) {
    // The upstream closes every connection after one response, without saying so.
    ScriptedUpstream rude([](Socket& s, ScriptedUpstream& u) {
        if (u.next_request(s)) {
            s.send(http_response(200, "once"));
        }
    });
    RunningProxy proxy(test_config({rude.port()}));
    auto c = Socket::connect(proxy.port());
    for (int i = 0; i < 5; ++i) {
        c.send(get("/"));
        auto res = read_response(c);
        ASSERT_EQ(res.status, 200) << "request " << i;
        EXPECT_EQ(res.body, "once");
    }
}

TEST(ProxyTest, LargeBodiesStreamBothWaysWithBoundedMemory) {
    constexpr std::size_t kSize = 50 * 1024 * 1024;
    ScriptedUpstream sink([](Socket& s, ScriptedUpstream&) {
        // Counts the upload without keeping it, then streams a download back.
        auto head = s.read_until("\r\n\r\n", 30s);
        std::size_t got = 0;
        while (got < kSize) {
            got += s.read_some(30s).size();
        }
        s.send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kSize) + "\r\n\r\n");
        const std::string block(1 << 16, 'd');
        for (std::size_t sent = 0; sent < kSize; sent += block.size()) {
            s.send(block);
        }
    });
    auto cfg = test_config({sink.port()});
    cfg.limits.max_body_bytes = 64 * 1024 * 1024;
    RunningProxy proxy(std::move(cfg));
    const auto rss_before = rss_kib();

    auto c = Socket::connect(proxy.port());
    c.send("POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::to_string(kSize) +
           "\r\n\r\n");
    const std::string block(1 << 16, 'u');
    for (std::size_t sent = 0; sent < kSize; sent += block.size()) {
        c.send(block);
    }
    auto head = c.read_until("\r\n\r\n", 30s);
    EXPECT_NE(head.find(" 200 "), std::string::npos);
    std::size_t got = 0;
    while (got < kSize) {
        auto part = c.read_some(30s);
        ASSERT_FALSE(part.empty());
        got += part.size();
    }
    EXPECT_EQ(got, kSize);
#if !defined(__SANITIZE_ADDRESS__)
    // A buffering proxy would grow by ~100 MiB here. (Under ASan freed blocks stay
    // resident in its quarantine, so RSS is only meaningful in normal builds.)
    const auto growth_mib = (rss_kib() - std::min(rss_kib(), rss_before)) / 1024;
    EXPECT_LT(growth_mib, 24u) << "resident memory grew by " << growth_mib << " MiB";
#else
    (void)rss_before;
#endif
}

TEST(ProxyTest, TheColorIsChosenPerRequestNotPerConnection) {
    ScriptedUpstream blue(echo_target("blue"));
    ScriptedUpstream green(echo_target("green"));
    RunningProxy proxy(test_config({blue.port()}, {green.port()}));
    auto c = Socket::connect(proxy.port());
    c.send(get("/"));
    EXPECT_EQ(read_response(c).header("X-Upstream"), "blue");
    proxy.server->color_state().publish(Color::Green, 1);
    c.send(get("/"));  // same keep-alive connection
    EXPECT_EQ(read_response(c).header("X-Upstream"), "green");
}

TEST(ProxyTest, PreviewListenerServesTheIdleColor) {
    ScriptedUpstream blue(echo_target("blue"));
    ScriptedUpstream green(echo_target("green"));
    auto cfg = test_config({blue.port()}, {green.port()});
    cfg.preview = config::HostPort{"127.0.0.1", 0};
    RunningProxy proxy(std::move(cfg));
    auto live = Socket::connect(proxy.port());
    auto preview = Socket::connect(*proxy.server->preview_port());
    live.send(get("/"));
    preview.send(get("/"));
    EXPECT_EQ(read_response(live).header("X-Upstream"), "blue");
    EXPECT_EQ(read_response(preview).header("X-Upstream"), "green");
}

TEST(ProxyTest, ColorHeaderOnlyWhenExposed) {
    ScriptedUpstream blue(echo_target("blue"));
    auto cfg = test_config({blue.port()});
    cfg.proxy.expose_color_header = true;
    RunningProxy exposed(cfg);
    auto c = Socket::connect(exposed.port());
    c.send(get("/"));
    EXPECT_EQ(read_response(c).header("X-Bgswitch-Color"), "blue");

    RunningProxy hidden(test_config({blue.port()}));
    auto h = Socket::connect(hidden.port());
    h.send(get("/"));
    EXPECT_FALSE(read_response(h).header("X-Bgswitch-Color"));
}

TEST(ProxyTest, WritesAnAccessLogLinePerRequest) {
    ScriptedUpstream up(echo_target("x"));
    std::string path;
    RunningProxy proxy(with_json_access_log(up.port(), "access", path));
    auto c = Socket::connect(proxy.port());
    c.send(get("/logged?q=1", "X-Request-Id: log-me\r\n"));
    ASSERT_EQ(read_response(c).status, 200);
    const auto line = first_access_line(path);
    ASSERT_FALSE(line.empty());
    EXPECT_NE(line.find(R"("method":"GET","target":"/logged?q=1")"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("status":200)"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("color":"blue")"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("request_id":"log-me")"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("upstream":"127.0.0.1:)" + std::to_string(up.port())), std::string::npos)
        << line;
    EXPECT_NE(line.find(R"("bytes_sent":13)"), std::string::npos) << line;
    std::remove(path.c_str());
}

// An upstream that dies after its status line was relayed: the client saw a
// truncated 200, and the log, the access log and the metrics say exactly that
// (not a 502 the client never received).
TEST(ProxyTest, AnUpstreamThatDiesMidResponseIsRecordedAsATruncated200) {
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        if (u.next_request(s)) {
            s.send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b");
        }
    });
    std::string path;
    RunningProxy proxy(with_json_access_log(up.port(), "access_err", path));
    auto c = Socket::connect(proxy.port());
    c.send(get("/cut"));
    const auto head = c.read_until("\r\n\r\n");
    EXPECT_NE(head.find("200 OK"), std::string::npos);
    EXPECT_EQ(c.read_to_eof(), "only ten b");
    const auto line = first_access_line(path);
    ASSERT_FALSE(line.empty());
    EXPECT_NE(line.find(R"("status":200)"), std::string::npos) << line;
    EXPECT_NE(line.find(R"("error":"upstream_reset")"), std::string::npos) << line;
    const auto& m = proxy.server->shared().metrics;
    EXPECT_EQ(m.error_count(index(Color::Blue), ErrorSource::Upstream, ErrorKind::Reset), 1u);
    EXPECT_EQ(m.requests(Color::Blue, 5), 0u);
    std::remove(path.c_str());
}

// The proxy's own answers name their source and kind too.
TEST(ProxyTest, ProxyAnswersAreCountedBySourceAndKind) {
    auto cfg = test_config({dead_port()});
    RunningProxy proxy(std::move(cfg));
    auto c = Socket::connect(proxy.port());
    c.send(get("/"));
    EXPECT_EQ(read_response(c).status, 502);
    auto bad = Socket::connect(proxy.port());
    bad.send("GET / HTTP/1.1\r\n\r\n");  // no Host
    EXPECT_EQ(read_response(bad).status, 400);
    const auto& m = proxy.server->shared().metrics;
    EXPECT_EQ(m.error_count(index(Color::Blue), ErrorSource::Upstream, ErrorKind::Refused), 2u)
        << "the refused connect, and the 502 it led to";
    EXPECT_EQ(m.error_count(2, ErrorSource::Client, ErrorKind::Protocol), 1u);
}

TEST(ProxyTest, ShutdownLetsInFlightRequestsFinishAndRefusesNewOnes) {
    std::promise<void> hold;
    auto held = hold.get_future().share();
    ScriptedUpstream slow([held](Socket& s, ScriptedUpstream& u) {
        while (auto req = u.next_request(s)) {
            if (req->target == "/in-flight") {
                held.wait();
            }
            s.send(http_response(200, "finished"));
        }
    });
    RunningProxy proxy(test_config({slow.port()}));
    auto idle = Socket::connect(proxy.port());
    idle.send(get("/"));
    ASSERT_EQ(read_response(idle).status, 200);  // now an idle keep-alive connection

    auto busy = Socket::connect(proxy.port());
    busy.send(get("/in-flight"));
    ASSERT_TRUE(eventually([&] { return slow.request_count() == 2; }));
    proxy.server->shutdown();
    // The idle connection is closed and the listener stops accepting, while the
    // in-flight request is still held by the upstream.
    EXPECT_TRUE(idle.closed_within(3s));
    EXPECT_TRUE(eventually([&] {
        try {
            Socket::connect(proxy.port());
            return false;
        } catch (const std::runtime_error&) {
            return true;
        }
    }));
    hold.set_value();
    auto res = read_response(busy);
    EXPECT_EQ(res.body, "finished");
    EXPECT_EQ(res.header("Connection"), "close");
    proxy.server->wait();
}

}  // namespace
}  // namespace bgs::test
