// WebSocket tunnels through the proxy to the demo upstream's echo endpoint (a
// real Beast WebSocket server): handshake, text, binary, fragments, ping, close.
#include "proxy/demo/demo_upstream.hpp"
#include "proxy/http/ws_frame.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"
#include "tests/support/ws_util.hpp"

#include <gtest/gtest.h>

namespace bgs::test {
namespace {

using ws::encode_frame;
const auto& kMask = kClientMask;

class WebSocketTest : public ::testing::Test {
  protected:
    WebSocketTest() : blue_(Color::Blue, "127.0.0.1", 0), proxy_(test_config({blue_.port()})) {}

    Socket open() {
        auto s = Socket::connect(proxy_.port());
        s.send(
            "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
        auto res = read_response(s);
        EXPECT_EQ(res.status, 101);
        EXPECT_EQ(res.header("Sec-WebSocket-Accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        EXPECT_EQ(res.header("Upgrade"), "websocket");
        return s;
    }

    demo::DemoUpstream blue_;
    RunningProxy proxy_;
};

TEST_F(WebSocketTest, EchoesTextAndBinary) {
    auto s = open();
    s.send(encode_frame(ws::kText, "hello", true, kMask));
    auto f = read_frame(s);
    EXPECT_EQ(f.opcode, ws::kText);
    EXPECT_EQ(f.payload, "hello");
    const std::string binary("\x00\x01\xff\xfe", 4);
    s.send(encode_frame(ws::kBinary, binary, true, kMask));
    f = read_frame(s);
    EXPECT_EQ(f.opcode, ws::kBinary);
    EXPECT_EQ(f.payload, binary);
    const std::string large(200000, 'L');
    s.send(encode_frame(ws::kBinary, large, true, kMask));
    std::string echoed;
    do {
        f = read_frame(s);
        echoed += f.payload;
    } while (!f.fin);
    EXPECT_EQ(echoed, large);
}

TEST_F(WebSocketTest, ReassemblesFragmentedMessages) {
    auto s = open();
    s.send(encode_frame(ws::kText, "frag", false, kMask));
    s.send(encode_frame(ws::kContinuation, "ment", false, kMask));
    s.send(encode_frame(ws::kContinuation, "ed", true, kMask));
    std::string echoed;
    Frame f;
    do {
        f = read_frame(s);
        echoed += f.payload;
    } while (!f.fin);
    EXPECT_EQ(echoed, "fragmented");
}

TEST_F(WebSocketTest, PingGetsPong) {
    auto s = open();
    s.send(encode_frame(ws::kPing, "are you there", true, kMask));
    auto f = read_frame(s);
    EXPECT_EQ(f.opcode, ws::kPong);
    EXPECT_EQ(f.payload, "are you there");
}

TEST_F(WebSocketTest, CloseHandshakePassesThrough) {
    auto s = open();
    s.send(encode_frame(ws::kClose, ws::close_payload(1000, "done"), true, kMask));
    auto f = read_frame(s);
    EXPECT_EQ(f.opcode, ws::kClose);
    ASSERT_GE(f.payload.size(), 2u);
    EXPECT_EQ(
        (static_cast<unsigned char>(f.payload[0]) << 8) | static_cast<unsigned char>(f.payload[1]),
        1000);
    EXPECT_TRUE(s.closed_within(5s));
}

std::string numbered(int i) {
    std::string s = "n";
    s += std::to_string(i);
    return s;
}

TEST_F(WebSocketTest, ManyTunnelsAtOnce) {
    std::vector<Socket> sockets;
    for (int i = 0; i < 50; ++i) {
        sockets.push_back(open());
    }
    for (int i = 0; i < 50; ++i) {
        sockets[i].send(encode_frame(ws::kText, numbered(i), true, kMask));
    }
    for (int i = 0; i < 50; ++i) {
        EXPECT_EQ(read_frame(sockets[i]).payload, numbered(i));
    }
}

// A tunnel where nothing moves either way for timeouts.idle is closed, parked
// or not; one where a side keeps talking stays open past it.
TEST(TunnelTest, AQuietTunnelClosesAtTheIdleTimeout) {
    demo::DemoUpstream blue(Color::Blue, "127.0.0.1", 0);
    auto cfg = test_config({blue.port()});
    cfg.timeouts.idle = std::chrono::milliseconds(1500);
    RunningProxy proxy(cfg);
    auto quiet = open_websocket(proxy.port());
    auto chatty = open_websocket(proxy.port());
    const auto deadline = std::chrono::steady_clock::now() + 2500ms;
    int echoed = 0;
    while (std::chrono::steady_clock::now() < deadline) {
        chatty.send(client_text("ping"));
        echoed += read_frame(chatty).payload == "ping" ? 1 : 0;
        EXPECT_FALSE(chatty.closed_within(200ms));
    }
    EXPECT_GT(echoed, 5);
    EXPECT_TRUE(quiet.closed_within(3s));
}

TEST(TunnelTest, BytesSentWithTheHandshakeAreNotLost) {
    // The upstream sends its first frame in the same packet as the 101, and the
    // client sends its first bytes right behind the upgrade request.
    ScriptedUpstream up([](Socket& s, ScriptedUpstream& u) {
        u.next_request(s);
        s.send(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-raw\r\nConnection: Upgrade\r\n\r\n"
            "server-first;");
        auto got = s.read_until("client-first;", 5s);
        s.send("echo:" + got);
    });
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send(
        "GET /raw HTTP/1.1\r\nHost: a\r\nUpgrade: x-raw\r\nConnection: "
        "Upgrade\r\n\r\nclient-first;");
    auto res = read_response(c);
    EXPECT_EQ(res.status, 101);
    EXPECT_EQ(c.read_until("server-first;"), "server-first;");
    EXPECT_EQ(c.read_until("client-first;"), "echo:client-first;");
    EXPECT_TRUE(c.closed_within(5s));
}

TEST(TunnelTest, UpgradeRefusedByUpstreamIsAnOrdinaryResponse) {
    ScriptedUpstream up(ScriptedUpstream::respond_with("no upgrade for you"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    c.send("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    auto res = read_response(c);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "no upgrade for you");
    EXPECT_EQ(up.requests().at(0).header("Upgrade"), "websocket");
    EXPECT_EQ(up.requests().at(0).header("Connection"), "upgrade");
}

}  // namespace
}  // namespace bgs::test
