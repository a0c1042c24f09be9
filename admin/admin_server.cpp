#include "admin/admin_server.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/net/listen.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <stdexcept>

namespace bgs::admin {
namespace {

namespace asio = net::asio;
namespace http = net::http;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kMaxBody = 64 * 1024;

}  // namespace

struct AdminServer::Impl {
    Impl(asio::io_context& io, const config::Config& c, Routes& r)
        : ioc(io), cfg(c), routes(r), acceptor(io) {}

    asio::io_context& ioc;
    const config::Config& cfg;
    Routes& routes;
    net::tcp::acceptor acceptor;
    bool stopping = false;

    net::Task<void> accept_loop() {
        while (!stopping) {
            auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
            if (ec) {
                if (stopping || ec == asio::error::operation_aborted) {
                    co_return;
                }
                continue;
            }
            asio::co_spawn(ioc, serve(std::move(socket)), [](std::exception_ptr e) {
                if (e) {
                    log().error("admin connection ended by an exception");
                }
            });
        }
    }

    net::Task<void> serve(net::tcp::socket socket) {
        net::beast::tcp_stream stream(std::move(socket));
        net::error_code ec;
        const auto peer = stream.socket().remote_endpoint(ec);
        if (ec) {
            co_return;
        }
        ApiRequest base;
        base.source = peer.address().to_string();
        if (peer.address().is_v4()) {
            auto b = peer.address().to_v4().to_bytes();
            std::copy(b.begin(), b.end(), base.source_bytes.begin());
            base.source_len = 4;
        } else {
            auto b = peer.address().to_v6().to_bytes();
            std::copy(b.begin(), b.end(), base.source_bytes.begin());
            base.source_len = 16;
        }
        net::beast::flat_buffer buffer;
        while (!stopping) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(16 * 1024);
            parser.body_limit(kMaxBody);
            stream.expires_after(std::chrono::seconds(30));
            auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
            if (rec) {
                if (rec == http::error::body_limit || rec == http::error::header_limit) {
                    co_await send(stream, error_response(413, "request too large"), false, 11);
                } else if (rec.category() ==
                               http::make_error_code(http::error::bad_method).category() &&
                           rec != http::error::end_of_stream &&
                           rec != http::error::partial_message) {
                    co_await send(stream, error_response(400, "malformed request"), false, 11);
                }
                co_return;
            }
            auto& msg = parser.get();
            ApiRequest req = base;
            req.method = std::string(msg.method_string());
            req.target = std::string(msg.target());
            req.authorization = std::string(msg[http::field::authorization]);
            req.body = std::move(msg.body());
            const bool keep = msg.keep_alive();
            const unsigned version = msg.version();
            auto res = co_await routes.handle(std::move(req));
            if (!co_await send(stream, std::move(res), keep, version) || !keep) {
                co_return;
            }
        }
    }

    static net::Task<bool> send(net::beast::tcp_stream& stream, ApiResponse r, bool keep_alive,
                                unsigned version) {
        http::response<http::string_body> res{http::int_to_status(r.status), version};
        res.set(http::field::content_type, r.content_type);
        res.set(http::field::cache_control, "no-store");
        for (auto& [name, value] : r.headers) {
            res.set(name, value);
        }
        res.body() = std::move(r.body);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        stream.expires_after(std::chrono::seconds(30));
        auto [ec, n] = co_await http::async_write(stream, res, kNoThrow);
        co_return !ec;
    }
};

AdminServer::AdminServer(asio::io_context& ioc, const config::Config& cfg, Routes& routes)
    : impl_(std::make_unique<Impl>(ioc, cfg, routes)) {
    net::error_code ec;
    const auto address = asio::ip::make_address(
        cfg.admin.address.host == "localhost" ? "127.0.0.1" : cfg.admin.address.host, ec);
    if (ec) {
        throw std::runtime_error("admin.address " + cfg.admin.address.to_string() +
                                 ": not an IP address");
    }
    const net::tcp::endpoint ep(address, cfg.admin.address.port);
    const char* step = "";
    if (auto bec = net::open_listener(impl_->acceptor, ep, /*reuse_port=*/false, &step)) {
        throw std::runtime_error("admin " + cfg.admin.address.to_string() + ": " + step + ": " +
                                 bec.message());
    }
}

AdminServer::~AdminServer() = default;

std::uint16_t AdminServer::port() const {
    return impl_->acceptor.local_endpoint().port();
}

void AdminServer::start() {
    asio::co_spawn(impl_->ioc, impl_->accept_loop(), [](std::exception_ptr e) {
        if (e) {
            log().error("admin accept loop ended by an exception");
        }
    });
}

void AdminServer::stop() {
    impl_->stopping = true;
    net::error_code ignored;
    impl_->acceptor.close(ignored);
}

}  // namespace bgs::admin
