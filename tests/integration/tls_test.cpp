// TLS at the edge (SPEC section 8): certificates chosen by SNI, the version
// floor, ALPN, X-Forwarded-Proto, a handshake bounded by header_read,
// certificates that do not load or have expired, a reload that swaps the
// certificate while an open connection goes on, and a WebSocket over TLS
// drained with 1001 and close_notify. Certificates made by the test.
#include "proxy/config/loader.hpp"
#include "proxy/http/ws_frame.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_client.hpp"
#include "tests/support/ws_util.hpp"

#include <gtest/gtest.h>

#include <openssl/ssl.h>

#include <sys/socket.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <vector>

namespace bgs::test {
namespace {

using namespace std::chrono_literals;
const std::string kToken = "tls-token";

config::ListenerTls shop_and_api(bool tls13_only = false) {
    const auto& pki = TestPki::get();
    config::ListenerTls tls;
    tls.certificates = {{pki.shop_cert, pki.shop_key}, {pki.api_cert, pki.api_key}};
    tls.tls13_only = tls13_only;
    return tls;
}

config::Config tls_config(std::uint16_t blue, std::uint16_t green, config::ListenerTls tls) {
    auto cfg = test_config({blue}, {green});
    cfg.admin.token = kToken;
    cfg.listen_tls = {std::move(tls)};
    return cfg;
}

std::string metrics_of(RunningProxy& p) {
    return admin_call(p.server->admin_port(), "GET", "/metrics").body;
}

constexpr const char* kGet = "GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n";

TEST(TlsTest, SniChoosesTheCertificateAndTheFirstIsTheDefault) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(tls_config(blue.port(), green.port(), shop_and_api()));

    TlsClient api(proxy.port(), {.server_name = "x.api.test", .max_version = 0, .alpn = ""});
    ASSERT_TRUE(api.ok()) << api.error();
    EXPECT_EQ(api.peer_name(), "api.test");
    TlsClient other(proxy.port(), {.server_name = "unknown.test", .max_version = 0, .alpn = ""});
    ASSERT_TRUE(other.ok()) << other.error();
    EXPECT_EQ(other.peer_name(), "shop.test");
    TlsClient none(proxy.port(), {});
    ASSERT_TRUE(none.ok()) << none.error();
    EXPECT_EQ(none.peer_name(), "shop.test");

    // ALPN names http/1.1; requests go through, marked https upstream.
    TlsClient shop(proxy.port(),
                   {.server_name = "shop.test", .max_version = 0, .alpn = "http/1.1"});
    ASSERT_TRUE(shop.ok()) << shop.error();
    EXPECT_EQ(shop.alpn(), "http/1.1");
    for (int i = 0; i < 3; ++i) {  // keep-alive over TLS
        const auto [status, body] = shop.exchange(kGet);
        EXPECT_EQ(status, 200);
        EXPECT_EQ(body, "blue");
    }
    const auto seen = blue.requests().back();
    EXPECT_EQ(seen.header("X-Forwarded-Proto").value_or(""), "https");

    const auto m = metrics_of(proxy);
    EXPECT_NE(m.find("bgswitch_tls_handshakes_total{listener=\"127.0.0.1:0\",result=\"ok\"} 4"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("bgswitch_tls_certificate_expiry_timestamp_seconds{listener=\"127.0.0.1:0\","
                     "name=\"api.test\"}"),
              std::string::npos);
}

TEST(TlsTest, SessionsResumeWithTickets) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    RunningProxy proxy(tls_config(blue.port(), blue.port(), shop_and_api()));
    for (const int version : {TLS1_2_VERSION, TLS1_3_VERSION}) {
        TlsClient first(proxy.port(), {.server_name = "", .max_version = version, .alpn = ""});
        ASSERT_TRUE(first.ok()) << first.error();
        EXPECT_EQ(first.exchange(kGet).first, 200);  // TLS 1.3's tickets come after the handshake
        TlsClient again(proxy.port(),
                        {.server_name = "", .max_version = version, .alpn = "", .resume = &first});
        ASSERT_TRUE(again.ok()) << again.error();
        EXPECT_TRUE(again.resumed()) << "TLS version " << std::hex << version;
        EXPECT_EQ(again.exchange(kGet).first, 200);
    }
}

TEST(TlsTest, TheVersionFloorRefusesOlderClients) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(tls_config(blue.port(), green.port(), shop_and_api(/*tls13_only=*/true)));
    TlsClient old(proxy.port(), {.server_name = "", .max_version = TLS1_2_VERSION, .alpn = ""});
    EXPECT_FALSE(old.ok());
    TlsClient current(proxy.port(), {});
    ASSERT_TRUE(current.ok()) << current.error();
    EXPECT_EQ(current.exchange(kGet).first, 200);
    EXPECT_TRUE(eventually(
        [&] { return metrics_of(proxy).find("result=\"failed\"} 1") != std::string::npos; }));
}

TEST(TlsTest, AClientThatNeverShakesHandsIsClosedAfterHeaderRead) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = tls_config(blue.port(), green.port(), shop_and_api());
    cfg.timeouts.header_read = 300ms;
    RunningProxy proxy(cfg);
    auto silent = Socket::connect(proxy.port());
    EXPECT_TRUE(silent.closed_within(3s));
}

TEST(TlsTest, ACertificateThatDoesNotLoadStopsTheStartWithWhy) {
    const auto& pki = TestPki::get();
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    config::ListenerTls mismatched;
    mismatched.certificates = {{pki.shop_cert, pki.api_key}};
    try {
        RunningProxy proxy(tls_config(blue.port(), blue.port(), mismatched));
        FAIL() << "started with a key that does not match";
    } catch (const StartupError& e) {
        EXPECT_NE(std::string(e.what()).find("does not match the certificate"), std::string::npos)
            << e.what();
    }
    config::ListenerTls missing;
    missing.certificates = {{"/nonexistent/cert.pem", pki.shop_key}};
    EXPECT_THROW(RunningProxy(tls_config(blue.port(), blue.port(), missing)), StartupError);
}

TEST(TlsTest, AnExpiredCertificateIsReported) {
    const auto& pki = TestPki::get();
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    config::ListenerTls tls;
    tls.certificates = {{pki.expired_cert, pki.expired_key}};
    RunningProxy proxy(tls_config(blue.port(), blue.port(), tls));
    const auto m = metrics_of(proxy);
    const std::string label = "name=\"expired.test\"} ";
    const auto at = m.find(label);
    ASSERT_NE(at, std::string::npos) << m;
    const long long expiry = std::stoll(m.substr(at + label.size()));
    EXPECT_LT(expiry, std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count());
}

TEST(TlsTest, ACanarysCookieIsSecureOverTls) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = tls_config(blue.port(), green.port(), shop_and_api());
    cfg.admin.token = "tls-canary";
    RunningProxy proxy(cfg);
    const auto set = admin_call(proxy.server->admin_port(), "POST", "/v1/canary",
                                R"({"to":"green","percent":100})", "tls-canary");
    ASSERT_EQ(set.status, 200) << set.body;
    TlsClient c(proxy.port(), {});
    ASSERT_TRUE(c.ok()) << c.error();
    c.send("GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n");
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
        const auto got = c.read_some();
        ASSERT_FALSE(got.empty()) << head;
        head += got;
    }
    EXPECT_NE(head.find("\r\nSet-Cookie: bgswitch_color=green."), std::string::npos) << head;
    EXPECT_NE(head.find("; HttpOnly; SameSite=Lax; Secure\r\n"), std::string::npos) << head;
}

TEST(TlsTest, AReloadSwapsTheCertificateAndOpenConnectionsGoOn) {
    const auto& pki = TestPki::get();
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    const auto port = dead_port();
    auto yaml = [&](const std::string& cert, const std::string& key) {
        return "listen:\n  - address: 127.0.0.1:" + std::to_string(port) +
               "\n    tls: {certificates: [{cert: \"" + cert + "\", key: \"" + key +
               "\"}]}\nadmin: {address: \"127.0.0.1:0\", token: " + kToken +
               "}\ncolors:\n  blue: {upstreams: [\"127.0.0.1:" + std::to_string(blue.port()) +
               "\"]}\n  green: {upstreams: [\"127.0.0.1:" + std::to_string(green.port()) +
               "\"]}\nstate: {file: \"" + fresh_state_path() + "\"}\nlog: {access: off}\n";
    };
    const auto file = write_file("tls-reload.yaml", yaml(pki.shop_cert, pki.shop_key));
    auto loaded = config::load_config_file(file);
    ASSERT_TRUE(loaded.config) << loaded.errors.front();
    RunningProxy proxy(*loaded.config, resolve_with_system, file);

    TlsClient before(port, {});
    ASSERT_TRUE(before.ok()) << before.error();
    EXPECT_EQ(before.peer_name(), "shop.test");
    EXPECT_EQ(before.exchange(kGet).first, 200);

    // A certificate that does not load keeps the one serving.
    std::ofstream(file) << yaml(pki.shop_cert, pki.api_key);
    const auto refused = admin_call(proxy.server->admin_port(), "POST", "/v1/reload", "", kToken);
    EXPECT_EQ(refused.status, 400);
    EXPECT_NE(refused.body.find("does not match"), std::string::npos) << refused.body;
    TlsClient still(port, {});
    EXPECT_EQ(still.peer_name(), "shop.test");

    std::ofstream(file) << yaml(pki.api_cert, pki.api_key);
    const auto reloaded = admin_call(proxy.server->admin_port(), "POST", "/v1/reload", "", kToken);
    ASSERT_EQ(reloaded.status, 200) << reloaded.body;
    TlsClient after(port, {});
    ASSERT_TRUE(after.ok()) << after.error();
    EXPECT_EQ(after.peer_name(), "api.test");
    // The connection opened before keeps its session and goes on.
    EXPECT_EQ(before.exchange(kGet).first, 200);
}

TEST(TlsTest, AWebSocketOverTlsIsDrainedWith1001AndCloseNotify) {
    WsUpstreamLog log, unused;
    ScriptedUpstream blue(ws_app("blue", log));
    ScriptedUpstream green(ws_app("green", unused));
    auto cfg = tls_config(blue.port(), green.port(), shop_and_api());
    cfg.switching.drain_timeout = 300ms;
    RunningProxy proxy(cfg);
    TlsClient ws(proxy.port(), {});
    ASSERT_TRUE(ws.ok()) << ws.error();
    ws.send(
        "GET /ws HTTP/1.1\r\nHost: shop.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    std::string got;
    while (got.find("\r\n\r\n") == std::string::npos) {
        got += ws.read_some();
    }
    ASSERT_EQ(got.rfind("HTTP/1.1 101", 0), 0u) << got;
    got = got.substr(got.find("\r\n\r\n") + 4);
    ws.send(client_text("hi"));
    while (got.find("blue:hi") == std::string::npos) {
        got += ws.read_some();
    }
    ASSERT_EQ(
        admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})", kToken)
            .status,
        200);
    // The drain's Close 1001, then TLS's own close.
    std::string rest;
    for (std::string part = ws.read_some(5s); !part.empty(); part = ws.read_some(5s)) {
        rest += part;
    }
    ASSERT_GE(rest.size(), 4u);
    EXPECT_EQ(static_cast<unsigned char>(rest[0]), 0x88);  // FIN + Close
    EXPECT_EQ((static_cast<unsigned char>(rest[2]) << 8) | static_cast<unsigned char>(rest[3]),
              1001);
    EXPECT_TRUE(ws.got_close_notify());
    EXPECT_TRUE(eventually([&] { return log.close_code.load() == 1001; }));
}

TEST(TlsTest, AnSseStreamOverTlsIsDrainedWithItsLastChunkAndCloseNotify) {
    // An SSE upstream that sends one event and then keeps the stream open.
    ScriptedUpstream sse([](Socket& s, ScriptedUpstream& u) {
        const auto req = u.next_request(s);
        if (!req) {
            return;
        }
        if (req->target == "/health") {
            s.send(http_response(200, "ok"));
            return;
        }
        s.send(
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\n\r\n10\r\ndata: first\n\n\r\n\r\n");
        s.closed_within(30s);
    });
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = tls_config(sse.port(), green.port(), shop_and_api());
    cfg.switching.drain_timeout = 300ms;
    RunningProxy proxy(cfg);
    TlsClient c(proxy.port(), {});
    ASSERT_TRUE(c.ok()) << c.error();
    c.send("GET /events HTTP/1.1\r\nHost: shop.test\r\nAccept: text/event-stream\r\n\r\n");
    std::string got;
    while (got.find("data: first") == std::string::npos) {
        got += c.read_some();
    }
    ASSERT_EQ(
        admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})", kToken)
            .status,
        200);
    for (std::string part = c.read_some(5s); !part.empty(); part = c.read_some(5s)) {
        got += part;
    }
    EXPECT_NE(got.find("\r\n0\r\n\r\n"), std::string::npos) << "the terminating chunk: " << got;
    EXPECT_TRUE(c.got_close_notify());
}

// Idle TLS keep-alive connections park as plain ones do (their SSL object,
// its buffers given back, waits with the socket; bgswitch_idle_connections
// counts them), come back for their next request on the same TLS session,
// and a shutdown closes them with close_notify.
TEST(TlsTest, IdleTlsConnectionsParkAndComeBack) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    RunningProxy proxy(tls_config(blue.port(), green.port(), shop_and_api()));
    auto idle_count = [&] { return metric_value(proxy, "bgswitch_idle_connections"); };
    std::vector<std::unique_ptr<TlsClient>> clients;
    for (int i = 0; i < 5; ++i) {
        clients.push_back(std::make_unique<TlsClient>(proxy.port(), TlsClient::Options{}));
        ASSERT_TRUE(clients.back()->ok()) << clients.back()->error();
        EXPECT_EQ(clients.back()->exchange(kGet).first, 200);
    }
    EXPECT_TRUE(eventually([&] { return idle_count() == 5; })) << idle_count();
    for (auto& c : clients) {
        const auto [status, body] = c->exchange(kGet);
        EXPECT_EQ(status, 200);
        EXPECT_EQ(body, "blue");
    }
    EXPECT_TRUE(eventually([&] { return idle_count() == 5; })) << idle_count();
    const auto m = metrics_of(proxy);
    EXPECT_NE(m.find("bgswitch_tls_handshakes_total{listener=\"127.0.0.1:0\",result=\"ok\"} 5"),
              std::string::npos)
        << "a parked connection comes back without a new handshake";
    proxy.server.reset();  // shutdown: parked connections close
    for (auto& c : clients) {
        EXPECT_EQ(c->read_some(5s), "");
        EXPECT_TRUE(c->got_close_notify());
    }
}

// A keep-alive connection that the idle timeout ends, and one whose client
// asked to close, end TLS with close_notify too, not a bare TCP close.
TEST(TlsTest, IdleAndRequestedClosesSendCloseNotify) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = tls_config(blue.port(), green.port(), shop_and_api());
    cfg.timeouts.idle = 300ms;
    RunningProxy proxy(cfg);

    TlsClient idle(proxy.port(), {});
    ASSERT_TRUE(idle.ok()) << idle.error();
    EXPECT_EQ(idle.exchange(kGet).first, 200);
    EXPECT_EQ(idle.read_some(5s), "");  // the idle timeout
    EXPECT_TRUE(idle.got_close_notify());

    TlsClient asked(proxy.port(), {});
    ASSERT_TRUE(asked.ok()) << asked.error();
    EXPECT_EQ(
        asked.exchange("GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n").first,
        200);
    EXPECT_EQ(asked.read_some(5s), "");
    EXPECT_TRUE(asked.got_close_notify());
}

TEST(TlsTest, ThePreviewListenerTerminatesTlsToo) {
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    ScriptedUpstream green(ScriptedUpstream::app("green"));
    auto cfg = test_config({blue.port()}, {green.port()});
    cfg.admin.token = kToken;
    cfg.preview = config::HostPort{"127.0.0.1", 0};
    cfg.preview_tls = shop_and_api();
    RunningProxy proxy(cfg);
    ASSERT_TRUE(proxy.server->preview_port());
    TlsClient c(*proxy.server->preview_port(), {});
    ASSERT_TRUE(c.ok()) << c.error();
    EXPECT_EQ(c.peer_name(), "shop.test");
    const auto [status, body] = c.exchange(kGet);
    EXPECT_EQ(status, 200);
    EXPECT_EQ(body, "green") << "the preview listener serves the idle color";
}

// An upstream that speaks TLS with the test CA's certificate for 127.0.0.1
// and localhost, answering every request with `body` on keep-alive
// connections; with `ask_client_cert`, it requires a certificate the CA signed.
class TlsUpstream {
  public:
    TlsUpstream(std::string body, bool ask_client_cert = false) : body_(std::move(body)) {
        const auto& pki = TestPki::get();
        ctx_ = SSL_CTX_new(TLS_server_method());
        SSL_CTX_use_certificate_chain_file(ctx_, pki.cert.c_str());
        SSL_CTX_use_PrivateKey_file(ctx_, pki.key.c_str(), SSL_FILETYPE_PEM);
        if (ask_client_cert) {
            SSL_CTX_load_verify_locations(ctx_, pki.ca.c_str(), nullptr);
            SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
        }
        upstream_ =
            std::make_unique<ScriptedUpstream>([this](Socket& s, ScriptedUpstream&) { serve(s); });
    }
    ~TlsUpstream() {
        upstream_.reset();
        SSL_CTX_free(ctx_);
    }
    std::uint16_t port() const { return upstream_->port(); }
    int connections() const { return upstream_->connections(); }
    int handshakes() const { return handshakes_.load(); }

  private:
    void serve(Socket& s) {
        timeval tv{5, 0};
        ::setsockopt(s.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL* ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, s.fd());
        if (SSL_accept(ssl) == 1) {
            ++handshakes_;
            std::string in;
            char buf[4096];
            for (;;) {
                std::size_t n = 0;
                if (SSL_read_ex(ssl, buf, sizeof buf, &n) != 1) {
                    break;
                }
                in.append(buf, n);
                while (in.find("\r\n\r\n") != std::string::npos) {
                    in.erase(0, in.find("\r\n\r\n") + 4);
                    const auto out = http_response(200, body_);
                    SSL_write_ex(ssl, out.data(), out.size(), &n);
                }
            }
        }
        SSL_free(ssl);
    }

    std::string body_;
    SSL_CTX* ctx_ = nullptr;
    std::atomic<int> handshakes_{0};
    std::unique_ptr<ScriptedUpstream> upstream_;
};

config::Config upstream_tls_config(std::uint16_t blue, std::uint16_t green,
                                   config::UpstreamTls tls) {
    auto cfg = test_config({blue}, {green});
    cfg.admin.token = kToken;
    cfg.colors[index(Color::Green)].tls = std::move(tls);
    return cfg;
}

std::string get(std::uint16_t port) {
    auto c = Socket::connect(port);
    c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    const auto r = read_response(c);
    return std::to_string(r.status) + " " + r.body;
}

TEST(UpstreamTlsTest, VerifiedProbedAndPooled) {
    const auto& pki = TestPki::get();
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    TlsUpstream green("secure green");
    config::UpstreamTls tls;
    tls.ca = pki.ca;
    tls.server_name = "localhost";
    RunningProxy proxy(upstream_tls_config(blue.port(), green.port(), tls));
    // The gates probe over TLS.
    const auto sw =
        admin_call(proxy.server->admin_port(), "POST", "/v1/switch", R"({"to":"green"})", kToken);
    ASSERT_EQ(sw.status, 200) << sw.body;
    const int before = green.handshakes();
    LoadLoop load(proxy.port(), 2);
    ASSERT_TRUE(load.more(200));
    load.stop();
    EXPECT_EQ(load.failures(), 0);
    EXPECT_EQ(load.bodies().count("secure green"), 1u);
    // 200 requests, a few connections: pooled TLS connections are reused.
    EXPECT_LE(green.handshakes() - before, 8);
}

TEST(UpstreamTlsTest, AVerificationFailureIsAFailedGateAndA502) {
    const auto& pki = TestPki::get();
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    TlsUpstream green("secure green");
    config::UpstreamTls tls;
    tls.ca = pki.other_ca;  // not the CA that signed the upstream's certificate
    auto cfg = upstream_tls_config(blue.port(), green.port(), tls);
    RunningProxy proxy(cfg);
    const auto dry = admin_call(proxy.server->admin_port(), "POST", "/v1/switch",
                                R"({"to":"green","dry_run":true})", kToken);
    EXPECT_EQ(dry.status, 412);
    EXPECT_NE(dry.body.find("certificate verification failed"), std::string::npos) << dry.body;

    cfg.active = Color::Green;
    cfg.state_file = fresh_state_path();
    RunningProxy on_green(cfg);
    EXPECT_EQ(get(on_green.port()).substr(0, 3), "502");
}

TEST(UpstreamTlsTest, AClientCertificateIsPresentedWhenConfigured) {
    const auto& pki = TestPki::get();
    ScriptedUpstream blue(ScriptedUpstream::app("blue"));
    TlsUpstream green("mutual green", /*ask_client_cert=*/true);
    config::UpstreamTls tls;
    tls.ca = pki.ca;
    tls.server_name = "localhost";
    auto cfg = upstream_tls_config(blue.port(), green.port(), tls);
    cfg.active = Color::Green;
    {
        RunningProxy without(cfg);
        EXPECT_EQ(get(without.port()).substr(0, 3), "502");
    }
    cfg.colors[index(Color::Green)].tls->cert = pki.cert;
    cfg.colors[index(Color::Green)].tls->key = pki.key;
    cfg.state_file = fresh_state_path();
    RunningProxy with(cfg);
    EXPECT_EQ(get(with.port()), "200 mutual green");
}

}  // namespace
}  // namespace bgs::test
