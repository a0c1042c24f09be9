#include "proxy/health/http_probe.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>

namespace bgs::health {
namespace {

namespace asio = net::asio;
namespace http = net::http;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

}  // namespace

net::Task<ProbeResult> probe(net::tcp::endpoint ep, ProbeRequest req, Duration timeout) {
    ProbeResult result;
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeout;
    net::beast::tcp_stream stream(co_await asio::this_coro::executor);

    stream.expires_at(deadline);
    if (auto [ec] = co_await stream.async_connect(ep, kNoThrow); ec) {
        result.error = "connect: " + ec.message();
        co_return result;
    }

    http::request<http::string_body> out;
    out.method_string(req.method);
    out.target(req.target);
    out.version(11);
    out.set(http::field::host, req.host.empty()
                                   ? ep.address().to_string() + ":" + std::to_string(ep.port())
                                   : req.host);
    out.set(http::field::user_agent, "bgswitch-check");
    out.set(http::field::connection, "close");
    for (const auto& [name, value] : req.headers) {
        out.set(name, value);
    }
    out.body() = req.body;
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
        out.prepare_payload();
    }
    stream.expires_at(deadline);
    if (auto [ec, n] = co_await http::async_write(stream, out, kNoThrow); ec) {
        result.error = "send: " + ec.message();
        co_return result;
    }

    http::response_parser<http::string_body> parser;
    parser.body_limit(1024 * 1024);
    if (req.method == "HEAD") {
        parser.skip(true);
    }
    net::beast::flat_buffer buffer;
    stream.expires_at(deadline);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kNoThrow);
    result.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (ec) {
        result.error = ec == net::beast::error::timeout
                           ? "no complete response within " + format_duration(timeout)
                           : "response: " + ec.message();
        co_return result;
    }
    auto& res = parser.get();
    result.responded = true;
    result.status = res.result_int();
    for (const auto& f : res) {
        std::string name(f.name_string());
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        result.headers[name] = std::string(f.value());
    }
    result.body = std::move(res.body());
    net::error_code ignored;
    stream.socket().shutdown(net::tcp::socket::shutdown_both, ignored);
    co_return result;
}

}  // namespace bgs::health
