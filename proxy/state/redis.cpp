#include "proxy/state/redis.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace bgs::redis {

namespace asio = net::asio;

namespace {

Reply convert(const redisReply* r) {
    Reply out;
    switch (r->type) {
        case REDIS_REPLY_STRING:
            out.type = Reply::Type::String;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_STATUS:
            out.type = Reply::Type::Status;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_ERROR:
            out.type = Reply::Type::Error;
            out.str.assign(r->str, r->len);
            break;
        case REDIS_REPLY_INTEGER:
            out.type = Reply::Type::Integer;
            out.integer = r->integer;
            break;
        case REDIS_REPLY_ARRAY:
            out.type = Reply::Type::Array;
            for (std::size_t i = 0; i < r->elements; ++i) {
                out.elements.push_back(convert(r->element[i]));
            }
            break;
        default:
            out.type = Reply::Type::Nil;
    }
    return out;
}

}  // namespace

std::string encode(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const auto& a : args) {
        out += "$" + std::to_string(a.size()) + "\r\n";
        out += a;
        out += "\r\n";
    }
    return out;
}

struct Connection::Impl {
    explicit Impl(asio::any_io_executor e) : ex(std::move(e)) {}
    ~Impl() { reset(); }

    void reset() {
        tls.reset();  // it refers to the stream's socket
        stream.reset();
        if (reader != nullptr) {
            redisReaderFree(reader);
            reader = nullptr;
        }
        buffered = 0;
    }

    // A reply already parsed from what was read, if any; an error on a
    // protocol violation.
    std::optional<Result> parsed() {
        void* raw = nullptr;
        if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
            return Result{std::string("protocol error: ") + reader->errstr};
        }
        if (raw == nullptr) {
            return std::nullopt;
        }
        auto* reply = static_cast<redisReply*>(raw);
        Result out{convert(reply)};
        freeReplyObject(reply);
        buffered = 0;
        return out;
    }

    // An operation the stream's deadline cut reports the timeout.
    net::error_code timed(net::error_code ec) const {
        return ec && stream->expired() ? net::error_code(boost::beast::error::timeout) : ec;
    }

    // The bytes on the wire go through TLS for rediss://.
    net::Task<std::pair<net::error_code, std::size_t>> read_some(asio::mutable_buffer into) {
        if (!tls) {
            co_return co_await net::read_some(*stream, into);
        }
        if (stream->expired()) {
            co_return std::pair{net::error_code(boost::beast::error::timeout), std::size_t{0}};
        }
        stream->begin_wait();
        auto [ec, n] = co_await tls->async_read_some(into, asio::as_tuple(asio::use_awaitable));
        stream->end_wait();
        co_return std::pair{timed(ec), n};
    }

    net::Task<net::error_code> write(asio::const_buffer data) {
        if (!tls) {
            co_return co_await net::write_all(*stream, data);
        }
        if (stream->expired()) {
            co_return net::error_code(boost::beast::error::timeout);
        }
        stream->begin_wait();
        auto [ec, n] = co_await asio::async_write(*tls, data, asio::as_tuple(asio::use_awaitable));
        stream->end_wait();
        co_return timed(ec);
    }

    // The server's certificate is verified against the system's trust store
    // (or SSL_CERT_FILE / SSL_CERT_DIR) and must name `host`.
    net::Task<std::optional<std::string>> handshake(const std::string& host) {
        tls_context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
        boost::system::error_code ec;
        tls_context->set_default_verify_paths(ec);
        tls_context->set_verify_mode(asio::ssl::verify_peer);
        SSL_CTX_set_min_proto_version(tls_context->native_handle(), TLS1_2_VERSION);
        tls =
            std::make_unique<asio::ssl::stream<net::tcp::socket&>>(stream->socket(), *tls_context);
        SSL* ssl = tls->native_handle();
        if (asio::ip::make_address(host, ec); ec) {
            SSL_set_tlsext_host_name(ssl, host.c_str());
            SSL_set1_host(ssl, host.c_str());
        } else {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
        }
        stream->begin_wait();
        auto [hec] = co_await tls->async_handshake(asio::ssl::stream_base::client,
                                                   asio::as_tuple(asio::use_awaitable));
        stream->end_wait();
        if (!hec) {
            co_return std::nullopt;
        }
        std::string why = timed(hec).message();
        if (const auto verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
            why = std::string("certificate verification failed: ") +
                  X509_verify_cert_error_string(verify);
        }
        co_return why;
    }

    // With `idle_ok`, a deadline that passes before any byte of a reply
    // arrived answers nullopt and keeps the connection.
    net::Task<std::optional<Result>> read_reply(Duration timeout, bool idle_ok = false) {
        if (!stream) {
            co_return Result{std::string("not connected")};
        }
        if (auto r = parsed()) {
            co_return *r;
        }
        stream->expires_after(timeout);
        char buf[16 * 1024];
        for (;;) {
            auto [ec, n] = co_await read_some(asio::buffer(buf));
            if (ec == boost::beast::error::timeout && idle_ok && buffered == 0) {
                co_return std::nullopt;
            }
            if (ec) {
                reset();
                co_return Result{ec == boost::beast::error::timeout
                                     ? std::string("no reply within the deadline")
                                     : "connection lost: " + ec.message()};
            }
            buffered += n;
            if (buffered > kMaxReplyBytes) {
                reset();
                co_return Result{std::string("a reply larger than 16 MiB")};
            }
            redisReaderFeed(reader, buf, n);
            if (auto r = parsed()) {
                if (std::holds_alternative<std::string>(*r)) {
                    reset();
                }
                co_return *r;
            }
        }
    }

    asio::any_io_executor ex;
    std::unique_ptr<net::Stream> stream;
    std::unique_ptr<asio::ssl::context> tls_context;
    std::unique_ptr<asio::ssl::stream<net::tcp::socket&>> tls;  // rediss:// only
    redisReader* reader = nullptr;
    std::size_t buffered = 0;
};

Connection::Connection(asio::any_io_executor ex) : impl_(std::make_unique<Impl>(std::move(ex))) {}
Connection::~Connection() = default;

bool Connection::connected() const {
    return impl_->stream != nullptr;
}

bool Connection::usable() {
    auto& d = *impl_;
    if (!d.stream) {
        return false;
    }
    // Nothing may be waiting on an idle connection: a byte or an end of
    // stream there means Redis closed it (a restart, a timeout).
    char byte = 0;
    const auto n = ::recv(d.stream->socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return true;
    }
    d.reset();
    return false;
}

void Connection::close() {
    impl_->reset();
}

void Connection::cancel() {
    if (impl_->stream) {
        boost::system::error_code ignored;
        impl_->stream->socket().cancel(ignored);
    }
}

net::Task<std::optional<std::string>> Connection::connect(Url url, Duration timeout) {
    auto& d = *impl_;
    d.reset();
    net::tcp::resolver resolver(d.ex);
    // Named, not temporaries in the co_await: GCC 12 destroys those twice.
    const std::string port = std::to_string(url.port);
    auto [rec, results] =
        co_await resolver.async_resolve(url.host, port, asio::as_tuple(asio::use_awaitable));
    if (rec || results.empty()) {
        co_return "cannot resolve " + url.host + ": " + (rec ? rec.message() : "no address");
    }
    d.stream = std::make_unique<net::Stream>(net::tcp::socket(d.ex));
    d.stream->expires_after(timeout);
    if (auto ec = co_await net::connect(*d.stream, results.begin()->endpoint())) {
        d.reset();
        co_return "cannot connect to " + url.redacted() + ": " + ec.message();
    }
    if (url.tls) {
        if (auto why = co_await d.handshake(url.host)) {
            d.reset();
            co_return "TLS with " + url.redacted() + ": " + *why;
        }
    }
    d.reader = redisReaderCreate();
    std::vector<std::vector<std::string>> setup;

    if (!url.password.empty()) {
        setup.push_back(url.user.empty()
                            ? std::vector<std::string>{"AUTH", url.password}
                            : std::vector<std::string>{"AUTH", url.user, url.password});
    }
    if (url.db != 0) {
        setup.push_back({"SELECT", std::to_string(url.db)});
    }
    if (url.tls) {
        // A round trip takes in what the server sends after the handshake
        // (TLS 1.3 session tickets), so that bytes found waiting on an idle
        // connection later mean it was closed (see usable()).
        setup.push_back({"PING"});
    }
    for (auto& args : setup) {
        const auto what = args.front();
        auto r = co_await command(std::move(args), timeout);
        if (auto* err = std::get_if<std::string>(&r)) {
            co_return what + ": " + *err;
        }
        if (std::get<Reply>(r).is_error()) {
            const auto message = std::get<Reply>(r).str;
            d.reset();
            co_return what + " refused: " + message;
        }
    }
    co_return std::nullopt;
}

net::Task<Result> Connection::command(std::vector<std::string> args, Duration timeout) {
    auto& d = *impl_;
    if (!d.stream) {
        co_return Result{std::string("not connected")};
    }
    const auto wire = encode(args);
    d.stream->expires_after(timeout);
    if (auto ec = co_await d.write(asio::buffer(wire))) {
        d.reset();
        co_return Result{"connection lost: " + ec.message()};
    }
    co_return *co_await d.read_reply(timeout);
}

net::Task<Result> Connection::next_reply(Duration timeout) {
    co_return *co_await impl_->read_reply(timeout);
}

net::Task<std::optional<Result>> Connection::poll(Duration idle) {
    return impl_->read_reply(idle, true);
}

}  // namespace bgs::redis
