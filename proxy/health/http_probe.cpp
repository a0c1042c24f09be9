#include "proxy/health/http_probe.hpp"

#include "proxy/net/tls.hpp"

#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>

namespace bgs::health {
namespace {

namespace asio = net::asio;
namespace http = net::http;

constexpr std::size_t kMaxBody = 1024 * 1024;

std::string request_text(const ProbeRequest& req, const net::tcp::endpoint& ep) {
    std::string out = req.method + " " + req.target + " HTTP/1.1\r\nHost: ";
    out += req.host.empty() ? (ep.address().is_v6() ? "[" + ep.address().to_string() + "]"
                                                    : ep.address().to_string()) +
                                  ":" + std::to_string(ep.port())
                            : req.host;
    out += "\r\nUser-Agent: bgswitch-check\r\nConnection: close\r\n";
    for (const auto& [name, value] : req.headers) {
        out += name + ": " + value + "\r\n";
    }
    if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
        out += "Content-Length: " + std::to_string(req.body.size()) + "\r\n";
    }
    out += "\r\n";
    return out + req.body;
}

}  // namespace

net::Task<ProbeResult> probe(net::tcp::endpoint ep, ProbeRequest req, Duration timeout) {
    ProbeResult result;
    const auto start = std::chrono::steady_clock::now();
    net::Stream stream(co_await asio::this_coro::executor);
    stream.expires_after(timeout);
    if (auto ec = co_await net::connect(stream, ep)) {
        result.error = ec == net::beast::error::timeout
                           ? "connect: no answer within " + format_duration(timeout)
                           : "connect: " + ec.message();
        co_return result;
    }
    if (req.tls) {
        SSL* ssl = req.tls->context->connect(stream.socket().native_handle(), req.tls->name);
        stream.use_tls(ssl);
        if (auto ec = co_await net::handshake(stream)) {
            result.error = "TLS: " + net::tls::ClientContext::why_failed(ssl, ec.message());
            co_return result;
        }
    }
    const auto text = request_text(req, ep);
    if (auto ec = co_await net::write_all(stream, asio::buffer(text))) {
        result.error = "send: " + ec.message();
        co_return result;
    }

    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxBody);
    parser.eager(true);
    if (req.method == "HEAD") {
        parser.skip(true);
    }
    std::string buffer;
    net::error_code ec;
    char chunk[16 * 1024];
    while (!parser.is_done()) {
        auto [rec, n] = co_await net::read_some(stream, asio::buffer(chunk));
        if (rec == asio::error::eof || (!rec && n == 0)) {
            parser.put_eof(ec);
            break;
        }
        if (rec) {
            ec = rec;
            break;
        }
        buffer.append(chunk, n);
        if (buffer.size() > kMaxBody + 64 * 1024) {
            ec = http::error::body_limit;
            break;
        }
        ec = {};
        buffer.erase(0, parser.put(asio::buffer(buffer), ec));
        if (ec == http::error::need_more) {
            ec = {};
        } else if (ec) {
            break;
        }
    }
    result.latency_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (ec || !parser.is_done()) {
        result.error = ec == net::beast::error::timeout
                           ? "no complete response within " + format_duration(timeout)
                           : "response: " + (ec ? ec.message() : std::string("incomplete"));
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
    stream.shutdown_both();
    co_return result;
}

}  // namespace bgs::health
