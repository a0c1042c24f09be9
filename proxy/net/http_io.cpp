#include "proxy/net/http_io.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cerrno>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string_view>

namespace bgs::net {
namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMinRead = 1024;
constexpr std::size_t kMaxRead = 64 * 1024;

// An operation that failed because the stream's deadline cancelled it reports
// the timeout, not the cancellation.
error_code timed(Stream& s, error_code ec) {
    return ec && s.expired() ? error_code(beast::error::timeout) : ec;
}

// --- TLS: OpenSSL on the non-blocking socket ------------------------------------
// Each call tries at once; when OpenSSL wants the socket readable (or, during
// a handshake or a key update, writable) the coroutine waits for that.

enum class Want { Read, Write };

// An OpenSSL result as an error code: would_block with what to wait for.
error_code tls_result(SSL* ssl, int r, Want& want) {
    switch (SSL_get_error(ssl, r)) {
        case SSL_ERROR_WANT_READ:
            want = Want::Read;
            return asio::error::would_block;
        case SSL_ERROR_WANT_WRITE:
            want = Want::Write;
            return asio::error::would_block;
        case SSL_ERROR_ZERO_RETURN:
            return asio::error::eof;
        case SSL_ERROR_SYSCALL:
            ERR_clear_error();
            return errno != 0 ? error_code(errno, boost::system::system_category())
                              : error_code(asio::error::eof);
        default:
            ERR_clear_error();
            return asio::error::connection_aborted;  // a protocol error; the log names the peer
    }
}

Task<error_code> wait_for(Stream& s, Want want) {
    if (s.expired()) {
        co_return error_code(beast::error::timeout);
    }
    s.begin_wait();
    auto [ec] = co_await s.socket().async_wait(
        want == Want::Read ? tcp::socket::wait_read : tcp::socket::wait_write, kNoThrow);
    s.end_wait();
    co_return timed(s, ec);
}

std::size_t tls_read_now(Stream& s, asio::mutable_buffer into, error_code& ec, Want& want) {
    std::size_t n = 0;
    errno = 0;
    const int r = SSL_read_ex(s.tls(), into.data(), into.size(), &n);
    ec = r == 1 ? error_code{} : tls_result(s.tls(), r, want);
    return n;
}

Task<std::pair<error_code, std::size_t>> tls_read(Stream& s, asio::mutable_buffer into) {
    for (;;) {
        error_code ec;
        Want want = Want::Read;
        const std::size_t n = tls_read_now(s, into, ec, want);
        if (ec != asio::error::would_block) {
            co_return std::pair{ec, n};
        }
        if (auto wec = co_await wait_for(s, want)) {
            co_return std::pair{wec, std::size_t{0}};
        }
    }
}

// Writes all of `data`. A write OpenSSL could not finish must be retried with
// the same bytes; with `copy_rest` they are copied first, so the caller may
// reuse its buffer as soon as this suspends.
Task<error_code> tls_write(Stream& s, asio::const_buffer data, bool copy_rest) {
    std::unique_ptr<char[]> copy;
    for (;;) {
        while (data.size() > 0) {
            std::size_t n = 0;
            errno = 0;
            const int r = SSL_write_ex(s.tls(), data.data(), data.size(), &n);
            if (r != 1) {
                break;
            }
            data += n;
        }
        if (data.size() == 0) {
            co_return error_code{};
        }
        Want want = Want::Write;
        const auto ec = tls_result(s.tls(), 0, want);
        if (ec != asio::error::would_block) {
            co_return ec;
        }
        if (copy_rest && !copy) {
            copy = std::make_unique_for_overwrite<char[]>(data.size());
            std::memcpy(copy.get(), data.data(), data.size());
            data = asio::const_buffer(copy.get(), data.size());
        }
        if (auto wec = co_await wait_for(s, want)) {
            co_return wec;
        }
    }
}

// Buffers start small (a connection that sends one short request and then
// idles costs little) and grow when a read fills all the room it was given
// (a body streaming through soon reads 64 KiB at a time).
std::size_t read_size(const beast::flat_buffer& buf) {
    return std::clamp(buf.capacity() - buf.size(), kMinRead, kMaxRead);
}

void commit_read(beast::flat_buffer& buf, std::size_t asked, std::size_t got) {
    buf.commit(got);
    if (got == asked && buf.capacity() < kMaxRead) {
        buf.reserve(std::min(2 * buf.capacity(), kMaxRead));
    }
}

// RFC 9112 §2.6: a message with a higher minor version of HTTP/1 is handled as
// HTTP/1.1 (Beast refuses anything but 1.0 and 1.1). Rewrites the version's
// minor digit in the buffered start line, once that line is complete.
void treat_higher_minor_as_http11(beast::flat_buffer& buf, bool request) {
    auto* data = static_cast<char*>(buf.data().data());
    const auto* eol = static_cast<const char*>(std::memchr(data, '\n', buf.size()));
    if (eol == nullptr) {
        return;
    }
    std::size_t len = static_cast<std::size_t>(eol - data);
    if (len > 0 && data[len - 1] == '\r') {
        --len;
    }
    static constexpr std::string_view kPrefix = "HTTP/1.";
    constexpr std::size_t kVersionLen = 8;  // "HTTP/1.x"
    if (len < kVersionLen) {
        return;
    }
    char* version = request ? data + len - kVersionLen : data;
    if (request && (len == kVersionLen || version[-1] != ' ')) {
        return;
    }
    if (std::string_view(version, kPrefix.size()) == kPrefix && version[7] >= '2' &&
        version[7] <= '9' && (request || len == kVersionLen || version[kVersionLen] == ' ')) {
        version[7] = '1';
    }
}

// In a body, the parser asks for more only while what is buffered is an
// unfinished chunk-size line or trailer section: each is bounded, so that a
// peer cannot make the buffer grow until the idle timeout.
template <typename Parser>
bool framing_over_limit(const beast::flat_buffer& buf, const Parser& p) {
    constexpr std::size_t kLine = Parser::kChunkLineLimit;
    if (buf.size() <= kLine) {
        return false;
    }
    const auto* data = static_cast<const char*>(buf.data().data());
    std::string_view head(data, kLine);
    // The CRLF that ends the previous chunk's data may come first.
    const std::size_t from = head.starts_with("\r\n") ? 2 : 0;
    if (head.find('\n', from) == std::string_view::npos) {
        return true;  // no chunk-size line ends within the bound
    }
    return buf.size() > p.framing_limit();  // the trailer section
}

// Feeds the parser what is buffered and reads more while it needs more: until
// the header is complete (`whole_header`), or else until one step of progress
// (the contract of http::async_read_some). One coroutine frame per call: the
// read is awaited here rather than through read_some.
template <typename Parser>
Task<error_code> parse(Stream& s, beast::flat_buffer& buf, Parser& p, bool whole_header) {
    error_code ec;
    bool buffered = buf.size() > 0;
    const std::size_t window_before = p.window_left();
    for (;;) {
        if (buffered) {
            if (!p.start_line_done()) {
                treat_higher_minor_as_http11(buf, Parser::is_request::value);
            }
            buf.consume(p.put(buf.data(), ec));
            if (ec != http::error::need_more) {
                if (ec || !whole_header || p.is_header_done()) {
                    co_return ec == http::error::need_buffer ? error_code{} : ec;
                }
                buffered = buf.size() > 0;
                continue;
            }
            if (p.is_header_done() && framing_over_limit(buf, p)) {
                co_return error_code(http::error::bad_chunk);
            }
            // Beast asks for more after a chunk's data when the next chunk-size
            // line is incomplete. Bytes already in the window go back to the
            // caller first: a window may be shared by every coroutine of the
            // thread, so it must never hold bytes across a suspension.
            if (!whole_header && p.window_left() != window_before) {
                co_return error_code{};
            }
        }
        if (s.expired()) {
            co_return error_code(beast::error::timeout);
        }
        const auto asked = read_size(buf);
        error_code rec;
        std::size_t n = 0;
        if (s.tls() != nullptr) {
            std::tie(rec, n) = co_await tls_read(s, buf.prepare(asked));
        } else {
            s.begin_wait();
            std::tie(rec, n) = co_await s.socket().async_read_some(buf.prepare(asked), kNoThrow);
            s.end_wait();
        }
        if (rec == asio::error::eof) {
            ec = {};
            if (p.got_some()) {
                p.put_eof(ec);
            } else {
                ec = http::error::end_of_stream;
            }
            co_return ec;
        }
        if (rec) {
            co_return timed(s, rec);
        }
        commit_read(buf, asked, n);
        buffered = true;
    }
}

// TLS: what OpenSSL takes at once is written without waiting; the rest (with
// `copy_rest`, copied into one buffer, since the caller may reuse its own as
// soon as this suspends) is written as room comes.
template <typename Buffers>
Task<error_code> tls_write_buffers(Stream& s, const Buffers& data, bool copy_rest) {
    std::array<asio::const_buffer, 8> parts;
    std::size_t count = 0;
    std::size_t total = 0;
    for (const auto b : beast::buffers_range_ref(data)) {
        if (b.size() > 0 && count < parts.size()) {
            parts[count++] = b;
            total += b.size();
        }
    }
    // Several small pieces (a response head and its body) go as one record
    // and one system call: gathered into this thread's scratch first.
    thread_local std::array<char, 16 * 1024> gather;
    if (count > 1 && total <= gather.size()) {
        std::size_t at = 0;
        for (std::size_t k = 0; k < count; ++k) {
            std::memcpy(gather.data() + at, parts[k].data(), parts[k].size());
            at += parts[k].size();
        }
        parts[0] = asio::const_buffer(gather.data(), total);
        count = 1;
        copy_rest = true;  // the scratch is the thread's: copied before any wait
    }
    std::size_t i = 0;
    while (i < count) {
        std::size_t n = 0;
        errno = 0;
        const int r = SSL_write_ex(s.tls(), parts[i].data(), parts[i].size(), &n);
        if (r != 1) {
            Want want = Want::Write;
            const auto ec = tls_result(s.tls(), r, want);
            if (ec != asio::error::would_block) {
                co_return ec;
            }
            break;
        }
        parts[i] += n;
        if (parts[i].size() == 0) {
            ++i;
        }
    }
    if (i == count) {
        co_return error_code{};
    }
    if (copy_rest || count - i > 1) {
        // One buffer that begins with the bytes OpenSSL must be given again.
        std::size_t left = 0;
        for (std::size_t k = i; k < count; ++k) {
            left += parts[k].size();
        }
        auto copy = std::make_unique_for_overwrite<char[]>(left);
        std::size_t at = 0;
        for (std::size_t k = i; k < count; ++k) {
            std::memcpy(copy.get() + at, parts[k].data(), parts[k].size());
            at += parts[k].size();
        }
        co_return co_await tls_write(s, asio::const_buffer(copy.get(), left), false);
    }
    co_return co_await tls_write(s, parts[i], false);
}

// Writes go to the kernel directly: a response that fits the socket buffer (the
// usual case) costs one sendmsg and no trip through the reactor. Only the rest
// of a write the kernel did not take waits for room.
template <typename Buffers>
Task<error_code> write_buffers(Stream& s, Buffers data, bool copy_rest = false,
                               bool closing = false) {
    if (s.tls() != nullptr) {
        co_return co_await tls_write_buffers(s, data, copy_rest);
    }
    auto& sock = s.socket();
    error_code ec;
    if (!sock.non_blocking()) {
        sock.non_blocking(true, ec);
        if (ec) {
            co_return ec;
        }
    }
    const std::size_t total = asio::buffer_size(data);
    const std::size_t sent = sock.send(data, closing ? MSG_MORE : 0, ec);
    if (!ec && sent == total) {
        co_return error_code{};
    }
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
        co_return ec;
    }
    if (s.expired()) {
        co_return error_code(beast::error::timeout);
    }
    beast::buffers_suffix<Buffers> rest(data);
    rest.consume(sent);
    std::unique_ptr<char[]> copy;
    asio::const_buffer owned;
    if (copy_rest) {
        const auto left = asio::buffer_size(rest);
        copy = std::make_unique_for_overwrite<char[]>(left);
        owned = asio::buffer(copy.get(), asio::buffer_copy(asio::buffer(copy.get(), left), rest));
    }
    s.begin_wait();
    auto [wec, n] = copy_rest ? co_await asio::async_write(sock, owned, kNoThrow)
                              : co_await asio::async_write(sock, rest, kNoThrow);
    s.end_wait();
    co_return timed(s, wec);
}

}  // namespace

Task<error_code> read_header(Stream& s, beast::flat_buffer& buf, RequestParser& p) {
    return parse(s, buf, p, /*whole_header=*/true);
}

Task<error_code> read_header(Stream& s, beast::flat_buffer& buf, ResponseParser& p) {
    return parse(s, buf, p, /*whole_header=*/true);
}

Task<error_code> read_body(Stream& s, beast::flat_buffer& buf, RequestParser& p) {
    return parse(s, buf, p, /*whole_header=*/false);
}

Task<error_code> read_body(Stream& s, beast::flat_buffer& buf, ResponseParser& p) {
    return parse(s, buf, p, /*whole_header=*/false);
}

Task<error_code> write_all(Stream& s, asio::const_buffer data, bool closing) {
    return write_buffers(s, data, /*copy_rest=*/false, closing);
}

Task<error_code> write_all(Stream& s, const std::array<asio::const_buffer, 5>& data) {
    return write_buffers(s, data);
}

Task<error_code> write_copying(Stream& s, asio::const_buffer data) {
    return write_buffers(s, data, /*copy_rest=*/true);
}

Task<error_code> write_copying(Stream& s, const std::array<asio::const_buffer, 5>& data,
                               bool closing) {
    return write_buffers(s, data, /*copy_rest=*/true, closing);
}

asio::mutable_buffer thread_scratch() {
    thread_local std::array<char, 16 * 1024> scratch;
    return asio::buffer(scratch);
}

Task<std::pair<error_code, std::size_t>> read_ready(Stream& s, asio::mutable_buffer into) {
    if (s.tls() != nullptr) {
        co_return co_await tls_read(s, into);  // writes `into` only when bytes are there
    }
    auto& sock = s.socket();
    for (;;) {
        error_code ec;
        const std::size_t n = sock.receive(into, 0, ec);
        if (ec != asio::error::would_block && ec != asio::error::try_again) {
            co_return std::pair{ec, n};
        }
        if (s.expired()) {
            co_return std::pair{error_code(beast::error::timeout), std::size_t{0}};
        }
        s.begin_wait();
        auto [wec] = co_await sock.async_wait(tcp::socket::wait_read, kNoThrow);
        s.end_wait();
        if (wec) {
            co_return std::pair{timed(s, wec), std::size_t{0}};
        }
    }
}

Task<error_code> wait_readable(Stream& s) {
    if (s.tls() != nullptr && SSL_has_pending(s.tls()) == 1) {
        co_return error_code{};  // decrypted, or a record read whole, is waiting
    }
    if (s.expired()) {
        co_return error_code(beast::error::timeout);
    }
    s.begin_wait();
    auto [ec] = co_await s.socket().async_wait(tcp::socket::wait_read, kNoThrow);
    s.end_wait();
    co_return timed(s, ec);
}

void when_readable(Stream& s, ReadyFn ready, void* context) {
    if (s.expired()) {
        asio::post(s.get_executor(),
                   [ready, context] { ready(context, error_code(beast::error::timeout)); });
        return;
    }
    s.begin_wait();
    s.socket().async_wait(tcp::socket::wait_read, [&s, ready, context](error_code ec) {
        s.end_wait();
        ready(context, timed(s, ec));
    });
}

Task<std::pair<error_code, std::size_t>> read_some(Stream& s, asio::mutable_buffer into) {
    if (s.tls() != nullptr) {
        co_return co_await tls_read(s, into);
    }
    if (s.expired()) {
        co_return std::pair{error_code(beast::error::timeout), std::size_t{0}};
    }
    s.begin_wait();
    auto [ec, n] = co_await s.socket().async_read_some(into, kNoThrow);
    s.end_wait();
    co_return std::pair{timed(s, ec), n};
}

Task<error_code> handshake(Stream& s) {
    for (;;) {
        errno = 0;
        const int r = SSL_do_handshake(s.tls());
        if (r == 1) {
            co_return error_code{};
        }
        Want want = Want::Read;
        const auto ec = tls_result(s.tls(), r, want);
        if (ec != asio::error::would_block) {
            co_return ec;
        }
        if (auto wec = co_await wait_for(s, want)) {
            co_return wec;
        }
    }
}

Task<error_code> connect(Stream& s, const tcp::endpoint& ep) {
    if (s.expired()) {
        co_return error_code(beast::error::timeout);
    }
    // Non-blocking from the start: the connect then needs no mode change of
    // its own, and the stream none after it (one system call per dial).
    if (!s.socket().is_open()) {
        error_code oec;
        s.socket().open(ep.protocol(), oec);
        if (!oec) {
            s.socket().non_blocking(true, oec);
        }
        if (oec) {
            co_return oec;
        }
    }
    s.begin_wait();
    auto [ec] = co_await s.socket().async_connect(ep, kNoThrow);
    s.end_wait();
    if (!ec && !s.socket().non_blocking()) {
        s.socket().non_blocking(true, ec);
    }
    co_return timed(s, ec);
}

}  // namespace bgs::net
