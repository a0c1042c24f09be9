#include "proxy/state/redis.hpp"

#include "proxy/net/tls.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

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

    // rediss://: the stream itself speaks TLS (net::Stream::use_tls). The
    // server's certificate is verified against the system's trust store (or
    // SSL_CERT_FILE / SSL_CERT_DIR) and must name `host`.
    net::Task<std::optional<std::string>> handshake(const std::string& host) {
        auto loaded = net::tls::ClientContext::load({});
        if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) {
            co_return problems->front();
        }
        const auto& context = std::get<std::shared_ptr<net::tls::ClientContext>>(loaded);
        SSL* ssl = context->connect(stream->socket().native_handle(), host);
        stream->use_tls(ssl);
        if (auto ec = co_await net::handshake(*stream)) {
            co_return net::tls::ClientContext::why_failed(ssl, ec.message());
        }
        co_return std::nullopt;
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
            auto [ec, n] = co_await net::read_some(*stream, asio::buffer(buf));
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
    if (auto ec = co_await net::write_all(*d.stream, asio::buffer(wire))) {
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
