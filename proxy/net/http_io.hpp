// Non-template funnels for every HTTP read and write on the data path. Messages
// are parsed with Beast's parsers fed straight from the socket; writes go to the
// kernel at once and only wait when its buffer is full. All functions are
// coroutines on the calling worker's executor; none throws; deadlines are set by
// the caller on the stream (expires_after) before the call, and an operation the
// deadline cut fails with beast::error::timeout.
#pragma once

#include "proxy/net/message_parser.hpp"
#include "proxy/net/stream.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/system/error_code.hpp>

#include <array>
#include <cstddef>
#include <utility>

namespace bgs::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

template <typename T>
using Task = asio::awaitable<T>;

/// Reads until the parser has a complete header. A client that closes before
/// sending anything gives http::error::end_of_stream.
Task<error_code> read_header(Stream& s, beast::flat_buffer& buf, RequestParser& p);
Task<error_code> read_header(Stream& s, beast::flat_buffer& buf, ResponseParser& p);

/// Reads body bytes into the parser's current window. Beast's need_buffer (the
/// window is full) is reported as success. Never suspends once the window
/// holds a byte of this call's: it returns them first, so a window shared by
/// the coroutines of a thread (thread_scratch) is safe as long as the caller
/// hands the bytes on before its own next suspension.
Task<error_code> read_body(Stream& s, beast::flat_buffer& buf, RequestParser& p);
Task<error_code> read_body(Stream& s, beast::flat_buffer& buf, ResponseParser& p);

/// Writes all of `data`. `closing`: nothing more is written on `s` and it is
/// closed right after, so the kernel may hold the bytes and send them with the
/// FIN, one segment instead of two (MSG_MORE; the close flushes them).
Task<error_code> write_all(Stream& s, asio::const_buffer data, bool closing = false);
/// Writes all of several buffers in one gathered write (empty ones are fine).
Task<error_code> write_all(Stream& s, const std::array<asio::const_buffer, 5>& data);

/// Reads at least one byte into `into`; returns the count.
Task<std::pair<error_code, std::size_t>> read_some(Stream& s, asio::mutable_buffer into);

/// Writes all of `data`, which the caller may reuse as soon as this suspends:
/// what the kernel does not take at once is copied first.
Task<error_code> write_copying(Stream& s, asio::const_buffer data);
Task<error_code> write_copying(Stream& s, const std::array<asio::const_buffer, 5>& data,
                               bool closing = false);

/// This thread's 16 KiB scratch buffer, for bytes that pass through without
/// waiting: fill it and hand it to write_copying or read_ready without a
/// suspension in between.
asio::mutable_buffer thread_scratch();

/// Waits until `s` is readable without holding a buffer, then reads what is
/// there (at least one byte) into `into`, which may be shared by coroutines of
/// the same thread: it is written only after the wait.
Task<std::pair<error_code, std::size_t>> read_ready(Stream& s, asio::mutable_buffer into);

/// Waits until `s` is readable (or closed), holding no buffer.
Task<error_code> wait_readable(Stream& s);

/// The same without a coroutine: `ready(context, ec)` is called once, when
/// `s` is readable, at its deadline (timeout) or when cancelled. What waits is
/// the handler alone (a few dozen bytes), so a parked connection costs no
/// coroutine frames. `s` must outlive the call.
using ReadyFn = void (*)(void* context, error_code ec);
void when_readable(Stream& s, ReadyFn ready, void* context);

/// Connects to `ep`.
Task<error_code> connect(Stream& s, const tcp::endpoint& ep);

/// The TLS handshake of a stream given an SSL object (Stream::use_tls),
/// within its deadline. Every read and write above speaks TLS on such a
/// stream.
Task<error_code> handshake(Stream& s);

}  // namespace bgs::net
