// The data path's TCP connection: an Asio socket plus one coarse deadline.
//
// beast::tcp_stream arms and cancels a timer around every read and write, which
// on the keep-alive path costs more than the proxying itself. Here a deadline is
// a time stamp: setting it files the stream in its io_context's DeadlineWheel (a
// few pointer moves, no syscall, no allocation) and the wheel, ticking every
// 50 ms while anything is filed, cancels the pending operations of streams whose
// time is up. The operation then fails with beast::error::timeout and, unlike
// tcp_stream, the socket stays open, so the caller can still answer (408, 504).
//
// Owner's thread only; a stream does not move (the wheel points at it).
#pragma once

#include "proxy/common/units.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <utility>

struct ssl_st;
#include <cstdint>
#include <optional>

namespace bgs::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using SteadyTime = std::chrono::steady_clock::time_point;

class DeadlineWheel;

/// The time deadlines are set from: CLOCK_MONOTONIC_COARSE (steady_clock's
/// clock, read without the cost of a precise clock read, which is paid several
/// times per request otherwise) plus its resolution, so a deadline set from it
/// is never earlier than one set from steady_clock::now().
SteadyTime coarse_now();

class Stream {
  public:
    /// Takes over a connected socket (made non-blocking for direct writes).
    explicit Stream(tcp::socket socket);
    /// An unconnected stream, for net::connect.
    explicit Stream(const asio::any_io_executor& ex);
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    tcp::socket& socket() { return socket_; }
    asio::any_io_executor get_executor() { return socket_.get_executor(); }

    /// TLS from now on: `ssl` (owned, freed with the stream) carries the
    /// bytes over the socket; the I/O funnels (http_io.hpp) drive it.
    void use_tls(ssl_st* ssl);
    ssl_st* tls() const { return ssl_; }
    /// Hands the SSL object over (to the stream that takes the socket next);
    /// this stream is plain from now on.
    ssl_st* release_tls() { return std::exchange(ssl_, nullptr); }
    /// OpenSSL holds bytes read from the socket that it has not returned yet
    /// (a partial record): the socket's readiness alone does not tell of them.
    bool tls_pending() const;
    /// An idle connection gives OpenSSL's read and write buffers back (it
    /// takes them again for its next record).
    void release_tls_buffers();
    /// Nothing more is sent: TLS's close_notify first, then the TCP half-close.
    void shutdown_send();
    /// Neither direction is used again (close_notify first for TLS).
    void shutdown_both();

    /// Operations started or pending after `at` fail with beast::error::timeout.
    void expires_at(SteadyTime at);
    /// Saturates: a duration over kMaxDuration counts as kMaxDuration.
    void expires_after(Duration d) { expires_at(coarse_now() + std::min(d, kMaxDuration)); }
    void expires_never() { expires_at(SteadyTime::max()); }
    bool expired() const { return expired_; }
    SteadyTime deadline() const { return deadline_; }

    /// Bracket an operation the deadline may cancel (used by the I/O funnels).
    void begin_wait() { ++pending_; }
    void end_wait() { --pending_; }

  private:
    friend class DeadlineWheel;
    void expire();

    tcp::socket socket_;
    ssl_st* ssl_ = nullptr;
    DeadlineWheel& wheel_;
    SteadyTime deadline_ = SteadyTime::max();
    // Links in the wheel slot the stream is filed in (slot_ < 0: not filed).
    Stream* prev_ = nullptr;
    Stream* next_ = nullptr;
    int slot_ = -1;
    int pending_ = 0;
    bool expired_ = false;
};

/// Per-io_context timer wheel for Stream deadlines (an Asio service).
class DeadlineWheel : public asio::execution_context::service {
  public:
    using key_type = DeadlineWheel;
    static asio::execution_context::id id;

    static constexpr auto kTick = std::chrono::milliseconds(50);
    static constexpr int kSlots = 256;  // one turn: 12.8 s; later deadlines wait a turn

    explicit DeadlineWheel(asio::execution_context& ctx);

    /// Files `s` under its deadline (or unfiles it when it has none).
    void file(Stream& s);
    void unfile(Stream& s);
    std::size_t filed() const { return filed_; }

  private:
    void shutdown() override;
    void start_ticking(const asio::any_io_executor& ex);
    void tick();
    std::int64_t tick_of(SteadyTime t) const;

    std::array<Stream*, kSlots> slots_{};
    std::size_t filed_ = 0;
    std::optional<asio::steady_timer> timer_;
    bool ticking_ = false;
    bool shut_down_ = false;
    SteadyTime epoch_ = std::chrono::steady_clock::now();
    std::int64_t swept_ = 0;  // the last tick whose slot has been processed
};

}  // namespace bgs::net
