#include "admin/admin_server.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/common/systemd.hpp"
#include "proxy/net/listen.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <list>
#include <stdexcept>

namespace bgs::admin {
namespace {

namespace asio = net::asio;
namespace http = net::http;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t kMaxBody = 64 * 1024;
// The on-call page loads its script and style from this origin only and
// talks to this origin only (admin/page/).
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
constexpr std::uint32_t kMaxHeader = 16 * 1024;
// The admin endpoint never holds more descriptors than this, whatever arrives,
// so that a flood on it cannot starve the data path.
constexpr std::size_t kMaxConnections = 64;
constexpr std::size_t kMaxOutsiders = 16;
constexpr std::uint32_t kOutsiderHeader = 4 * 1024;

bool allowed(const std::vector<config::Cidr>& allow, const ApiRequest& who) {
    return std::any_of(allow.begin(), allow.end(), [&](const config::Cidr& c) {
        return c.contains(who.source_bytes.data(), who.source_len);
    });
}

ApiRequest request_from(const net::tcp::endpoint& peer) {
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
    return base;
}

}  // namespace

struct AdminServer::Impl {
    Impl(asio::io_context& io, const config::Config& c, Routes& r)
        : ioc(io), cfg(c), routes(r), acceptor(io) {}

    asio::io_context& ioc;
    const config::Config& cfg;
    Routes& routes;
    net::tcp::acceptor acceptor;
    bool stopping = false;

    // Requests whose handler has not answered yet, by their socket.
    struct InFlight {
        net::tcp::socket* socket;
        unsigned version;
        bool answered = false;
    };
    std::list<InFlight> in_flight;
    // Connections from admin.allow being served, and from elsewhere. Shared
    // with the connections' frames, which the control thread's io_context may
    // destroy after this object.
    struct Counts {
        std::size_t open = 0;
        std::size_t outsiders = 0;
    };
    std::shared_ptr<Counts> counts = std::make_shared<Counts>();
    AcceptBackoff backoff;

    // Counts a connection for as long as it lives.
    struct Held {
        Held(std::shared_ptr<Counts> c, std::size_t Counts::*which)
            : counts(std::move(c)), field(which) {
            ++((*counts).*field);
        }
        ~Held() { --((*counts).*field); }
        Held(const Held&) = delete;
        Held& operator=(const Held&) = delete;
        std::shared_ptr<Counts> counts;
        std::size_t Counts::*field;
    };

    net::Task<void> accept_loop() {
        net::tcp::endpoint peer;
        while (!stopping) {
            auto [ec, socket] = co_await acceptor.async_accept(peer, kNoThrow);
            if (ec) {
                if (stopping || ec == asio::error::operation_aborted) {
                    co_return;
                }
                co_await net::pause_after_accept_failure(backoff, ec, "admin accept");
                continue;
            }
            backoff.succeeded();
            auto who = request_from(peer);
            // The source is judged at accept: a connection from outside
            // admin.allow gets a short, small budget of its own.
            const bool inside = allowed(cfg.admin.allow, who);
            if (inside ? counts->open >= kMaxConnections : counts->outsiders >= kMaxOutsiders) {
                continue;  // closed at once: the socket goes out of scope
            }
            auto task = inside ? serve(std::move(socket), std::move(who))
                               : serve_outsider(std::move(socket), std::move(who));
            asio::co_spawn(ioc, std::move(task), [](std::exception_ptr e) {
                if (e) {
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& ex) {
                        log().error("admin connection ended by an exception: {}", ex.what());
                    } catch (...) {
                        log().error("admin connection ended by an exception");
                    }
                }
            });
        }
    }

    // A source outside admin.allow may only read /healthz and /metrics (a
    // kubelet's probe, a Prometheus scrape). Its one request must arrive whole
    // within 2 s and 4 KiB; everything else gets 403 and the connection closes.
    net::Task<void> serve_outsider(net::tcp::socket socket, ApiRequest who) {
        Held held(counts, &Counts::outsiders);
        net::beast::tcp_stream stream(std::move(socket));
        net::beast::flat_buffer buffer;
        http::request_parser<http::string_body> parser;
        parser.header_limit(kOutsiderHeader);
        parser.body_limit(0);
        stream.expires_after(std::chrono::seconds(2));
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
        const auto path = rec ? std::string_view{} : std::string_view(parser.get().target());
        const bool open_path = path.substr(0, path.find('?')) == "/healthz" ||
                               path.substr(0, path.find('?')) == "/metrics";
        if (!rec && open_path) {
            ApiRequest req = std::move(who);
            req.method = std::string(parser.get().method_string());
            req.target = std::string(path);
            co_await send(stream, co_await routes.handle(std::move(req)), false, 11,
                          std::chrono::seconds(2));
            co_return;
        }
        log().warn("admin: 403 to {}: not in admin.allow", who.source);
        co_await send(stream, error_response(403, "source address not allowed"), false, 11,
                      std::chrono::seconds(2));
    }

    net::Task<void> serve(net::tcp::socket socket, ApiRequest base) {
        Held held(counts, &Counts::open);
        net::beast::tcp_stream stream(std::move(socket));
        net::beast::flat_buffer buffer;
        while (!stopping) {
            http::request_parser<http::string_body> parser;
            parser.header_limit(kMaxHeader);
            parser.body_limit(kMaxBody);
            stream.expires_after(std::chrono::seconds(30));
            auto [rec, rn] = co_await http::async_read(stream, buffer, parser, kNoThrow);
            if (rec) {
                if (rec == http::error::header_limit) {
                    co_await send(stream, error_response(431, "request header too large"), false,
                                  11);
                } else if (rec == http::error::body_limit) {
                    co_await send(stream, error_response(413, "request body too large"), false, 11);
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
            auto mine = in_flight.insert(in_flight.end(), {&stream.socket(), version});
            auto res = co_await routes.handle(std::move(req));
            const bool answered = mine->answered;
            in_flight.erase(mine);
            if (answered) {
                co_return;  // shutdown answered 503 for it meanwhile
            }
            if (!co_await send(stream, std::move(res), keep, version) || !keep) {
                co_return;
            }
        }
    }

    static net::Task<bool> send(net::beast::tcp_stream& stream, ApiResponse r, bool keep_alive,
                                unsigned version,
                                std::chrono::seconds within = std::chrono::seconds(30)) {
        http::response<http::string_body> res{http::int_to_status(r.status), version};
        res.set(http::field::content_type, r.content_type);
        res.set(http::field::cache_control, "no-store");
        // Every answer, the page's and the API's: nothing runs but the
        // page's own files, nothing frames it, nothing is cached.
        res.set("Content-Security-Policy", kContentSecurityPolicy);
        res.set("X-Frame-Options", "DENY");
        res.set("X-Content-Type-Options", "nosniff");
        res.set("Referrer-Policy", "no-referrer");
        for (auto& [name, value] : r.headers) {
            res.set(name, value);
        }
        res.body() = std::move(r.body);
        res.keep_alive(keep_alive);
        res.prepare_payload();
        stream.expires_after(within);
        auto [ec, n] = co_await http::async_write(stream, res, kNoThrow);
        co_return !ec;
    }
};

AdminServer::AdminServer(asio::io_context& ioc, const config::Config& cfg, Routes& routes,
                         std::vector<int>* inherited)
    : impl_(std::make_unique<Impl>(ioc, cfg, routes)) {
    net::error_code ec;
    const auto address = asio::ip::make_address(
        cfg.admin.address.host == "localhost" ? "127.0.0.1" : cfg.admin.address.host, ec);
    if (ec) {
        throw std::runtime_error("admin.address " + cfg.admin.address.to_string() +
                                 ": not an IP address");
    }
    const net::tcp::endpoint ep(address, cfg.admin.address.port);
    if (inherited != nullptr) {
        if (auto fd = systemd::claim_fd(*inherited, ep.data(), static_cast<unsigned>(ep.size()))) {
            impl_->acceptor.assign(ep.protocol(), *fd, ec);
            if (ec) {
                ::close(*fd);
                throw std::runtime_error("admin " + cfg.admin.address.to_string() +
                                         ": the socket passed: " + ec.message());
            }
            return;
        }
    }
    const char* step = "";
    if (auto bec = net::open_listener(impl_->acceptor, ep, /*reuse_port=*/false, &step)) {
        throw std::runtime_error("admin " + cfg.admin.address.to_string() + ": " + step + ": " +
                                 bec.message());
    }
}

AdminServer::~AdminServer() = default;

int AdminServer::listening_fd() const {
    return impl_->acceptor.is_open() ? impl_->acceptor.native_handle() : -1;
}

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

void AdminServer::answer_in_flight_with_503() {
    const std::string body = R"({"error":"shutting down; nothing was changed"})"
                             "\n";
    for (auto& f : impl_->in_flight) {
        if (f.answered) {
            continue;
        }
        f.answered = true;
        const std::string text = std::string(f.version == 10 ? "HTTP/1.0" : "HTTP/1.1") +
                                 " 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                 "Cache-Control: no-store\r\nX-Frame-Options: DENY\r\n"
                                 "Connection: close\r\n"
                                 "Content-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body;
        // A short answer on an idle socket: one non-blocking send takes it all,
        // so no operation outlives the handler's frame that owns the socket.
        const int fd = f.socket->native_handle();
        [[maybe_unused]] const auto n =
            ::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::shutdown(fd, SHUT_WR);
    }
}

void AdminServer::stop() {
    impl_->stopping = true;
    net::error_code ignored;
    impl_->acceptor.close(ignored);
}

}  // namespace bgs::admin
