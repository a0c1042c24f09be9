#include "proxy/http/headers.hpp"

#include <gtest/gtest.h>

#include <boost/beast/http/error.hpp>

#include <initializer_list>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace bgs::http {
namespace {

Fields make(std::initializer_list<std::pair<const char*, const char*>> fields) {
    Fields f;
    for (const auto& [name, value] : fields) {
        f.insert(name, value);
    }
    return f;
}

TEST(FramingTest, TableOfRequestFramings) {
    struct Case {
        std::initializer_list<std::pair<const char*, const char*>> fields;
        unsigned version;
        const char* error;  // nullptr: accepted
    };
    const Case cases[] = {
        {{{"Host", "a"}}, 11, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5"}}, 11, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Content-Length", "5"}}, 11, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5, 5"}}, 11, nullptr},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, 11, nullptr},
        {{{"Host", "a"}, {"Transfer-Encoding", "Chunked"}}, 11, nullptr},
        {{}, 10, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
         11,
         "both Content-Length and Transfer-Encoding"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Content-Length", "0"}},
         11,
         "both Content-Length and Transfer-Encoding"},
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Content-Length", "6"}},
         11,
         "several different Content-Length values"},
        {{{"Host", "a"}, {"Content-Length", "5, 7"}},
         11,
         "several different Content-Length values"},
        {{{"Host", "a"}, {"Content-Length", "+5"}}, 11, "invalid Content-Length"},
        {{{"Host", "a"}, {"Content-Length", "0x5"}}, 11, "invalid Content-Length"},
        {{{"Host", "a"}, {"Transfer-Encoding", "gzip"}},
         11,
         "Transfer-Encoding does not end with chunked"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked, gzip"}},
         11,
         "Transfer-Encoding does not end with chunked"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "identity"}},
         11,
         "Transfer-Encoding does not end with chunked"},
        {{{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}},
         11,
         "unsupported Transfer-Encoding (only chunked is accepted)"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked, chunked"}},
         11,
         "unsupported Transfer-Encoding (only chunked is accepted)"},
        {{{"Transfer-Encoding", "chunked"}}, 10, "Transfer-Encoding in an HTTP/1.0 request"},
        {{}, 11, "missing Host"},
        {{{"Host", "a"}, {"Host", "b"}}, 11, "several Host fields"},
    };
    for (const auto& c : cases) {
        auto f = make(c.fields);
        auto err = request_framing_error(f, c.version);
        if (c.error == nullptr) {
            EXPECT_FALSE(err) << *err;
        } else {
            ASSERT_TRUE(err) << "accepted but should fail with: " << c.error;
            EXPECT_EQ(*err, c.error);
        }
    }
}

UpstreamRequestHead basic_request() {
    UpstreamRequestHead h;
    h.method = "GET";
    h.target = "/p?q=1";
    h.client_ip = "127.0.0.1";
    h.request_id = "rid";
    return h;
}

TEST(HeaderRewriteTest, RequestHeadDropsHopByHopAndTheFieldsConnectionNames) {
    auto in = make({{"Host", "a"},
                    {"Connection", "keep-alive, X-Secret"},
                    {"X-Secret", "1"},
                    {"Keep-Alive", "timeout=5"},
                    {"Proxy-Connection", "keep-alive"},
                    {"TE", "trailers"},
                    {"Trailer", "X-T"},
                    {"Transfer-Encoding", "chunked"},
                    {"Upgrade", "websocket"},
                    {"Content-Length", "3"},
                    {"X-Keep", "yes"},
                    {"Accept", "a"},
                    {"Accept", "b"}});
    auto h = basic_request();
    h.host = "a";
    h.framing = Framing::Chunked;
    std::string out;
    write_upstream_request_head(out, in, h);
    EXPECT_EQ(out,
              "GET /p?q=1 HTTP/1.1\r\n"
              "Host: a\r\nX-Keep: yes\r\nAccept: a\r\nAccept: b\r\n"
              "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n"
              "X-Request-Id: rid\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(HeaderRewriteTest, ForwardingHeadersFromAnUntrustedPeerAreReplaced) {
    auto in = make({{"Host", "example.com"},
                    {"X-Forwarded-For", "203.0.113.9"},
                    {"X-Forwarded-For", "198.51.100.1"},
                    {"X-Forwarded-Proto", "https"},
                    {"X-Forwarded-Host", "evil"},
                    {"X-Request-Id", "client-id"},
                    {"Expect", "100-continue"}});
    auto h = basic_request();
    h.host = "example.com";
    h.request_id = "client-id";
    h.drop_expect = true;
    h.framing = Framing::Length;
    h.content_length = 42;
    std::string out;
    write_upstream_request_head(out, in, h);
    EXPECT_EQ(out,
              "GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\n"
              "X-Forwarded-For: 127.0.0.1\r\n"
              "X-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n"
              "X-Request-Id: client-id\r\nContent-Length: 42\r\n\r\n");
}

// A load balancer in proxy.trusted_proxies: its list is appended to, and a TLS
// load balancer's "https" passes through.
TEST(HeaderRewriteTest, ForwardingHeadersFromATrustedPeerAreKept) {
    auto in = make({{"Host", "example.com"},
                    {"X-Forwarded-For", "203.0.113.9"},
                    {"X-Forwarded-For", "198.51.100.1"},
                    {"X-Forwarded-Proto", "https"},
                    {"X-Forwarded-Host", "shop.example"}});
    auto h = basic_request();
    h.host = "example.com";
    h.trusted_peer = true;
    std::string out;
    write_upstream_request_head(out, in, h);
    EXPECT_EQ(out,
              "GET /p?q=1 HTTP/1.1\r\nHost: example.com\r\n"
              "X-Forwarded-For: 203.0.113.9, 198.51.100.1, 127.0.0.1\r\n"
              "X-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n"
              "X-Request-Id: rid\r\n\r\n");
}

// Connection lists hop-by-hop fields; it must not remove Host or let a
// client's own forwarding fields through.
TEST(HeaderRewriteTest, ConnectionCannotRemoveFieldsTheProxyOwns) {
    auto in = make({{"Host", "a"},
                    {"Connection", "Host, X-Forwarded-For, X-Request-Id"},
                    {"X-Forwarded-For", "6.6.6.6"}});
    auto h = basic_request();
    h.host = "a";
    std::string out;
    write_upstream_request_head(out, in, h);
    EXPECT_EQ(out,
              "GET /p?q=1 HTTP/1.1\r\nHost: a\r\n"
              "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: a\r\n"
              "X-Request-Id: rid\r\n\r\n");
}

TEST(HeaderRewriteTest, RequestHeadForTunnelsAndHostlessClients) {
    auto in =
        make({{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "k"}});
    auto h = basic_request();
    h.upgrade = true;
    h.host = "10.0.0.1:9001";
    std::string out;
    write_upstream_request_head(out, in, h);
    EXPECT_EQ(
        out,
        "GET /p?q=1 HTTP/1.1\r\nHost: 10.0.0.1:9001\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: k\r\nX-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: 10.0.0.1:9001\r\nX-Request-Id: rid\r\nConnection: upgrade\r\n\r\n");
    EXPECT_TRUE(is_upgrade_request(in, 11));
    EXPECT_FALSE(is_upgrade_request(in, 10));
    EXPECT_FALSE(is_upgrade_request(make({{"Upgrade", "websocket"}}), 11));
}

TEST(RequestTargetTest, FormsAndHosts) {
    struct Case {
        const char* method;
        const char* target;
        const char* host;  // the Host field; nullptr for none
        const char* want_host;
        const char* want_target;
        const char* error;  // nullptr when accepted
    };
    const Case cases[] = {
        {"GET", "/a?b", "example.com:8080", "example.com:8080", "/a?b", nullptr},
        {"GET", "/", "[::1]:80", "[::1]:80", "/", nullptr},
        {"GET", "/", "10.0.0.1", "10.0.0.1", "/", nullptr},
        {"GET", "/", nullptr, "", "/", nullptr},
        // RFC 9112 §3.2.2: the authority of an absolute-form target is the Host.
        {"GET", "http://other/echo?x=1", "a", "other", "/echo?x=1", nullptr},
        {"GET", "HTTPS://other:8443", "a", "other:8443", "", nullptr},
        {"GET", "http://other?x", "a", "other", "?x", nullptr},
        {"OPTIONS", "*", "a", "a", "*", nullptr},
        {"GET", "*", "a", "a", "*", "asterisk-form target outside OPTIONS"},
        {"GET", "http://user:pass@evil/", "a", "", "", "userinfo in the request target"},
        {"GET", "ftp://x/", "a", "", "",
         "request target is not origin-form or an http(s) absolute URI"},
        {"GET", "x/y", "a", "", "", "request target is not origin-form or an http(s) absolute URI"},
        {"GET", "http://a b/", "a", "", "", "invalid authority in the request target"},
        {"GET", "/", "a b/c", "", "", "invalid Host"},
        {"GET", "/", "user:pass@evil", "", "", "invalid Host"},
        {"GET", "/", "", "", "", "invalid Host"},
        {"GET", "/", "a:99x", "", "", "invalid Host"},
        {"GET", "/", "[zz]", "", "", "invalid Host"},
    };
    for (const auto& c : cases) {
        Fields f;
        if (c.host != nullptr) {
            f.insert("Host", c.host);
        }
        const auto r = resolve_target(f, c.method, c.target);
        if (c.error != nullptr) {
            ASSERT_TRUE(r.error) << c.target << " Host " << (c.host ? c.host : "-");
            EXPECT_EQ(*r.error, c.error) << c.target;
            continue;
        }
        ASSERT_FALSE(r.error) << c.target << ": " << *r.error;
        EXPECT_EQ(r.host, c.want_host) << c.target;
        EXPECT_EQ(r.target, c.want_target) << c.target;
    }
}

TEST(HeaderRewriteTest, AbsoluteFormGoesUpstreamInOriginFormWithItsAuthority) {
    auto in = make({{"Host", "a"}, {"Accept", "*/*"}});
    const auto where = resolve_target(in, "GET", "http://other?x");
    auto h = basic_request();
    h.target = where.target;
    h.host = where.host;
    std::string out;
    write_upstream_request_head(out, in, h);
    EXPECT_EQ(out.substr(0, out.find("X-Forwarded-For")),
              "GET /?x HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n");
}

TEST(HeaderRewriteTest, ResponseHeadFramingAndConnection) {
    auto in = make({{"Content-Type", "text/plain"},
                    {"Connection", "close, X-Private"},
                    {"X-Private", "1"},
                    {"Transfer-Encoding", "chunked"},
                    {"X-Request-Id", "upstream-made-this-up"}});
    struct Case {
        ClientResponseHead h;
        std::string expected;
    };
    ClientResponseHead chunked;
    chunked.request_id = "rid";
    chunked.framing = Framing::Chunked;
    ClientResponseHead http10 = chunked;
    http10.version = 10;
    http10.framing = Framing::Length;
    http10.content_length = 5;
    ClientResponseHead closing = chunked;
    closing.keep_alive = false;
    closing.status = 404;
    closing.reason = "Gone Fishing";
    closing.color = "green";
    const Case cases[] = {
        {chunked,
         "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: rid\r\n"
         "Transfer-Encoding: chunked\r\n\r\n"},
        {http10,
         "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nX-Request-Id: rid\r\n"
         "Content-Length: 5\r\nConnection: keep-alive\r\n\r\n"},
        {closing,
         "HTTP/1.1 404 Gone Fishing\r\nContent-Type: text/plain\r\nX-Request-Id: rid\r\n"
         "X-Bgswitch-Color: green\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"},
    };
    for (const auto& c : cases) {
        std::string out;
        write_client_response_head(out, in, c.h);
        EXPECT_EQ(out, c.expected);
    }
}

std::string id_for(const Fields& in) {
    std::string id = "previous";  // overwritten whatever it held
    request_id_for(in, id);
    return id;
}

TEST(HeaderRewriteTest, RequestIdKeptWhenSaneElseGenerated) {
    EXPECT_EQ(id_for(make({{"X-Request-Id", "abc-123"}})), "abc-123");
    EXPECT_EQ(id_for(make({{"x-request-id", "lower"}})), "lower");
    const auto generated = id_for(make({}));
    EXPECT_EQ(generated.size(), 32u);
    EXPECT_NE(generated, id_for(make({})));
    EXPECT_NE(id_for(make({{"X-Request-Id", "has space"}})), "has space");
    EXPECT_EQ(id_for(make({{"X-Request-Id", std::string(200, 'a').c_str()}})).size(), 32u);
}

}  // namespace
}  // namespace bgs::http

namespace bgs::net {
namespace {

template <typename Parser>
std::size_t feed(Parser& p, std::string_view bytes, boost::system::error_code& ec) {
    return p.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
}

// Found by tests/fuzz/response_fuzz.cpp: "034" parsed as status 34 and went
// to the client as "HTTP/1.1 34", which no client reads.
TEST(ResponseParserTest, AStatusOutsideOneToFiveHundredIsAnError) {
    for (const char* line :
         {"HTTP/1.1 034 No\r\n\r\n", "HTTP/1.1 000 No\r\n\r\n", "HTTP/1.1 099 No\r\n\r\n",
          "HTTP/1.1 600 No\r\n\r\n", "HTTP/1.1 999 No\r\n\r\n"}) {
        FlatFields storage;
        ResponseParser p(storage);
        boost::system::error_code ec;
        feed(p, line, ec);
        EXPECT_EQ(ec, boost::beast::http::error::bad_status) << line;
    }
    for (const char* line : {"HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 599 X\r\n\r\n"}) {
        FlatFields storage;
        ResponseParser p(storage);
        boost::system::error_code ec;
        feed(p, line, ec);
        EXPECT_FALSE(ec) << line << ": " << ec.message();
        EXPECT_TRUE(p.is_header_done());
    }
}

TEST(ResponseParserTest, KeepsFieldsInOrderAndWritesTheSameHeadAsFieldsBuiltByHand) {
    constexpr std::string_view head =
        "HTTP/1.1 201 Made It\r\n"
        "Content-Type: text/plain\r\n"
        "Set-Cookie: a=1\r\n"
        "Connection: close, X-Private\r\n"
        "X-Private: 1\r\n"
        "Set-Cookie: b=2\r\n"
        "Transfer-Encoding: chunked\r\n"
        "\r\n";
    FlatFields storage;
    ResponseParser p(storage);
    boost::system::error_code ec;
    EXPECT_EQ(feed(p, head, ec), head.size());
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_TRUE(p.is_header_done());
    EXPECT_EQ(p.status(), 201u);
    EXPECT_EQ(p.reason(), "Made It");
    EXPECT_FALSE(p.keep_alive());
    EXPECT_TRUE(p.chunked());
    std::vector<std::string> names;
    for (const auto& f : p.fields()) {
        names.emplace_back(f.name_string());
    }
    EXPECT_EQ(names, (std::vector<std::string>{"Content-Type", "Set-Cookie", "Connection",
                                               "X-Private", "Set-Cookie", "Transfer-Encoding"}));

    http::Fields by_hand;
    for (const auto& f : p.fields()) {
        by_hand.insert(std::string(f.name_string()), std::string(f.value()));
    }
    http::ClientResponseHead h;
    h.status = 201;
    h.reason = p.reason();
    h.request_id = "rid";
    h.framing = http::Framing::Chunked;
    std::string ours, theirs;
    http::write_client_response_head(ours, p.fields(), h);
    http::write_client_response_head(theirs, by_hand, h);
    EXPECT_EQ(ours, theirs);
    EXPECT_EQ(ours,
              "HTTP/1.1 201 Made It\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n"
              "Set-Cookie: b=2\r\nX-Request-Id: rid\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(ResponseParserTest, BodyArrivesThroughWindowsAndStorageIsReused) {
    FlatFields storage;
    {
        ResponseParser first(storage);
        boost::system::error_code ec;
        feed(first, "HTTP/1.1 200 OK\r\nX-First: 1\r\nContent-Length: 0\r\n\r\n", ec);
        ASSERT_TRUE(first.is_done());
    }
    ResponseParser p(storage);
    constexpr std::string_view msg =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    std::string_view rest = msg;
    std::string body;
    char window[4];
    boost::system::error_code ec;
    while (!p.is_done()) {
        p.set_window(window, sizeof window);
        const auto used = feed(p, rest, ec);
        ASSERT_TRUE(!ec || ec == boost::beast::http::error::need_buffer) << ec.message();
        rest.remove_prefix(used);
        body.append(window, sizeof window - p.window_left());
    }
    EXPECT_EQ(body, "hello, world");
    EXPECT_TRUE(rest.empty());
    EXPECT_EQ(p.fields().count(boost::beast::http::field::transfer_encoding), 1u);
    EXPECT_EQ(std::distance(p.fields().begin(), p.fields().end()), 1);  // X-First is gone
}

TEST(RequestParserTest, KeepsTheStartLineAndFieldsWhenTheHeaderArrivesInPieces) {
    constexpr std::string_view head =
        "POST /a/rather/long/target?with=query&and=more HTTP/1.1\r\n"
        "Host: example.test\r\n"
        "X-Forwarded-For: 10.0.0.1\r\n"
        "Content-Length: 5\r\n"
        "\r\n"
        "hello";
    FlatFields storage;
    RequestParser p(storage);
    p.eager(true);
    boost::system::error_code ec;
    std::string buffered;
    std::string body;
    char window[8];
    // One byte at a time: the storage grows and moves while the header is parsed.
    for (char c : head) {
        buffered += c;
        p.set_window(window, sizeof window);
        const auto used = feed(p, buffered, ec);
        ASSERT_TRUE(!ec || ec == boost::beast::http::error::need_more) << ec.message();
        buffered.erase(0, used);
        body.append(window, sizeof window - p.window_left());
    }
    ASSERT_TRUE(p.is_done());
    EXPECT_EQ(p.method(), boost::beast::http::verb::post);
    EXPECT_EQ(p.method_string(), "POST");
    EXPECT_EQ(p.target(), "/a/rather/long/target?with=query&and=more");
    EXPECT_EQ(p.version(), 11u);
    EXPECT_EQ(body, "hello");
    ASSERT_TRUE(p.fields().find(boost::beast::http::field::host));
    EXPECT_EQ(p.fields().find(boost::beast::http::field::host)->value(), "example.test");
    ASSERT_TRUE(p.fields().find("x-forwarded-for"));
    EXPECT_EQ(p.fields().find("x-forwarded-for")->value(), "10.0.0.1");
    EXPECT_FALSE(p.fields().find("X-Missing"));
    EXPECT_EQ(p.fields().size(), 3u);
}

TEST(RequestParserTest, AnUnknownMethodIsKeptAndTheStorageIsReused) {
    FlatFields storage;
    {
        RequestParser first(storage);
        boost::system::error_code ec;
        feed(first, "GET / HTTP/1.1\r\nHost: a\r\nX-First: 1\r\n\r\n", ec);
        ASSERT_TRUE(first.is_done());
    }
    RequestParser p(storage);
    boost::system::error_code ec;
    feed(p, "FROBNICATE /x HTTP/1.0\r\n\r\n", ec);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(p.method(), boost::beast::http::verb::unknown);
    EXPECT_EQ(p.method_string(), "FROBNICATE");
    EXPECT_EQ(p.target(), "/x");
    EXPECT_EQ(p.version(), 10u);
    EXPECT_EQ(p.fields().size(), 0u);  // nothing of the first request is left
}

TEST(RequestParserTest, AStatusLineIsNotARequest) {
    FlatFields storage;
    RequestParser p(storage);
    boost::system::error_code ec;
    feed(p, "HTTP/1.1 200 OK\r\n\r\n", ec);
    EXPECT_TRUE(ec);
    EXPECT_FALSE(p.is_header_done());
}

}  // namespace
}  // namespace bgs::net
