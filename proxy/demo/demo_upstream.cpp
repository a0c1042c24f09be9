#include "proxy/demo/demo_upstream.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/net/listen.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <tuple>

namespace bgs::demo {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::string page(Color color) {
    const std::string name(to_string(color));
    const char* bg = color == Color::Blue ? "#1d4ed8" : "#15803d";
    return R"(<!doctype html>
<html><head><meta charset="utf-8"><title>bgswitch demo: )" +
           name + R"(</title>
<style>body{font-family:system-ui,sans-serif;background:)" +
           bg + R"(;color:#fff;text-align:center;padding-top:10vh}
h1{font-size:5em;margin:0}code{background:#0003;padding:.2em .4em;border-radius:4px}
#log{font-family:monospace;opacity:.85}</style></head>
<body><h1>)" +
           name + R"(</h1><p>This page was served by the <b>)" + name +
           R"(</b> upstream.</p>
<p>Live from <code>/events</code> (SSE): <span id="log">connecting...</span></p>
<script>
const log = document.getElementById('log');
const es = new EventSource('/events');
es.onmessage = (e) => { log.textContent = e.data; };
es.onerror = () => { log.textContent = 'stream closed; reconnecting...'; };
</script></body></html>
)";
}

}  // namespace

struct DemoUpstream::Impl {
    Impl(Color c, Duration interval, Behaviour b, std::string v)
        : color(c), event_interval(interval), behaviour(b), version(std::move(v)) {}

    Color color;
    Duration event_interval;
    Behaviour behaviour;
    std::string version;
    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
    std::thread thread;
    std::atomic<std::uint64_t> requests{0};
    std::uint16_t port = 0;

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
            if (ec) {
                co_return;
            }
            asio::co_spawn(ioc, serve(std::move(socket)), [](std::exception_ptr) {});
        }
    }

    asio::awaitable<void> serve(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> req;
            stream.expires_after(std::chrono::seconds(60));
            auto [ec, n] = co_await http::async_read(stream, buffer, req, kNoThrow);
            if (ec) {
                co_return;
            }
            ++requests;
            if (websocket::is_upgrade(req) && req.target() == "/ws") {
                co_await echo(std::move(stream), std::move(req));
                co_return;
            }
            if (req.target() == "/events") {
                co_await events(stream);
                co_return;
            }
            if (req.target() == "/fault/reset-mid-body") {
                co_await reset_mid_body(stream);
                co_return;
            }
            http::response<http::string_body> res;
            res.version(req.version());
            res.keep_alive(req.keep_alive());
            res.set("X-Demo-Color", to_string(color));
            const bool health = req.target() == "/health" || req.target() == "/api/v1/health";
            if (health && behaviour == Behaviour::Unhealthy) {
                res.result(http::status::service_unavailable);
                res.set(http::field::content_type, "application/json");
                res.body() = R"({"status":"starting"})";
            } else if (health) {
                res.set(http::field::content_type, "application/json");
                res.body() = R"({"status":"ok","color":")" + std::string(to_string(color)) + "\"}";
            } else if (behaviour == Behaviour::Failing) {
                res.result(http::status::internal_server_error);
                res.set(http::field::content_type, "text/plain");
                res.body() = "this version is broken\n";
            } else if (req.target() == "/" || req.target() == "/index.html") {
                res.set(http::field::content_type, "text/html; charset=utf-8");
                res.body() = page(color);
            } else if (req.target() == "/color") {
                res.set(http::field::content_type, "text/plain");
                res.body() =
                    std::string(to_string(color)) + (version.empty() ? "" : " " + version) + "\n";
            } else {
                res.result(http::status::not_found);
                res.set(http::field::content_type, "text/plain");
                res.body() = "not found\n";
            }
            if (req.method() == http::verb::head) {
                res.content_length(res.body().size());
                res.body().clear();
            } else {
                res.prepare_payload();
            }
            auto [wec, wn] = co_await http::async_write(stream, res, kNoThrow);
            if (wec || !res.keep_alive()) {
                co_return;
            }
        }
    }

    // A fault on demand (the soak's "an upstream resets mid-body"): a 200
    // promising 64 KiB, the first 1 KiB of it, then a reset (SO_LINGER 0).
    asio::awaitable<void> reset_mid_body(beast::tcp_stream& stream) {
        std::string head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            "Content-Length: 65536\r\nX-Demo-Color: ";
        head += to_string(color);
        head += "\r\n\r\n";
        head.append(1024, 'r');
        // Whether it all went out or not, the connection ends in a reset.
        std::ignore = co_await asio::async_write(stream.socket(), asio::buffer(head), kNoThrow);
        boost::system::error_code ignored;
        stream.socket().set_option(asio::socket_base::linger(true, 0), ignored);
        stream.socket().close(ignored);
    }

    // Server-Sent Events: one event per interval until the client leaves.
    asio::awaitable<void> events(beast::tcp_stream& stream) {
        http::response<http::empty_body> res{http::status::ok, 11};
        res.set(http::field::content_type, "text/event-stream");
        res.set(http::field::cache_control, "no-cache");
        res.set("X-Demo-Color", to_string(color));
        res.chunked(true);
        http::response_serializer<http::empty_body> sr{res};
        stream.expires_never();
        auto [hec, hn] = co_await http::async_write_header(stream, sr, kNoThrow);
        if (hec) {
            co_return;
        }
        asio::steady_timer timer(ioc);
        for (std::uint64_t i = 1;; ++i) {
            const std::string data = "id: " + std::to_string(i) + "\ndata: {\"color\":\"" +
                                     std::string(to_string(color)) +
                                     "\",\"n\":" + std::to_string(i) + "}\n\n";
            auto [ec, n] =
                co_await asio::async_write(stream, http::make_chunk(asio::buffer(data)), kNoThrow);
            if (ec) {
                co_return;
            }
            timer.expires_after(event_interval);
            co_await timer.async_wait(kNoThrow);
        }
    }

    asio::awaitable<void> echo(beast::tcp_stream stream, http::request<http::string_body> req) {
        stream.expires_never();
        websocket::stream<beast::tcp_stream> ws(std::move(stream));
        ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        auto [aec] = co_await ws.async_accept(req, kNoThrow);
        if (aec) {
            co_return;
        }
        beast::flat_buffer buffer;
        for (;;) {
            auto [ec, n] = co_await ws.async_read(buffer, kNoThrow);
            if (ec) {
                co_return;
            }
            ws.text(ws.got_text());
            auto [wec, wn] = co_await ws.async_write(buffer.data(), kNoThrow);
            if (wec) {
                co_return;
            }
            buffer.consume(buffer.size());
        }
    }
};

DemoUpstream::DemoUpstream(Color color, const std::string& host, std::uint16_t port,
                           Duration event_interval, Behaviour behaviour, std::string version)
    : impl_(std::make_unique<Impl>(color, event_interval, behaviour, std::move(version))) {
    boost::system::error_code ec;
    const tcp::endpoint ep(asio::ip::make_address(host, ec), port);
    if (ec) {
        throw std::runtime_error("demo upstream: bad address " + host + ": " + ec.message());
    }
    auto& acc = impl_->acceptor;
    const char* step = "";
    if (auto bec = net::open_listener(acc, ep, /*reuse_port=*/false, &step)) {
        throw std::runtime_error("demo upstream " + host + ":" + std::to_string(port) + ": " +
                                 step + ": " + bec.message());
    }
    impl_->port = acc.local_endpoint().port();
    asio::co_spawn(impl_->ioc, impl_->accept_loop(), [](std::exception_ptr) {});
    impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

DemoUpstream::~DemoUpstream() {
    impl_->ioc.stop();
    if (impl_->thread.joinable()) {
        impl_->thread.join();
    }
}

std::uint16_t DemoUpstream::port() const {
    return impl_->port;
}

std::uint64_t DemoUpstream::requests() const {
    return impl_->requests.load();
}

}  // namespace bgs::demo
