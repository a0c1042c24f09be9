#include "admin/cli/admin_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <optional>
#include <string_view>

namespace bgs::admin::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxAnswer = 16 * 1024 * 1024;

struct Target {
    std::string host;
    std::string port = "80";
};

// "http://host:port/..." -> host and port; nullopt for anything else.
std::optional<Target> parse_url(std::string_view url) {
    constexpr std::string_view kScheme = "http://";
    if (url.substr(0, kScheme.size()) != kScheme) {
        return std::nullopt;
    }
    url.remove_prefix(kScheme.size());
    url = url.substr(0, url.find('/'));
    Target t;
    if (!url.empty() && url.front() == '[') {
        const auto close = url.find(']');
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        t.host = std::string(url.substr(1, close - 1));
        if (close + 1 < url.size()) {
            if (url[close + 1] != ':') {
                return std::nullopt;
            }
            t.port = std::string(url.substr(close + 2));
        }
    } else if (const auto colon = url.rfind(':'); colon != std::string_view::npos) {
        t.host = std::string(url.substr(0, colon));
        t.port = std::string(url.substr(colon + 1));
    } else {
        t.host = std::string(url);
    }
    if (t.host.empty() || t.port.empty()) {
        return std::nullopt;
    }
    return t;
}

asio::awaitable<void> exchange(Target target, http::request<http::string_body> req,
                               std::chrono::seconds timeout, std::string admin_url,
                               HttpResult& out) {
    auto ex = co_await asio::this_coro::executor;
    tcp::resolver resolver(ex);
    auto [rec, endpoints] = co_await resolver.async_resolve(target.host, target.port, kNoThrow);
    if (rec) {
        out.error = "cannot resolve " + target.host + ": " + rec.message();
        co_return;
    }
    beast::tcp_stream stream(ex);
    stream.expires_after(timeout);
    auto [cec, ep] = co_await stream.async_connect(endpoints, kNoThrow);
    if (cec) {
        out.error = "cannot reach the admin API at " + admin_url + ": " + cec.message();
        co_return;
    }
    auto [wec, wn] = co_await http::async_write(stream, req, kNoThrow);
    if (wec) {
        out.error = "sending to the admin API: " + wec.message();
        co_return;
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxAnswer);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, kNoThrow);
    if (ec == beast::error::timeout) {
        out.error = "the admin API did not answer in time";
    } else if (ec) {
        out.error = "the admin API closed the connection without an answer (" + ec.message() + ")";
    } else {
        out.status = static_cast<int>(parser.get().result_int());
        out.body = std::move(parser.get().body());
    }
}

}  // namespace

HttpResult call_admin(const std::string& admin_url, const std::string& token,
                      const std::string& method, const std::string& path, const std::string& body,
                      std::chrono::seconds timeout) {
    HttpResult out;
    auto target = parse_url(admin_url);
    if (!target) {
        out.error = "--admin must be an http://host:port URL, got " + admin_url;
        return out;
    }
    http::request<http::string_body> req;
    req.method(http::string_to_verb(method));
    req.target(path);
    req.version(11);
    req.set(http::field::host, target->host);
    req.set(http::field::accept, "application/json");
    req.keep_alive(false);
    if (!token.empty()) {
        req.set(http::field::authorization, "Bearer " + token);
    }
    if (method == "POST" || method == "PUT") {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
    }
    req.prepare_payload();
    asio::io_context ioc(1);
    asio::co_spawn(ioc, exchange(*target, std::move(req), timeout, admin_url, out),
                   [&out](std::exception_ptr e) {
                       if (e && out.error.empty() && out.status == 0) {
                           out.error = "the admin call failed unexpectedly";
                       }
                   });
    ioc.run();
    return out;
}

}  // namespace bgs::admin::cli
