// The per-request work of the proxy, measured in isolation: framing
// validation, header rewriting, parsing the upstream's response header (with
// Beast's parser for comparison), the routing decision, the pool's take and
// give-back, request ids, access-log formatting, the WebSocket frame tracker,
// and the tunnel's relay loop over loopback sockets.
#include "proxy/common/random.hpp"
#include "proxy/http/headers.hpp"
#include "proxy/http/tunnel.hpp"
#include "proxy/http/ws_frame.hpp"
#include "proxy/metrics/access_log.hpp"
#include "proxy/routing/router.hpp"
#include "proxy/upstream/upstream_pool.hpp"

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include <thread>
#include <vector>

namespace {

using namespace bgs;

http::Fields browser_request() {
    http::Fields f;
    f.insert("Host", "app.example.com");
    f.insert("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36");
    f.insert("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
    f.insert("Accept-Language", "en-US,en;q=0.5");
    f.insert("Accept-Encoding", "gzip, deflate, br");
    f.insert("Connection", "keep-alive");
    f.insert("Cookie", "session=0123456789abcdef; theme=dark");
    f.insert("Content-Length", "0");
    return f;
}

void BM_RequestFraming(benchmark::State& state) {
    const auto f = browser_request();
    for (auto _ : state) {
        benchmark::DoNotOptimize(http::request_framing_error(f, 11));
    }
}
BENCHMARK(BM_RequestFraming);

void BM_HeaderRewrite(benchmark::State& state) {
    const auto in = browser_request();
    std::string out;
    std::string id;
    for (auto _ : state) {
        http::request_id_for(in, id);
        http::UpstreamRequestHead h;
        h.method = "GET";
        const auto where = http::resolve_target(in, "GET", "/api/v1/items?page=2");
        h.target = where.target;
        h.host = where.host;
        h.client_ip = "10.1.2.3";
        h.request_id = id;
        out.clear();  // the session reuses one buffer
        http::write_upstream_request_head(out, in, h);
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_HeaderRewrite);

void BM_RouteAndPick(benchmark::State& state) {
    std::array<routing::Members, 2> members;
    for (std::uint16_t p = 9001; p < 9005; ++p) {
        for (Color c : kColors) {
            const auto port = static_cast<std::uint16_t>(p + (c == Color::Green ? 100 : 0));
            members[index(c)].push_back(std::make_shared<routing::Upstream>(
                config::HostPort{"127.0.0.1", port},
                net::tcp::endpoint(boost::asio::ip::address_v4::loopback(), port), true));
        }
    }
    routing::ColorState colors(Color::Blue, 1);
    routing::Router router(colors);
    std::size_t cursor = 0;
    for (auto _ : state) {
        const auto c = router.route(routing::Audience::Live);
        benchmark::DoNotOptimize(routing::pick(members[index(c)], cursor));
    }
}
BENCHMARK(BM_RouteAndPick);

void BM_RequestId(benchmark::State& state) {
    for (auto _ : state) {
        benchmark::DoNotOptimize(make_request_id());
    }
}
BENCHMARK(BM_RequestId);

void BM_AccessLogText(benchmark::State& state) {
    metrics::AccessRecord r;
    r.time = std::chrono::system_clock::now();
    r.client = "10.1.2.3:51234";
    r.method = "GET";
    r.target = "/api/v1/items?page=2";
    r.status = 200;
    r.bytes_sent = 1234;
    r.duration_s = 0.0012;
    r.color = "blue";
    r.upstream = "127.0.0.1:9001";
    r.request_id = make_request_id();
    for (auto _ : state) {
        benchmark::DoNotOptimize(metrics::format_access(r, config::LogFormat::Text));
    }
}
BENCHMARK(BM_AccessLogText);

void BM_WsBoundaryTracker(benchmark::State& state) {
    std::string stream;
    for (int i = 0; i < 64; ++i) {
        stream +=
            ws::encode_frame(ws::kText, std::string(static_cast<std::size_t>(state.range(0)), 'x'));
    }
    const auto* data = reinterpret_cast<const std::uint8_t*>(stream.data());
    for (auto _ : state) {
        ws::BoundaryTracker t;
        t.consume(data, stream.size());
        benchmark::DoNotOptimize(t.at_boundary());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_WsBoundaryTracker)->Arg(16)->Arg(1024);

// A typical upstream response header (nginx in front of an application).
constexpr std::string_view kResponseHead =
    "HTTP/1.1 200 OK\r\n"
    "Server: nginx/1.22.1\r\n"
    "Date: Mon, 23 Nov 2026 17:00:00 GMT\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Content-Length: 1234\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: no-store\r\n"
    "ETag: \"5f8a-1234\"\r\n"
    "Vary: Accept-Encoding\r\n"
    "\r\n";

// Writes the client's head from parsed upstream fields, as the session does.
void rewrite_response_head(std::string& out, const http::Fields& fields) {
    http::ClientResponseHead h;
    h.request_id = "0123456789abcdef0123456789abcdef";
    h.framing = http::Framing::Length;
    h.content_length = 1234;
    out.clear();
    http::write_client_response_head(out, fields, h);
    benchmark::DoNotOptimize(out);
}

// A browser's request header, as it reaches the proxy.
constexpr std::string_view kRequestHead =
    "GET /api/v1/items?page=2 HTTP/1.1\r\n"
    "Host: app.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.5\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Connection: keep-alive\r\n"
    "Cookie: session=0123456789abcdef; theme=dark\r\n"
    "\r\n";

// The baseline: Beast's own request parser, a tree node per field.
void BM_RequestHeadBeastParser(benchmark::State& state) {
    for (auto _ : state) {
        boost::beast::http::request_parser<boost::beast::http::buffer_body> p;
        boost::system::error_code ec;
        p.put(boost::asio::buffer(kRequestHead), ec);
        benchmark::DoNotOptimize(p.get().count(boost::beast::http::field::host));
    }
}
BENCHMARK(BM_RequestHeadBeastParser);

// What the session does: parse into reused flat storage, check the framing and
// write the upstream's head.
void BM_RequestHeadParseCheckRewrite(benchmark::State& state) {
    net::FlatFields fields;
    std::string out;
    std::string id;
    for (auto _ : state) {
        net::RequestParser p(fields);
        boost::system::error_code ec;
        p.put(boost::asio::buffer(kRequestHead), ec);
        benchmark::DoNotOptimize(http::request_framing_error(p.fields(), p.version()));
        http::request_id_for(p.fields(), id);
        http::UpstreamRequestHead h;
        h.method = p.method_string();
        const auto where = http::resolve_target(p.fields(), h.method, p.target());
        h.target = where.target;
        h.host = where.host;
        h.client_ip = "10.1.2.3";
        h.request_id = id;
        out.clear();
        http::write_upstream_request_head(out, p.fields(), h);
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_RequestHeadParseCheckRewrite);

void BM_ResponseHeadReusedFields(benchmark::State& state) {
    std::string out;
    net::FlatFields fields;
    for (auto _ : state) {
        net::ResponseParser p(fields);
        boost::system::error_code ec;
        p.put(boost::asio::buffer(kResponseHead), ec);
        rewrite_response_head(out, p.fields());
    }
}
BENCHMARK(BM_ResponseHeadReusedFields);

// The hot path: a connection reused at once (one pooled for a while, or after
// a bodiless response, is also peeked, which needs a real socket), so the
// pooled connections are real, connected and quiet, and the loop runs inside
// the io_context as a worker's sessions do.
void BM_PoolTakeGiveBack(benchmark::State& state) {
    boost::asio::io_context ctx(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO);
    net::tcp::acceptor acceptor(ctx, {boost::asio::ip::address_v4::loopback(), 0});
    upstream::Pool pool(256, std::chrono::seconds(60));
    const auto target = std::make_shared<routing::Upstream>(
        config::HostPort{"127.0.0.1", acceptor.local_endpoint().port()}, acceptor.local_endpoint(),
        true);
    pool.set_members(Color::Blue, {target});
    std::vector<net::tcp::socket> peers;
    for (int i = 0; i < 64; ++i) {
        auto c = std::make_unique<upstream::Connection>(net::tcp::socket(ctx));
        c->upstream = target;
        c->stream.socket().connect(acceptor.local_endpoint());
        peers.push_back(acceptor.accept());
        pool.give_back(std::move(c));
    }
    boost::asio::post(ctx, [&] {
        for (auto _ : state) {
            auto c = pool.take(Color::Blue, 0);
            if (!c) {
                state.SkipWithError("a pooled connection was not clean");
                break;
            }
            benchmark::DoNotOptimize(c.get());
            pool.give_back(std::move(c));
        }
        pool.close_all();
    });
    ctx.run();
}
BENCHMARK(BM_PoolTakeGiveBack);

// Bytes through a Tunnel: the benchmark thread writes `range(0)` bytes on the
// client socket and reads them back from the upstream side while a worker
// thread runs the tunnel.
void BM_TunnelRelay(benchmark::State& state) {
    namespace asio = boost::asio;
    using net::tcp;
    asio::io_context ctx(1);
    tcp::acceptor acceptor(ctx, {asio::ip::address_v4::loopback(), 0});
    auto pair = [&] {
        tcp::socket outside(ctx);
        outside.connect(acceptor.local_endpoint());
        tcp::socket inside = acceptor.accept();
        return std::pair{std::move(outside), std::move(inside)};
    };
    auto [client, tunnel_client] = pair();  // the client's end, the proxy's end
    auto [tunnel_up, app] = pair();         // the proxy's end, the upstream's end
    net::Stream a(std::move(tunnel_client));
    net::Stream b(std::move(tunnel_up));
    net::beast::flat_buffer none_a, none_b;
    metrics::Metrics metrics;
    http::Tunnel tunnel(/*websocket=*/false, metrics);
    asio::co_spawn(ctx, tunnel.run(a, none_a, b, none_b, std::chrono::seconds(60), false),
                   asio::detached);
    std::thread worker([&] { ctx.run(); });

    const std::string block(static_cast<std::size_t>(state.range(0)), 'x');
    std::string sink(block.size(), '\0');
    for (auto _ : state) {
        asio::write(client, asio::buffer(block));
        asio::read(app, asio::buffer(sink));
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * block.size()));
    client.close();
    app.close();
    worker.join();
}
BENCHMARK(BM_TunnelRelay)->Arg(64)->Arg(16 * 1024)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
