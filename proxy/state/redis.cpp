#include "proxy/state/redis.hpp"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <charconv>

namespace bgs::redis {

namespace asio = net::asio;

namespace {

bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        unsigned value = 0;
        if (i + 2 >= in.size() ||
            std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16).ptr !=
                in.data() + i + 3) {
            return false;
        }
        out += static_cast<char>(value);
        i += 2;
    }
    return true;
}

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

std::optional<Url> Url::parse(std::string_view text, std::string* why) {
    Url u;
    if (text.starts_with("redis://")) {
        text.remove_prefix(8);
    } else if (text.starts_with("rediss://")) {
        u.tls = true;
        text.remove_prefix(9);
    } else {
        *why = "must start with redis:// or rediss://";
        return std::nullopt;
    }
    std::string_view path;
    if (const auto slash = text.find('/'); slash != std::string_view::npos) {
        path = text.substr(slash + 1);
        text = text.substr(0, slash);
    }
    if (const auto at = text.rfind('@'); at != std::string_view::npos) {
        const auto credentials = text.substr(0, at);
        text = text.substr(at + 1);
        const auto colon = credentials.find(':');
        const auto user = credentials.substr(0, colon);
        const auto password =
            colon == std::string_view::npos ? std::string_view{} : credentials.substr(colon + 1);
        if (!percent_decode(user, u.user) || !percent_decode(password, u.password)) {
            *why = "a bad %-escape in the credentials";
            return std::nullopt;
        }
        if (colon == std::string_view::npos) {  // redis://password@host: the password alone
            u.password = std::exchange(u.user, {});
        }
    }
    std::string_view host = text;
    std::string_view port;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            *why = "an IPv6 address needs its closing ]";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        const auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                *why = "expected :port after ]";
                return std::nullopt;
            }
            port = rest.substr(1);
        }
    } else if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (host.empty()) {
        *why = "no host";
        return std::nullopt;
    }
    u.host = host;
    if (!port.empty()) {
        unsigned p = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc{} || end != port.data() + port.size() || p == 0 || p > 65535) {
            *why = "port must be 1..65535";
            return std::nullopt;
        }
        u.port = static_cast<std::uint16_t>(p);
    }
    if (!path.empty()) {
        const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), u.db);
        if (ec != std::errc{} || end != path.data() + path.size() || u.db > 65535) {
            *why = "the database must be a number";
            return std::nullopt;
        }
    }
    return u;
}

std::string Url::redacted() const {
    std::string out = tls ? "rediss://" : "redis://";
    if (!user.empty() || !password.empty()) {
        out += user + (password.empty() ? "" : ":***") + "@";
    }
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return out + ":" + std::to_string(port) + "/" + std::to_string(db);
}

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

    net::Task<Result> read_reply(Duration timeout) {
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

void Connection::close() {
    impl_->reset();
}

net::Task<std::optional<std::string>> Connection::connect(Url url, Duration timeout) {
    auto& d = *impl_;
    d.reset();
    if (url.tls) {
        co_return std::string("rediss:// (TLS) is not supported yet");
    }
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
    co_return co_await d.read_reply(timeout);
}

net::Task<Result> Connection::next_reply(Duration timeout) {
    return impl_->read_reply(timeout);
}

}  // namespace bgs::redis
