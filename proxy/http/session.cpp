// The life of a request, phase by phase (the code below carries these markers):
//
//  1. wait   An idle keep-alive connection waits for the first byte of its next
//            request (timeouts.idle); a quiet close here is normal.
//  2. read   The request header is read and parsed (timeouts.header_read,
//            limits.max_header_bytes -> 408, 431; Content-Length over
//            limits.max_body_bytes -> 413; malformed -> 400).
//  3. check  Framing and Host are validated; every ambiguity that could smuggle
//            a second request gets 400 and the connection is closed.
//  4. route  The router picks the color for this request (never cached per
//            connection, so a switch moves open keep-alive connections too) and
//            an upstream; a pooled connection is leased or a new one dialled.
//            A refused connect is retried once on another upstream.
//  5. send   The request header is rewritten (hop-by-hop out, X-Forwarded-* and
//            X-Request-Id in) and sent, then the body is streamed piece by piece.
//  6. await  The upstream's response header (timeouts.upstream_response -> 504).
//            A reused pooled connection that died before answering is replaced
//            once when the request had no body. A 101 turns into a tunnel.
//  7. relay  The response header is rewritten and sent at once, then the body is
//            streamed as it arrives, so SSE events and chunks are not held back.
//  8. done   Access log line; the upstream connection returns to the pool when
//            its exchange ended cleanly; the client connection is kept alive or
//            closed.
//
// A session is in one State at a time (Idle, Reading, Exchange, Streaming,
// Tunnel), which is also what drain and shutdown see (drain::Activity); how it
// ends is its Ending. Every failure is one ProxyError with its source and kind,
// read by the log line, the access log and bgswitch_errors_total.
#include "proxy/http/session.hpp"

#include "proxy/common/error.hpp"
#include "proxy/common/logging.hpp"
#include "proxy/common/random.hpp"
#include "proxy/http/headers.hpp"
#include "proxy/http/tunnel.hpp"
#include "proxy/metrics/access_log.hpp"
#include "proxy/net/error_class.hpp"
#include "proxy/routing/canary.hpp"
#include "proxy/worker/worker.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/system/result.hpp>

#include <charconv>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

namespace bgs::http {
namespace {

namespace asio = net::asio;
namespace beast = net::beast;
namespace bh = net::http;
using Clock = std::chrono::steady_clock;
using drain::Activity;

constexpr std::size_t kUpstreamHeaderLimit = 64 * 1024;
// The read buffer an idle client connection may keep between requests.
constexpr std::size_t kKeptBuffer = 8 * 1024;
constexpr std::size_t kFirstRead = 1024;
// Room for an outgoing head from the first request on.
constexpr std::size_t kHeadRoom = 1000;
// How long a quiet keep-alive connection keeps its session (read buffer,
// coroutine frames) before it parks. Longer than any gap between the
// requests of a busy client, short enough that a burst of new connections
// that then go quiet never holds a session each for long.
constexpr auto kBufferedWait = std::chrono::milliseconds(100);
// How long a response head may take before the client is watched meanwhile.
constexpr auto kWatchClientAfter = std::chrono::seconds(1);
// A shutdown (or the hand-over of an upgrade) gives a connection between
// requests this long: a request already on its way is served, with
// Connection: close, instead of meeting a closed socket.
constexpr auto kShutdownGrace = std::chrono::milliseconds(500);

// "a.b.c.d" without inet_ntop, whose sprintf cost more than everything else
// about accepting a connection; other families go through Asio.
std::string ip_text(const net::asio::ip::address& a) {
    if (!a.is_v4()) {
        return a.to_string();
    }
    const auto bytes = a.to_v4().to_bytes();
    std::string text;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        if (i > 0) {
            text += '.';
        }
        char digits[3];
        text.append(digits, std::to_chars(digits, digits + sizeof digits, bytes[i]).ptr);
    }
    return text;
}

bool is_trusted(const std::vector<config::Cidr>& networks, const net::asio::ip::address& a) {
    if (networks.empty()) {
        return false;
    }
    std::array<unsigned char, 16> bytes{};
    std::size_t len = 0;
    if (a.is_v4()) {
        const auto b = a.to_v4().to_bytes();
        std::copy(b.begin(), b.end(), bytes.begin());
        len = b.size();
    } else {
        const auto b = a.to_v6().to_bytes();
        std::copy(b.begin(), b.end(), bytes.begin());
        len = b.size();
    }
    return std::any_of(networks.begin(), networks.end(),
                       [&](const config::Cidr& c) { return c.contains(bytes.data(), len); });
}

bool iequals(std::string_view a, std::string_view b) {
    return beast::iequals(beast::string_view(a.data(), a.size()),
                          beast::string_view(b.data(), b.size()));
}

/// What a failed read of the client's request means: the answer to give and
/// the error to record, or nullopt when the client simply left.
std::optional<ProxyError> client_error(const net::error_code& ec) {
    ProxyError e{ErrorSource::Client, net::classify(ec), 0, ec.message()};
    if (ec == beast::error::timeout) {
        e.status = 408;
    } else if (ec == bh::error::header_limit) {
        e.status = 431;
    } else if (ec == bh::error::body_limit) {
        e.status = 413;
    } else if (ec.category() == bh::make_error_code(bh::error::bad_method).category() &&
               ec != bh::error::end_of_stream && ec != bh::error::partial_message) {
        e.status = 400;
        e.kind = ErrorKind::Protocol;
    } else if (net::is_benign_disconnect(ec) || ec == bh::error::partial_message) {
        return std::nullopt;
    }
    return e;
}

std::string reply_text(unsigned status) {
    const auto reason = bh::obsolete_reason(bh::int_to_status(status));
    return std::to_string(status) + " " + std::string(reason.data(), reason.size());
}

/// Everything the access log and the error replies need about one exchange.
struct Exchange {
    Clock::time_point start;
    std::optional<Color> routed;  // set once the request has a color
    /// A canary's new session: the response sets its cookie for this epoch.
    std::optional<std::uint64_t> cookie_epoch;
    metrics::AccessRecord rec;

    void reset() {
        start = Clock::now();
        routed.reset();
        cookie_epoch.reset();
        rec.method.clear();
        rec.target.clear();
        rec.version = 11;
        rec.status = 0;
        rec.bytes_sent = 0;
        rec.color = "-";
        rec.upstream = "-";
        rec.request_id.clear();
        rec.error.clear();
    }
};

/// The storage an exchange works in: both headers, the outgoing head and the
/// access record. A connection borrows one from its worker thread's spares for
/// each exchange and gives it back when the exchange ends (or becomes a
/// tunnel), so the spares number the exchanges in progress, not the
/// connections: neither a new connection nor a steady one allocates for it,
/// and an idle one holds none.
struct Scratch {
    net::FlatFields request_fields;
    net::FlatFields response_fields;
    std::string head;
    Exchange ex;
};

class ScratchSpares {
  public:
    std::unique_ptr<Scratch> take() {
        if (spares_.empty()) {
            return std::make_unique<Scratch>();
        }
        auto s = std::move(spares_.back());
        spares_.pop_back();
        return s;
    }
    void give_back(std::unique_ptr<Scratch> s) {
        // One that a huge header made large is not kept for the next.
        const std::size_t held = s->request_fields.capacity_bytes() +
                                 s->response_fields.capacity_bytes() + s->head.capacity();
        if (spares_.size() < kMaxSpares && held <= kMaxKeptBytes) {
            spares_.push_back(std::move(s));
        }
    }

  private:
    static constexpr std::size_t kMaxSpares = 256;
    static constexpr std::size_t kMaxKeptBytes = 16 * 1024;
    std::vector<std::unique_ptr<Scratch>> spares_;
};

ScratchSpares& thread_spares() {
    thread_local ScratchSpares spares;
    return spares;
}

// What a session is doing; the drain and shutdown decide by it.
enum class State : std::uint8_t {
    Idle,       // phase 1: between requests
    Reading,    // phase 2: reading a request header
    Exchange,   // phases 3-8 with a response of known length (or none yet)
    Streaming,  // phase 7 of a response without a known length (chunked, SSE)
    Tunnel,     // upgraded: the Tunnel runs the connection
};

// How the connection ends.
enum class Ending : std::uint8_t {
    KeepAlive,  // as the peers allow
    AfterThis,  // close once the current exchange ends (shutdown, drain, a closing reply)
    EndStream,  // end the stream now with its terminating chunk, then close
};

Activity activity_of(State s) {
    switch (s) {
        case State::Exchange:
            return Activity::Request;
        case State::Streaming:
            return Activity::Stream;
        case State::Tunnel:
            return Activity::Upgraded;
        case State::Idle:
        case State::Reading:
            break;
    }
    return Activity::Idle;
}

// What check_request decided about a request that may go upstream.
struct RequestPlan {
    RequestTarget where;
    bool upgrade = false;
    bool keep_alive = false;  // the client's wish
    bool has_body = false;
    bool expect_continue = false;
};

class Session final : public drain::TrackedSession {
  public:
    Session(worker::Worker& worker, net::tcp::socket socket, const net::tcp::endpoint& peer,
            routing::Audience audience, worker::TlsContext tls)
        : drain::TrackedSession(worker.registry()),
          worker_(worker),
          cfg_(worker.settings()),
          client_(std::move(socket)),
          audience_(audience),
          tls_(std::move(tls)) {
        worker_.shared().open_connections.fetch_add(1, std::memory_order_relaxed);
        peer_ip_ = ip_text(peer.address());
        peer_ = peer_ip_ + ":" + std::to_string(peer.port());
        client_address_ = peer.address();
        peer_port_ = peer.port();
        trusted_peer_ = is_trusted(cfg_->proxy.trusted_proxies, client_address_);
    }

    ~Session() override {
        release_scratch();
        worker_.shared().open_connections.fetch_sub(1, std::memory_order_relaxed);
    }

    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    net::asio::any_io_executor executor() { return client_.get_executor(); }

    /// A parked connection's session: it has served `requests` already;
    /// `ssl`, when not null, is its TLS connection, past the handshake.
    void resume(std::uint64_t requests, bool no_delay, ssl_st* ssl) {
        requests_ = requests;
        no_delay_ = no_delay;
        if (ssl != nullptr) {
            client_.use_tls(ssl);
        }
    }

    net::Task<void> run() {
        if (tls_ && client_.tls() == nullptr && !co_await handshake()) {
            co_return;
        }
        bool keep_alive = true;
        while (keep_alive && ending_ == Ending::KeepAlive) {
            refresh_settings();
            // --- 1. wait -----------------------------------------------------
            // Here rather than in serve_one, whose frame an idle connection
            // then does not hold.
            if (requests_ > 0 && buf_.size() == 0) {
                enter(State::Idle);
                const auto next = co_await wait_for_next_request();
                if (next == Next::Park) {
                    park();
                    co_return;
                }
                if (next == Next::Close) {
                    break;
                }
            }
            keep_alive = co_await serve_one();
        }
        if (linger_) {
            co_await linger_close();
        } else if (client_.tls() != nullptr) {
            client_.shutdown_send();  // close_notify on every close: idle, asked or failed
        }
        net::error_code ignored;
        client_.socket().close(ignored);
    }

  private:
    // Drain and shutdown end a session at its next safe point. A connection
    // between requests is cut at once (a shutdown first waits kShutdownGrace
    // for a request on its way); a tunnel ends (WebSockets with 1001)
    // for any reason; a stream gets its terminating chunk when its drain
    // window or the shutdown is over; a request in flight completes.
    void on_stop(drain::StopReason why) override {
        stopped_for_ = why;
        if (ending_ == Ending::KeepAlive) {
            ending_ = Ending::AfterThis;
        }
        net::error_code ignored;
        switch (state_) {
            case State::Idle:
            case State::Reading:
                if (buf_.size() != 0) {
                    break;  // a request is arriving: it is served
                }
                if (why == drain::StopReason::Shutdown) {
                    client_.expires_after(kShutdownGrace);
                } else {
                    client_.socket().cancel(ignored);
                }
                break;
            case State::Tunnel:
                tunnel_->stop(why);
                break;
            case State::Streaming:
                if (why != drain::StopReason::Shutdown && ending_ != Ending::EndStream) {
                    ending_ = Ending::EndStream;
                    worker_.shared().metrics.ended(why == drain::StopReason::Drain
                                                       ? metrics::EndReason::Drain
                                                       : metrics::EndReason::Shutdown,
                                                   metrics::DrainKind::Stream);
                    if (active_upstream_ != nullptr) {
                        active_upstream_->stream.socket().cancel(ignored);
                    }
                }
                break;
            case State::Exchange:
                break;
        }
    }

    // TLS first, within timeouts.header_read: a client that connects and
    // says nothing holds a connection no longer than one that sends no header.
    net::Task<bool> handshake() {
        SSL* ssl = tls_->accept(client_.socket().native_handle());
        if (ssl == nullptr) {
            ++tls_->handshakes_failed;
            co_return false;
        }
        client_.use_tls(ssl);
        // A handshake's flights and the tickets after it are several small
        // writes: Nagle would hold one back for the peer's delayed ACK.
        net::error_code ignored;
        client_.socket().set_option(net::tcp::no_delay(true), ignored);
        client_.expires_after(cfg_->timeouts.header_read);
        if (const auto ec = co_await net::handshake(client_)) {
            ++tls_->handshakes_failed;
            log().debug("TLS handshake with {} failed: {}", peer_, ec.message());
            co_return false;
        }
        ++tls_->handshakes_ok;
        co_return true;
    }

    // Between exchanges: picks up the worker's settings when a reload changed
    // them (a pointer comparison otherwise).
    void refresh_settings() {
        if (cfg_ != worker_.settings()) {
            cfg_ = worker_.settings();
            trusted_peer_ = is_trusted(cfg_->proxy.trusted_proxies, client_address_);
        }
    }

    void enter(State s, std::optional<Color> color = std::nullopt) {
        state_ = s;
        set(activity_of(s), color.value_or(this->color()));
    }

    // The parsers point into the scratch, so they go first.
    void release_scratch() {
        parser_.reset();
        rp_.reset();
        if (scratch_) {
            thread_spares().give_back(std::move(scratch_));
        }
    }
    std::string& head() { return scratch_->head; }

    // Nagle's algorithm would hold back the second of two small writes until
    // the first is acknowledged. A connection whose every response so far went
    // out in one write (all of them, for one-request connections) does not need
    // it off; the first response in pieces, stream, tunnel or second request on
    // the connection turns it off for good.
    void ensure_no_delay() {
        if (!no_delay_) {
            no_delay_ = true;
            net::error_code ignored;
            client_.socket().set_option(net::tcp::no_delay(true), ignored);
        }
    }

    // Phases 2 to 8 of one exchange; false when the connection must close.
    net::Task<bool> serve_one() {
        // --- 2. read ---------------------------------------------------------
        if (!co_await read_request()) {
            co_return false;
        }
        Exchange& ex = scratch_->ex;
        auto& parser = *parser_;
        // --- 3. check --------------------------------------------------------
        auto plan = check_request(parser);
        if (!plan) {
            co_await fail(ex, plan.error(), true);
            co_return false;
        }
        // --- 4. route --------------------------------------------------------
        const Color color = route(parser.fields(), ex);
        ex.routed = color;
        ex.rec.color = to_string(color);
        enter(State::Exchange, color);
        auto up = co_await lease_upstream(color, std::nullopt);
        if (!up) {
            const bool close = !parser.is_done() || !plan->keep_alive;
            // Named, not a temporary in the co_await: GCC 12 destroys such
            // temporaries twice.
            ProxyError err{ErrorSource::Upstream, ErrorKind::Refused, 502,
                           "no upstream of " + ex.rec.color + " could be reached"};
            co_await fail(ex, std::move(err), close);
            co_return finish(!close);
        }
        // --- 5. send and 6. await ------------------------------------------
        auto* rp = co_await send_and_await(ex, *plan, color, up);
        if (rp == nullptr) {
            co_return finish(ending_ == Ending::KeepAlive);
        }
        if (rp->status() == 101) {
            co_await upgrade(ex, *plan, *rp, up, color);
            co_return finish(false);
        }
        // --- 7. relay and 8. done ----------------------------------------------
        co_return co_await relay_and_finish(ex, *plan, *rp, std::move(up), color);
    }

    // Phase 4: the request's color. One atomic read; while a canary runs, the
    // session's cookie or sticky header (or a draw, for a new session) picks
    // between the active color and the canary's.
    Color route(const net::FlatFields& fields, Exchange& ex) {
        const auto& router = worker_.shared().router;
        if (audience_ == routing::Audience::Preview) {
            return router.route(audience_);
        }
        const auto snap = router.state().load();
        if (snap.canary_percent == 0) {
            return snap.active;
        }
        const auto epoch = router.state().canary_epoch();
        const auto& canary = cfg_->switching.canary;
        const auto d =
            routing::decide(snap, epoch, fields, canary.cookie, canary.sticky_header, random_u32());
        if (d.set_cookie) {
            ex.cookie_epoch = epoch;
        }
        return d.color;
    }

    // The canary's cookie, when this exchange's session was new.
    void add_cookie(ClientResponseHead& h, const Exchange& ex) const {
        if (ex.cookie_epoch && ex.routed) {
            h.cookie_name = cfg_->switching.canary.cookie;
            h.cookie_color = *ex.routed;
            h.cookie_epoch = *ex.cookie_epoch;
            h.cookie_secure = tls_ != nullptr;
        }
    }

    // Phase 2: reads the request header into a fresh exchange. False when the
    // connection must close (the client left, or got an error reply).
    net::Task<bool> read_request() {
        enter(State::Reading);
        if (requests_ > 0) {
            ensure_no_delay();  // responses may now follow each other (pipelining)
        }
        if (!scratch_) {
            scratch_ = thread_spares().take();
        }
        Exchange& ex = scratch_->ex;
        ex.reset();
        ex.rec.client = peer_;
        auto& parser = parser_.emplace(scratch_->request_fields);
        parser.header_limit(static_cast<std::uint32_t>(cfg_->limits.max_header_bytes));
        parser.body_limit(cfg_->limits.max_body_bytes);
        parser.framing_limit(cfg_->limits.max_header_bytes);
        // The deadline leaves the socket open, so a 408 can still be sent.
        client_.expires_after(cfg_->timeouts.header_read);
        if (auto ec = co_await net::read_header(client_, buf_, parser)) {
            auto err = client_error(ec);
            // A quiet keep-alive connection that times out or closes is normal.
            if (!err || (err->status == 408 && buf_.size() == 0 && requests_ > 0)) {
                co_return false;
            }
            if (parser.is_header_done()) {
                note_request(ex, parser);
            }
            co_await fail(ex, std::move(*err), true);
            co_return false;
        }
        ++requests_;
        refresh_settings();  // a reload while the connection waited applies to this exchange
        note_request(ex, parser);
        request_id_for(parser.fields(), ex.rec.request_id);
        co_return true;
    }

    // Phase 3 (a plain function): framing, method, target and Host; every
    // ambiguity that could smuggle a second request is refused.
    boost::system::result<RequestPlan, ProxyError> check_request(const net::RequestParser& parser) {
        const auto& req = parser.fields();
        if (auto why = request_framing_error(req, parser.version())) {
            return ProxyError{ErrorSource::Client, ErrorKind::Protocol, 400, *why};
        }
        if (parser.method() == bh::verb::connect) {
            // A reverse proxy opens no tunnels to where the client says.
            return ProxyError{ErrorSource::Client, ErrorKind::Protocol, 405,
                              "CONNECT is not supported"};
        }
        RequestPlan plan;
        plan.where = resolve_target(req, parser.method_string(), parser.target());
        if (plan.where.error) {
            return ProxyError{ErrorSource::Client, ErrorKind::Protocol, 400, *plan.where.error};
        }
        plan.upgrade = is_upgrade_request(req, parser.version());
        plan.keep_alive = parser.keep_alive();
        plan.has_body = parser.chunked() || parser.content_length().value_or(0) > 0;
        const auto expect = req.find(bh::field::expect);
        plan.expect_continue = expect && iequals(expect->value(), "100-continue") && plan.has_body;
        return plan;
    }

    // Phases 5 and 6: sends the request (once more on a fresh connection when
    // a reused one turns out dead before answering a bodiless request) and
    // awaits the response header. Null when the exchange ended here (the
    // client got an error reply, or left); `up` is then dropped.
    net::Task<net::ResponseParser*> send_and_await(Exchange& ex, const RequestPlan& plan,
                                                   Color color,
                                                   std::unique_ptr<upstream::Connection>& up) {
        auto& parser = *parser_;
        active_upstream_ = up.get();
        const Framing framing = prepare_request_head(parser, plan, ex, *up->upstream);
        for (int attempt = 0;; ++attempt) {
            ex.rec.upstream = up->upstream->name;
            set_upstream(up->upstream->id);
            if (auto err = co_await send_request(ex, parser, framing, *up, plan.expect_continue)) {
                co_await fail(ex, std::move(*err), true);
                co_return nullptr;
            }
            const bool nothing_before = up->buffer.size() == 0;
            auto got = co_await await_response(parser.method() == bh::verb::head, *up);
            end_client_watch();  // a long wait's; `up` may be replaced below
            if (got) {
                co_return *got;
            }
            if (got.error().source == ErrorSource::Client) {
                co_await fail(ex, std::move(got.error()), true);  // nothing to answer
                co_return nullptr;
            }
            // A pooled connection the upstream had already closed: nothing was
            // answered, so a bodiless request is safe to send again.
            const bool dead_on_reuse = nothing_before && up->buffer.size() == 0 &&
                                       !rp_->got_some() && got.error().kind == ErrorKind::Reset &&
                                       up->reused;
            if (dead_on_reuse && !plan.has_body && attempt == 0) {
                up = co_await lease_upstream(color, std::nullopt, /*fresh=*/true);
                active_upstream_ = up.get();
                if (up) {
                    continue;
                }
            }
            // The upstream connection is in an unknown state: it is dropped.
            const bool close = !parser.is_done() || !plan.keep_alive;
            co_await fail(ex, std::move(got.error()), close);
            co_return nullptr;
        }
    }

    // Phases 7 and 8 of a response that is not an upgrade.
    net::Task<bool> relay_and_finish(Exchange& ex, const RequestPlan& plan, net::ResponseParser& rp,
                                     std::unique_ptr<upstream::Connection> up, Color color) {
        auto& parser = *parser_;
        const auto relay_plan = prepare_response_head(
            parser.method() == bh::verb::head, parser.version() == 10, plan.keep_alive, rp, ex);
        if (relay_plan.streaming) {
            enter(State::Streaming, color);
        }
        // A client that asked to close (and sent nothing more) gets the end of the
        // response and the FIN in one segment. Not when the proxy itself closes:
        // a request the client already sent would turn the close into a reset
        // that takes the held bytes with it.
        const bool fin_with_last = !plan.keep_alive && buf_.size() == 0;
        if (!co_await relay_response(ex, rp, *up, relay_plan.body_expected, relay_plan.framing,
                                     fin_with_last)) {
            co_return finish(false);
        }
        // --- 8. done ---------------------------------------------------------
        // Pooled only when provably clean: the response ended where its framing
        // said, and nothing arrived after it.
        const bool until_close = relay_plan.body_expected && rp.need_eof();
        if (rp.keep_alive() && !until_close && rp.is_done() && up->buffer.size() == 0) {
            up->bodiless_last = !relay_plan.body_expected;
            worker_.pool().give_back(std::move(up));
        }
        log_access(ex);
        co_return finish(relay_plan.keep_alive);
    }

    // Phase 5 (a plain function, so that what it needs stays off the coroutine
    // frame): writes the upstream's request head into head(); returns the body's
    // framing.
    Framing prepare_request_head(const net::RequestParser& parser, const RequestPlan& plan,
                                 const Exchange& ex, const routing::Upstream& target) {
        UpstreamRequestHead rh;
        rh.method = parser.method_string();
        rh.target = plan.where.target;
        rh.host = plan.where.host;
        if (rh.host.empty()) {  // HTTP/1.0 without Host
            rh.host = target.authority;
        }
        rh.client_ip = peer_ip_;
        rh.trusted_peer = trusted_peer_;
        rh.tls = tls_ != nullptr;
        rh.request_id = ex.rec.request_id;
        rh.upgrade = plan.upgrade;
        rh.drop_expect = plan.expect_continue;  // answered here, when the body is wanted
        if (parser.chunked()) {
            rh.framing = Framing::Chunked;
        } else if (auto len = parser.content_length()) {
            rh.framing = Framing::Length;
            rh.content_length = *len;
        }
        head().clear();
        head().reserve(kHeadRoom);  // the first head is written without growing
        write_upstream_request_head(head(), parser.fields(), rh);
        return rh.framing;
    }

    struct ResponsePlan {
        Framing framing = Framing::None;
        bool body_expected = false;
        bool streaming = false;  // no length known: forwarded piece by piece
        bool keep_alive = false;
    };

    // Phase 7, its decisions: how the response is framed for the client and
    // whether the connection stays open; writes the client's head into head().
    ResponsePlan prepare_response_head(bool head_request, bool client_v10, bool client_keep_alive,
                                       const net::ResponseParser& rp, Exchange& ex) {
        ResponsePlan plan;
        const unsigned code = rp.status();
        plan.body_expected = !head_request && code != 204 && code != 304 && code >= 200;
        ClientResponseHead h;
        h.version = client_v10 ? 10 : 11;
        h.status = code;
        h.reason = rp.reason();
        h.request_id = ex.rec.request_id;
        if (cfg_->proxy.expose_color_header) {
            h.color = ex.rec.color;
        }
        add_cookie(h, ex);
        if (auto len = rp.content_length();
            len && (plan.body_expected || head_request || code == 304)) {
            h.framing = Framing::Length;
            h.content_length = *len;
        } else if (plan.body_expected) {
            plan.streaming = true;
            h.framing = client_v10 ? Framing::UntilClose : Framing::Chunked;
        }
        h.keep_alive = client_keep_alive && ending_ == Ending::KeepAlive &&
                       !worker_.shared().shutting_down.load(std::memory_order_relaxed) &&
                       h.framing != Framing::UntilClose;
        plan.framing = h.framing;
        plan.keep_alive = h.keep_alive;
        ex.rec.status = code;
        head().clear();
        write_client_response_head(head(), rp.fields(), h);
        return plan;
    }

    // Phase 1. A busy connection waits for its next request with the read
    // buffer ready (the reactor fills it at once); one that stays quiet for
    // kBufferedWait gives the buffer back. A plain one then parks: the session
    // ends and the socket waits for the rest of timeouts.idle as a Parked
    // record, so an idle client costs a few hundred bytes. A TLS one waits
    // here without OpenSSL's buffers.
    enum class Next { Request, Close, Park };
    net::Task<Next> wait_for_next_request() {
        const auto idle_until = net::coarse_now() + cfg_->timeouts.idle;
        if (requests_ == 1 && tls_ == nullptr && parkable()) {
            // A new connection kept open after its first answer (a browser, a
            // client's pool) is mostly idle from here: unless its next request
            // is already here, it parks at once, so a burst of such clients
            // never holds a session each.
            net::error_code ec;
            const auto n = client_.socket().read_some(buf_.prepare(kFirstRead), ec);
            if (ec == net::asio::error::would_block) {
                buf_.shrink_to_fit();
                client_.expires_at(idle_until);
                co_return Next::Park;
            }
            if (ec || n == 0 || !takes_requests()) {
                co_return Next::Close;
            }
            buf_.commit(n);
            co_return Next::Request;
        }
        client_.expires_after(std::min<Duration>(cfg_->timeouts.idle, kBufferedWait));
        auto [ec, n] = co_await net::read_some(client_, buf_.prepare(kFirstRead));
        if (ec == beast::error::timeout && net::coarse_now() < idle_until &&
            ending_ == Ending::KeepAlive) {
            buf_.shrink_to_fit();
            client_.expires_at(idle_until);
            if (parkable()) {
                co_return Next::Park;
            }
            client_.release_tls_buffers();
            if (co_await net::wait_readable(client_) || !takes_requests()) {
                co_return Next::Close;
            }
            std::tie(ec, n) = co_await net::read_some(client_, buf_.prepare(kFirstRead));
        }
        if (ec || n == 0 || !takes_requests()) {
            co_return Next::Close;
        }
        buf_.commit(n);
        co_return Next::Request;
    }

    // A TLS connection parks with its SSL object, unless OpenSSL holds part
    // of a record that the socket's readiness would not announce.
    bool parkable() const {
        return !linger_ && ending_ == Ending::KeepAlive && !client_.tls_pending();
    }

    // Hands the socket to a Parked record until it is readable again (or its
    // idle time is up); this session then ends.
    void park();

    // A request that arrives now is served: the connection is not ending, or
    // a shutdown's grace lets one more in (answered with Connection: close).
    bool takes_requests() const {
        return ending_ == Ending::KeepAlive ||
               (stopped_for_ == drain::StopReason::Shutdown && ending_ == Ending::AfterThis);
    }

    // Back to idle for the drain; passes `keep_alive` through.
    bool finish(bool keep_alive) {
        active_upstream_ = nullptr;
        release_scratch();  // a connection between exchanges holds no header storage
        if (buf_.size() == 0 && buf_.capacity() > kKeptBuffer) {
            buf_.shrink_to_fit();  // nor the room a large header needed
        }
        enter(State::Idle);
        return keep_alive;
    }

    static void note_request(Exchange& ex, const net::RequestParser& req) {
        ex.rec.method = req.method_string();
        ex.rec.target = req.target();
        ex.rec.version = req.version() == 10 ? 10 : 11;
    }

    /// A connection to an upstream of `color`: pooled when possible, otherwise
    /// dialled, with one more upstream tried when the first refuses.
    net::Task<std::unique_ptr<upstream::Connection>> lease_upstream(
        Color color, std::optional<std::size_t> exclude, bool fresh = false) {
        for (int attempt = 0; attempt < 2; ++attempt) {
            const auto& members = worker_.pool().members(color);
            auto i = routing::pick(members, worker_.cursor(color), exclude);
            if (!i) {
                break;
            }
            if (!fresh) {
                if (auto conn = worker_.pool().take(color, *i)) {
                    co_return conn;
                }
            }
            auto [ec, conn] = co_await worker_.pool().connect(client_.get_executor(), color, *i,
                                                              cfg_->timeouts.connect);
            if (!ec) {
                co_return std::move(conn);
            }
            log().warn("connect to {} upstream {} failed: {}", to_string(color),
                       worker_.pool().members(color)[*i]->name, ec.message());
            worker_.shared().metrics.error(color, ErrorSource::Upstream, net::classify(ec));
            exclude = *i;
        }
        co_return nullptr;
    }

    // Phase 5: the head, then the body piece by piece. The error when it failed.
    net::Task<std::optional<ProxyError>> send_request(Exchange& ex, net::RequestParser& parser,
                                                      Framing framing, upstream::Connection& up,
                                                      bool expect_continue) {
        // The head goes first, alone, so that the upstream can start working while
        // the body is still arriving.
        up.stream.expires_after(cfg_->timeouts.upstream_response);
        if (auto ec = co_await net::write_all(up.stream, asio::buffer(head()))) {
            co_return upstream_error(ec, 502, "sending the request to the upstream failed");
        }
        if (parser.is_done()) {
            co_return std::nullopt;
        }
        if (expect_continue) {
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            client_.expires_after(cfg_->timeouts.idle);
            if (auto ec = co_await net::write_all(client_, asio::buffer(kContinue))) {
                co_return ProxyError{ErrorSource::Client, net::classify(ec), 0, ec.message()};
            }
        }
        // Body pieces pass through the worker's scratch buffer: read_body fills it
        // and returns before any suspension, and write_piece copies what the
        // kernel does not take at once, so no other session can see it half-used.
        const auto window = net::thread_scratch();
        char* io = static_cast<char*>(window.data());
        while (!parser.is_done()) {
            parser.set_window(io, window.size());
            client_.expires_after(cfg_->timeouts.idle);
            if (auto ec = co_await net::read_body(client_, buf_, parser)) {
                auto err = client_error(ec);
                if (!err) {
                    log().info("client {} left while sending request {}: {}", peer_,
                               ex.rec.request_id, ec.message());
                    co_return ProxyError{ErrorSource::Client, ErrorKind::Reset, 0, ec.message()};
                }
                if (ec == beast::error::timeout) {
                    err->why = "request body stalled";
                } else if (ec == bh::error::body_limit) {
                    err->why = "request body over limits.max_body_bytes";
                }
                co_return err;
            }
            const std::size_t n = window.size() - parser.window_left();
            if (n == 0 && !parser.is_done()) {
                continue;  // only chunk framing was read
            }
            up.stream.expires_after(cfg_->timeouts.idle);
            if (auto ec = co_await write_piece(up.stream, {}, framing, io, n, parser.is_done())) {
                co_return upstream_error(ec, 502,
                                         "upstream failed while receiving the request body");
            }
        }
        co_return std::nullopt;
    }

    static ProxyError upstream_error(const net::error_code& ec, unsigned status,
                                     std::string_view what) {
        const auto kind = net::classify(ec);
        return {ErrorSource::Upstream, kind, kind == ErrorKind::Timeout ? 504u : status,
                std::string(what) + ": " + ec.message()};
    }

    // Writes one piece of a body in `framing` (as a chunk when chunked; the
    // terminating chunk too when `last`), preceded by `head` when not empty, in
    // one gathered write; `closing` as for net::write_all.
    static net::Task<net::error_code> write_piece(net::Stream& s, std::string_view head,
                                                  Framing framing, const char* data, std::size_t n,
                                                  bool last, bool closing = false) {
        static constexpr std::string_view kCrlf = "\r\n";
        static constexpr std::string_view kLastChunk = "0\r\n\r\n";
        char size_line[24];
        std::size_t size_len = 0;
        const bool chunked = framing == Framing::Chunked;
        if (chunked && n > 0) {
            size_len =
                static_cast<std::size_t>(std::snprintf(size_line, sizeof size_line, "%zx\r\n", n));
        }
        const std::array<asio::const_buffer, 5> bufs{
            asio::buffer(head),
            asio::buffer(size_line, size_len),
            asio::buffer(data, n),
            asio::buffer(chunked && n > 0 ? kCrlf : std::string_view{}),
            asio::buffer(chunked && last ? kLastChunk : std::string_view{}),
        };
        co_return co_await net::write_copying(s, bufs, closing);
    }

    // Phase 6: the final response header (interim ones are skipped and do not
    // extend the deadline). The session's rp_ on success. A wait longer than
    // kWatchClientAfter (a long poll, a slow report) watches the client
    // meanwhile, as a body's relay does: one that leaves ends the exchange
    // and the upstream connection with it, instead of holding both until the
    // answer or timeouts.upstream_response. The quick answer pays nothing.
    net::Task<boost::system::result<net::ResponseParser*, ProxyError>> await_response(
        bool head, upstream::Connection& up) {
        up.stream.expires_after(cfg_->timeouts.upstream_response);
        const auto deadline = up.stream.deadline();
        if (const auto watch_at = net::coarse_now() + kWatchClientAfter; watch_at < deadline) {
            up.stream.expires_at(watch_at);
        }
        for (;;) {
            auto* parser =
                &rp_.emplace(scratch_->response_fields);  // single-use; the storage is not
            parser->header_limit(kUpstreamHeaderLimit);
            parser->framing_limit(kUpstreamHeaderLimit);
            parser->body_limit(boost::none);
            if (head) {
                parser->skip(true);
            }
            auto ec = co_await net::read_header(up.stream, up.buffer, *parser);
            if (ec == beast::error::timeout && up.stream.deadline() < deadline) {
                // Still waiting: the read resumes where it stopped, watched.
                watch_client(up);
                up.stream.expires_at(deadline);
                ec = co_await net::read_header(up.stream, up.buffer, *parser);
            }
            if (ec) {
                if (client_left_) {
                    co_return ProxyError{ErrorSource::Client, net::classify(client_left_), 0,
                                         "client left before the response"};
                }
                if (ec == beast::error::timeout) {
                    co_return ProxyError{ErrorSource::Upstream, ErrorKind::Timeout, 504,
                                         "no response header within timeouts.upstream_response"};
                }
                co_return upstream_error(ec, 502, "invalid or missing response from the upstream");
            }
            const auto code = parser->status();
            // Interim responses (100, 103) are not passed on: the proxy answered
            // Expect itself and early hints are optional.
            if (code >= 100 && code < 200 && code != 101) {
                continue;
            }
            co_return parser;
        }
    }

    /// Sends the response head (at once when no body is buffered yet), then
    /// streams the body piece by piece. False when the exchange broke (the
    /// client connection must close).
    net::Task<bool> relay_response(Exchange& ex, net::ResponseParser& rp, upstream::Connection& up,
                                   bool body_expected, Framing framing, bool fin_with_last) {
        client_.expires_after(cfg_->timeouts.idle);
        if (!body_expected) {
            co_return !co_await net::write_all(client_, asio::buffer(head()), fin_with_last);
        }
        bool head_sent = false;
        // With nothing of the body buffered yet (SSE, slow generators), the head
        // goes alone so the client sees the response start immediately.
        if (up.buffer.size() == 0 && !rp.is_done()) {
            ensure_no_delay();
            if (co_await net::write_all(client_, asio::buffer(head()))) {
                co_return false;
            }
            head_sent = true;
        }
        const auto window = net::thread_scratch();  // see send_request
        char* io = static_cast<char*>(window.data());
        const ClientWatchScope watching(*this);
        bool first_read = true;
        do {
            if (ending_ == Ending::EndStream) {
                co_return co_await end_stream(ex, framing, head_sent);
            }
            std::size_t n = 0;
            if (!rp.is_done()) {
                rp.set_window(io, window.size());
                up.stream.expires_after(cfg_->timeouts.idle);
                if (!first_read || up.buffer.size() == 0) {
                    // More than what came with the head: the next bytes may
                    // be a wait. (A small body read whole with its head, the
                    // usual keep-alive answer, is never watched.)
                    watch_client(up);
                }
                first_read = false;
                if (auto ec = co_await net::read_body(up.stream, up.buffer, rp)) {
                    if (client_left_) {
                        cut_short(ex, ErrorSource::Client, client_left_);
                        co_return false;
                    }
                    if (ending_ == Ending::EndStream) {
                        co_return co_await end_stream(ex, framing, head_sent);
                    }
                    cut_short(ex, ErrorSource::Upstream, ec);
                    co_return false;
                }
                n = window.size() - rp.window_left();
                if (n == 0 && !rp.is_done()) {
                    continue;  // only chunk framing was read
                }
            }
            client_.expires_after(cfg_->timeouts.idle);
            const std::string_view head =
                head_sent ? std::string_view{} : std::string_view(this->head());
            if (head_sent || !rp.is_done()) {
                ensure_no_delay();  // this response takes more than one write
            }
            const bool last = rp.is_done();
            if (auto ec = co_await write_piece(client_, head, framing, io, n, last,
                                               last && fin_with_last)) {
                cut_short(ex, ErrorSource::Client, client_left_ ? client_left_ : ec);
                co_return false;
            }
            head_sent = true;
            ex.rec.bytes_sent += n;
        } while (!rp.is_done());
        co_return true;
    }

    // While a body is relayed, the client's side is watched: a client that
    // closes or resets (an SSE subscriber gone, a download abandoned) ends the
    // exchange at once, as nginx does, rather than holding the upstream
    // connection until the next bytes fail to go out (for a quiet stream, until
    // the idle timeout). Bytes from the client (a pipelined request) end the
    // watch: they wait for their turn. TLS clients are not watched: what
    // arrives there is records, and a peek cannot tell a close from data.
    struct ClientWatch {
        Session* session;  // null once the relay is over
        upstream::Connection* up;
    };

    void watch_client(upstream::Connection& up) {
        if (client_watch_ || client_.tls() != nullptr) {
            return;
        }
        client_watch_ = std::make_shared<ClientWatch>(ClientWatch{this, &up});
        arm_client_watch(client_watch_);
    }

    static void arm_client_watch(std::shared_ptr<ClientWatch> w) {
        auto& socket = w->session->client_.socket();
        socket.async_wait(net::tcp::socket::wait_read, [w](net::error_code ec) {
            Session* self = w->session;
            if (self == nullptr || ec) {
                return;  // the relay is over, or it was cancelled
            }
            char byte = 0;
            net::error_code peek;
            const auto n = self->client_.socket().receive(asio::buffer(&byte, 1),
                                                          net::tcp::socket::message_peek, peek);
            if (n > 0) {
                return;  // a pipelined request
            }
            if (peek == asio::error::would_block || peek == asio::error::try_again ||
                peek == asio::error::interrupted) {
                arm_client_watch(w);
                return;
            }
            self->client_left_ = peek ? peek : net::error_code(asio::error::eof);
            net::error_code ignored;
            w->up->stream.socket().cancel(ignored);
            self->client_.socket().cancel(ignored);
        });
    }

    void end_client_watch() {
        if (client_watch_) {
            client_watch_->session = nullptr;
            client_watch_.reset();
            net::error_code ignored;
            client_.socket().cancel(ignored);  // nothing else waits on it between exchanges
        }
    }

    struct ClientWatchScope {
        explicit ClientWatchScope(Session& session) : s(session) {}
        ClientWatchScope(const ClientWatchScope&) = delete;
        ClientWatchScope& operator=(const ClientWatchScope&) = delete;
        ~ClientWatchScope() { s.end_client_watch(); }
        Session& s;
    };

    // A response that broke after its status line went out: the client has a
    // truncated one, recorded as such (an upstream failure is not a 502 here,
    // since the client never saw one).
    void cut_short(Exchange& ex, ErrorSource source, const net::error_code& ec) {
        record(ex, {source, net::classify(ec), 0, ec.message()});
        if (source == ErrorSource::Upstream) {
            log().warn(
                "upstream {} failed mid-response to {} (request {}): {}; the client saw a "
                "truncated {}",
                ex.rec.upstream, peer_, ex.rec.request_id, ec.message(), ex.rec.status);
        } else {
            log().info("client {} left during the response (request {}): {}", peer_,
                       ex.rec.request_id, ec.message());
        }
        log_access(ex);
    }

    // The drain window or the shutdown is over: the response ends here,
    // cleanly (a terminating chunk when chunked), and the client connection
    // closes so it reconnects to the active color.
    net::Task<bool> end_stream(Exchange& ex, Framing framing, bool head_sent) {
        if (framing == Framing::Chunked) {
            client_.expires_after(std::chrono::seconds(2));
            const std::string_view head =
                head_sent ? std::string_view{} : std::string_view(this->head());
            co_await write_piece(client_, head, framing, nullptr, 0, /*last=*/true);
        }
        log().info("stream to {} ended by the drain of {} or a shutdown (request {})", peer_,
                   ex.rec.color, ex.rec.request_id);
        log_access(ex);
        linger_ = true;
        co_return false;
    }

    // After the upstream's 101: the client gets its 101, and the Tunnel runs
    // the connection from here on.
    net::Task<void> upgrade(Exchange& ex, const RequestPlan& plan, net::ResponseParser& res,
                            std::unique_ptr<upstream::Connection>& up, Color color) {
        if (!plan.upgrade) {
            ProxyError err{ErrorSource::Upstream, ErrorKind::Protocol, 502,
                           "upstream sent 101 to a request without Upgrade"};
            co_await fail(ex, std::move(err), true);
            co_return;
        }
        const auto proto = parser_->fields().find(bh::field::upgrade);
        const bool websocket = proto && iequals(proto->value(), "websocket");
        ClientResponseHead h;
        h.status = 101;
        h.reason = res.reason();
        h.request_id = ex.rec.request_id;
        if (cfg_->proxy.expose_color_header) {
            h.color = ex.rec.color;
        }
        add_cookie(h, ex);
        h.upgrade = true;
        head().clear();
        write_client_response_head(head(), res.fields(), h);
        client_.expires_after(cfg_->timeouts.idle);
        if (co_await net::write_all(client_, asio::buffer(head()))) {
            co_return;
        }
        ex.rec.status = 101;
        log_access(ex);
        release_scratch();  // nothing of the exchange is needed for the tunnel's life
        ensure_no_delay();
        if (tls_ == nullptr && up->stream.tls() == nullptr) {
            // Plain both ways: the tunnel lives on without this session and
            // parks whenever it is quiet.
            hand_over_tunnel(websocket, std::move(up), color);
            co_return;
        }
        Tunnel tunnel(websocket, worker_.shared().metrics);
        tunnel_ = &tunnel;
        enter(State::Tunnel, color);
        if (stopped_for_) {
            tunnel.stop(*stopped_for_);  // stopped during the handshake
        }
        co_await tunnel.run(client_, buf_, up->stream, up->buffer, cfg_->timeouts.idle, false);
        tunnel_ = nullptr;
    }

    void hand_over_tunnel(bool websocket, std::unique_ptr<upstream::Connection> up, Color color);

    // Records `err` for the exchange: its metric, and the access log's field.
    void record(Exchange& ex, const ProxyError& err) {
        ex.rec.error = err.name();
        worker_.shared().metrics.error(ex.routed, err.source, err.kind);
    }

    // An exchange that failed: recorded, logged, and answered by the proxy
    // itself when `err` has a status (a short plain-text body). `close`: the
    // connection ends after it.
    net::Task<void> fail(Exchange& ex, ProxyError err, bool close) {
        record(ex, err);
        if (err.status == 0) {
            if (ex.rec.status == 0) {
                ex.rec.status = 499;  // nginx's word for a client that left before the answer
            }
            log_access(ex);
            ending_ = Ending::AfterThis;
            co_return;
        }
        if (ex.rec.request_id.empty()) {
            make_request_id(ex.rec.request_id);
        }
        log().warn("{} for {} \"{} {}\" (request {}): {} ({})", err.status, peer_,
                   ex.rec.method.empty() ? "-" : ex.rec.method, ex.rec.target, ex.rec.request_id,
                   err.why, ex.rec.error);
        co_await reply(ex, err.status, close);
    }

    /// The proxy's own answer: a short plain-text body.
    net::Task<void> reply(Exchange& ex, unsigned status, bool close) {
        const std::string body = reply_text(status) + "\n";
        std::string text =
            "HTTP/1.1 " + reply_text(status) +
            "\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\nX-Request-Id: " + ex.rec.request_id + (close ? "\r\nConnection: close" : "") +
            "\r\n\r\n" + body;
        ex.rec.status = status;
        ex.rec.bytes_sent = body.size();
        client_.expires_after(std::chrono::seconds(5));
        co_await net::write_all(client_, asio::buffer(text));
        log_access(ex);
        if (close) {
            linger_ = true;
            ending_ = Ending::AfterThis;
        }
    }

    // After an error reply the client may still be sending (a rejected body, the
    // rest of a smuggled request). Closing with unread bytes would make the kernel
    // send a reset that can destroy the reply in flight, so half-close first and
    // drain briefly.
    net::Task<void> linger_close() {
        client_.shutdown_send();
        std::size_t drained = 0;
        client_.expires_after(std::chrono::seconds(2));
        while (drained < 1024 * 1024) {
            auto [rec, n] = co_await net::read_ready(client_, net::thread_scratch());
            if (rec) {
                break;
            }
            drained += n;
        }
    }

    // Ends an exchange's bookkeeping: the duration histogram and request count of
    // its color (when it was routed), and the access-log line.
    void log_access(Exchange& ex) {
        const auto took = Clock::now() - ex.start;
        ex.rec.duration_s = std::chrono::duration<double>(took).count();
        if (ex.routed) {
            // A stream lasts as long as its events do: counted, not timed.
            worker_.shared().metrics.observe(*ex.routed, ex.rec.status, ex.rec.duration_s,
                                             state_ != State::Streaming);
        }
        if (auto& logger = worker_.access_log()) {
            // The wall clock is read only for the log line.
            ex.rec.time = std::chrono::system_clock::now() -
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(took);
            logger->info(metrics::format_access(ex.rec, cfg_->log.format));
        }
    }

    worker::Worker& worker_;
    // The settings this session's current exchange runs with: the worker's
    // snapshot as it was when the exchange began (a reload swaps the
    // worker's, never this one mid-exchange).
    std::shared_ptr<const config::Config> cfg_;
    net::Stream client_;
    beast::flat_buffer buf_;
    routing::Audience audience_;
    std::string peer_ip_;
    std::string peer_;
    bool trusted_peer_ = false;
    net::asio::ip::address client_address_;
    std::uint16_t peer_port_ = 0;
    std::unique_ptr<Scratch> scratch_;          // while busy: the exchange's storage
    std::optional<net::RequestParser> parser_;  // the current request
    std::optional<net::ResponseParser> rp_;     // the current upstream response
    State state_ = State::Reading;
    Ending ending_ = Ending::KeepAlive;
    std::optional<drain::StopReason> stopped_for_;  // set once drain or shutdown asked
    worker::TlsContext tls_;                        // a TLS listener's; null: plain TCP
    bool linger_ = false;  // half-close and drain the client before closing
    bool no_delay_ = false;
    std::uint64_t requests_ = 0;
    upstream::Connection* active_upstream_ = nullptr;  // the exchange's, for the drain to cancel
    Tunnel* tunnel_ = nullptr;                         // while the connection is a tunnel
    std::shared_ptr<ClientWatch> client_watch_;        // while a body is relayed
    net::error_code client_left_;                      // how the client left mid-response
};

// An idle keep-alive connection without its session (see wait_for_next_request):
// the socket with its deadline, and what the next session needs to know. It is
// in the worker's registry like a session, so a shutdown finds it. It owns
// itself: the readiness callback, which runs exactly once, ends it.
class Parked final : public drain::TrackedSession {
  public:
    static void start(worker::Worker& worker, net::tcp::socket socket, ssl_st* ssl,
                      worker::TlsContext tls, net::SteadyTime idle_until, net::tcp::endpoint peer,
                      routing::Audience audience, std::uint64_t requests, bool no_delay) {
        auto* p = new Parked(worker, std::move(socket), std::move(tls), peer, audience, requests,
                             no_delay);
        if (ssl != nullptr) {
            p->stream_.use_tls(ssl);
        }
        p->stream_.expires_at(idle_until);
        net::when_readable(p->stream_, &Parked::ready, p);
    }

    ~Parked() override {
        worker_.shared().open_connections.fetch_sub(1, std::memory_order_relaxed);
        worker_.shared().parked_connections.fetch_sub(1, std::memory_order_relaxed);
    }

    void abandon() override { delete this; }

  private:
    Parked(worker::Worker& worker, net::tcp::socket socket, worker::TlsContext tls,
           net::tcp::endpoint peer, routing::Audience audience, std::uint64_t requests,
           bool no_delay)
        : drain::TrackedSession(worker.registry()),
          worker_(worker),
          stream_(std::move(socket)),
          tls_(std::move(tls)),
          peer_(peer),
          requests_(requests),
          audience_(audience),
          no_delay_(no_delay) {
        worker_.shared().open_connections.fetch_add(1, std::memory_order_relaxed);
        worker_.shared().parked_connections.fetch_add(1, std::memory_order_relaxed);
    }

    // A shutdown gives it kShutdownGrace for a request on its way (as an
    // idle session gets); nothing else stops an idle connection.
    void on_stop(drain::StopReason why) override {
        if (why == drain::StopReason::Shutdown) {
            stream_.expires_after(kShutdownGrace);
        } else if (why == drain::StopReason::ShutdownDeadline) {
            stream_.expires_at(net::coarse_now());
        }
    }

    static void ready(void* context, net::error_code ec) {
        std::unique_ptr<Parked> self(static_cast<Parked*>(context));
        if (ec) {
            if (self->stream_.tls() != nullptr) {
                self->stream_.shutdown_send();  // close_notify
            }
            net::error_code ignored;
            self->stream_.socket().close(ignored);
            return;  // its idle time is up, or the worker stopped
        }
        auto& worker = self->worker_;
        auto session = std::make_unique<Session>(worker, std::move(self->stream_.socket()),
                                                 self->peer_, self->audience_, self->tls_);
        session->resume(self->requests_, self->no_delay_, self->stream_.release_tls());
        self.reset();  // counted once: the session took the connection over
        auto ex = session->executor();
        asio::co_spawn(ex, run_resumed(std::move(session)), [](std::exception_ptr e) {
            if (e) {
                log().error("a resumed client session ended by an exception");
            }
        });
    }

    static net::Task<void> run_resumed(std::unique_ptr<Session> session) {
        co_await session->run();
    }

    worker::Worker& worker_;
    net::Stream stream_;
    worker::TlsContext tls_;  // a TLS listener's (the SSL object is in stream_); null: plain
    net::tcp::endpoint peer_;
    std::uint64_t requests_;
    routing::Audience audience_;
    bool no_delay_;
};

// A plain tunnel after its 101, without the session that upgraded it: the
// two connections, the Tunnel's state, and its place in the registry (an
// Upgraded connection of its color, which drains find). While bytes move a
// coroutine runs the Tunnel; once both sides are quiet it parks: a readiness
// handler per open side, nothing else. It owns itself and goes when it is
// closed, its run is over and no handler is outstanding.
class TunnelHost final : public drain::TrackedSession {
  public:
    static void start(worker::Worker& worker, net::tcp::socket client,
                      beast::flat_buffer client_pending, std::unique_ptr<upstream::Connection> up,
                      bool websocket, Color color, std::optional<drain::StopReason> stopped,
                      Duration idle) {
        auto* host = new TunnelHost(worker, std::move(client), std::move(client_pending),
                                    std::move(up), websocket, idle);
        host->set(Activity::Upgraded, color);
        host->set_upstream(host->up_->upstream->id);
        if (stopped) {
            host->tunnel_.stop(*stopped);  // stopped during the handshake
        }
        if (stopped || host->client_pending_.size() > 0 || host->up_->buffer.size() > 0) {
            host->resume();
            return;
        }
        // Nothing to relay yet (the usual case right after a 101): it parks
        // at once, holding no buffer.
        host->client_pending_.shrink_to_fit();
        host->up_->buffer.shrink_to_fit();
        host->park();
    }

    ~TunnelHost() override {
        parked(false);
        worker_.shared().open_connections.fetch_sub(1, std::memory_order_relaxed);
    }

    // A parked one is freed here; a running one with its coroutine frame.
    void abandon() override {
        if (running_) {
            abandoned_ = true;
        } else {
            delete this;
        }
    }

  private:
    TunnelHost(worker::Worker& worker, net::tcp::socket client, beast::flat_buffer client_pending,
               std::unique_ptr<upstream::Connection> up, bool websocket, Duration idle)
        : drain::TrackedSession(worker.registry()),
          worker_(worker),
          client_(std::move(client)),
          client_pending_(std::move(client_pending)),
          up_(std::move(up)),
          tunnel_(websocket, worker.shared().metrics),
          idle_(idle) {
        worker_.shared().open_connections.fetch_add(1, std::memory_order_relaxed);
    }

    void on_stop(drain::StopReason why) override {
        tunnel_.stop(why);  // wakes a running tunnel
        if (waits_ > 0) {
            wake_all();  // a parked one resumes and ends
        }
    }

    void resume() {
        running_ = true;
        asio::co_spawn(client_.get_executor(), serve(this), [](std::exception_ptr e) {
            if (e) {
                log().error("a tunnel ended by an exception");
            }
        });
    }

    static net::Task<void> serve(TunnelHost* self) {
        // A frame destroyed unfinished (the worker's loop gave up on it)
        // takes the host with it.
        struct Unfinished {
            TunnelHost* host;
            bool finished = false;
            ~Unfinished() {
                if (!finished && host->abandoned_) {
                    delete host;
                }
            }
        } unfinished{self};
        const auto end =
            co_await self->tunnel_.run(self->client_, self->client_pending_, self->up_->stream,
                                       self->up_->buffer, self->idle_, /*may_park=*/true);
        unfinished.finished = true;
        self->running_ = false;
        if (end == TunnelEnd::Quiet) {
            self->park();
        } else {
            self->closed_ = true;
        }
        self->release_if_done();
    }

    // Each side that may still send is watched until the tunnel's idle time
    // is up.
    void park() {
        parked(true);
        const auto until = tunnel_.last_activity() + idle_;
        if (tunnel_.open(0)) {
            client_.expires_at(until);
            ++waits_;
            net::when_readable(client_, &TunnelHost::ready, this);
        }
        if (tunnel_.open(1)) {
            up_->stream.expires_at(until);
            ++waits_;
            net::when_readable(up_->stream, &TunnelHost::ready, this);
        }
    }

    static void ready(void* context, net::error_code ec) {
        auto* self = static_cast<TunnelHost*>(context);
        --self->waits_;
        if (!self->running_ && !self->closed_) {
            self->parked(false);
            if (ec == beast::error::timeout && !self->tunnel_.stopping()) {
                self->closed_ = true;  // nothing moved for timeouts.idle
                self->wake_all();
                self->client_.shutdown_both();
                self->up_->stream.shutdown_both();
            } else {
                // Bytes (or a stop): a run takes over; the other wait ends.
                self->wake_all();
                self->resume();
            }
        }
        self->release_if_done();
    }

    void parked(bool now) {
        if (now != parked_) {
            parked_ = now;
            worker_.shared().parked_tunnels.fetch_add(now ? 1 : std::uint64_t(-1),
                                                      std::memory_order_relaxed);
        }
    }

    void wake_all() {
        net::error_code ignored;
        client_.socket().cancel(ignored);
        up_->stream.socket().cancel(ignored);
    }

    void release_if_done() {
        if (closed_ && !running_ && waits_ == 0) {
            delete this;
        }
    }

    worker::Worker& worker_;
    net::Stream client_;
    beast::flat_buffer client_pending_;
    std::unique_ptr<upstream::Connection> up_;
    Tunnel tunnel_;
    Duration idle_;
    int waits_ = 0;  // readiness handlers outstanding
    bool parked_ = false;
    bool running_ = false;
    bool abandoned_ = false;
    bool closed_ = false;
};

void Session::hand_over_tunnel(bool websocket, std::unique_ptr<upstream::Connection> up,
                               Color color) {
    TunnelHost::start(worker_, std::move(client_.socket()), std::move(buf_), std::move(up),
                      websocket, color, stopped_for_, cfg_->timeouts.idle);
}

void Session::park() {
    const net::tcp::endpoint peer(client_address_, peer_port_);
    const auto idle_until = client_.deadline();
    release_scratch();
    client_.release_tls_buffers();
    ssl_st* ssl = client_.release_tls();
    Parked::start(worker_, std::move(client_.socket()), ssl, tls_, idle_until, peer, audience_,
                  requests_, no_delay_);
}

}  // namespace

net::Task<void> serve_connection(worker::Worker& worker, net::tcp::socket socket,
                                 net::tcp::endpoint peer, routing::Audience audience,
                                 std::shared_ptr<const net::tls::ServerContext> tls) {
    // On the heap rather than in this frame: a frame over 1 KiB never fits
    // Asio's per-thread frame cache, and while cached it would push out frames
    // that do.
    auto session =
        std::make_unique<Session>(worker, std::move(socket), peer, audience, std::move(tls));
    co_await session->run();
}

}  // namespace bgs::http
