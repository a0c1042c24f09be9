// The per-request pure work of the proxy, measured in isolation: framing
// validation, header rewriting, the routing decision, request ids, access-log
// formatting and the WebSocket frame tracker.
#include "proxy/common/random.hpp"
#include "proxy/http/headers.hpp"
#include "proxy/http/ws_frame.hpp"
#include "proxy/metrics/access_log.hpp"
#include "proxy/routing/router.hpp"

#include <benchmark/benchmark.h>

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
    for (auto _ : state) {
        const auto id = http::request_id_for(in);
        http::UpstreamRequestHead h;
        h.method = "GET";
        h.target = "/api/v1/items?page=2";
        h.client_ip = "10.1.2.3";
        h.request_id = id;
        out.clear();  // the session reuses one buffer
        http::write_upstream_request_head(out, in, h);
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_HeaderRewrite);

void BM_RouteAndPick(benchmark::State& state) {
    config::Config cfg;
    for (std::uint16_t p = 9001; p < 9005; ++p) {
        cfg.colors[0].upstreams.push_back({"127.0.0.1", p});
        cfg.colors[1].upstreams.push_back({"127.0.0.1", static_cast<std::uint16_t>(p + 100)});
    }
    routing::ColorState colors(Color::Blue, 1);
    routing::Router router(cfg, colors);
    std::size_t cursor = 0;
    for (auto _ : state) {
        const auto c = router.route(routing::Audience::Live);
        benchmark::DoNotOptimize(router.pick(c, cursor));
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

}  // namespace

BENCHMARK_MAIN();
