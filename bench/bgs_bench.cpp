// bgs-bench: the upstream and the load generators behind bench/run.sh, for the
// measurements wrk cannot make (event delay, idle connections, per-interval
// throughput around color switches, startup time).
//
//   serve   --port P                          upstream: "hello" (keep-alive),
//                                             /sse (timestamped events), WebSocket upgrades
//   sse     --port P --clients N --seconds S  subscribe to /sse, report event delays
//   hold    --port P --keepalive K --websockets W --seconds S
//                                             open idle connections and keep them
//   load    --port P --connections C --seconds S [--admin A --token T --switches N
//           --spacing D]                      keep-alive load in 100 ms buckets, optional
//                                             color switches through the admin API
//   startup --port P -- command...            time from spawn to the first 200
//
// Every mode prints one line of key=value results on stdout.
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <spawn.h>
#include <sys/wait.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

tcp::endpoint loopback(unsigned short port) {
    return {asio::ip::address_v4::loopback(), port};
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) {
        return 0;
    }
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// The value of header `name` (lower case) in a raw head, or "".
std::string header_value(const std::string& head, const std::string& name) {
    const auto l = lower(head);
    const auto at = l.find("\r\n" + name + ":");
    if (at == std::string::npos) {
        return {};
    }
    auto start = at + 3 + name.size();
    const auto end = head.find("\r\n", start);
    while (start < end && head[start] == ' ') {
        ++start;
    }
    return head.substr(start, end - start);
}

std::string websocket_accept(const std::string& key) {
    const std::string in = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
    unsigned char out[64];
    const int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
    return {reinterpret_cast<char*>(out), static_cast<std::size_t>(n)};
}

// ---------------------------------------------------------------- serve ----

constexpr std::string_view kHello =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\n"
    "hello from upstream\n";

asio::awaitable<void> serve_sse(tcp::socket& s, std::chrono::milliseconds interval) {
    constexpr std::string_view head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(head), kNoThrow); ec) {
        co_return;
    }
    asio::steady_timer timer(s.get_executor());
    for (bool first = true;; first = false) {
        if (!first) {  // the first event goes out with the head (bgs-bench ttfb --sse)
            timer.expires_after(interval);
            co_await timer.async_wait(kNoThrow);
        }
        char event[64];
        const int len =
            std::snprintf(event, sizeof event, "data: %lld\n\n", static_cast<long long>(now_ns()));
        char chunk[96];
        const int clen = std::snprintf(chunk, sizeof chunk, "%x\r\n%s\r\n", len, event);
        auto [ec, n] = co_await asio::async_write(
            s, asio::buffer(chunk, static_cast<std::size_t>(clen)), kNoThrow);
        if (ec) {
            co_return;
        }
    }
}

asio::awaitable<void> serve_connection(tcp::socket s, std::chrono::milliseconds interval) {
    s.set_option(tcp::no_delay(true));
    std::string buf;
    for (;;) {
        auto [ec, n] =
            co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
        if (ec) {
            co_return;
        }
        const std::string head = buf.substr(0, n);
        buf.erase(0, n);
        const auto target_start = head.find(' ') + 1;
        const auto target = head.substr(target_start, head.find(' ', target_start) - target_start);
        if (lower(header_value(head, "upgrade")) == "websocket") {
            const std::string reply =
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: " +
                websocket_accept(header_value(head, "sec-websocket-key")) + "\r\n\r\n";
            if (auto [wec, wn] = co_await asio::async_write(s, asio::buffer(reply), kNoThrow);
                wec) {
                co_return;
            }
            char sink[512];  // held open; whatever arrives is discarded
            for (;;) {
                auto [rec, rn] = co_await s.async_read_some(asio::buffer(sink), kNoThrow);
                if (rec) {
                    co_return;
                }
            }
        }
        if (target == "/sse") {
            co_await serve_sse(s, interval);
            co_return;
        }
        if (auto [wec, wn] = co_await asio::async_write(s, asio::buffer(kHello), kNoThrow); wec) {
            co_return;
        }
    }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::chrono::milliseconds interval) {
    for (;;) {
        auto [ec, s] = co_await acceptor.async_accept(kNoThrow);
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                co_return;
            }
            continue;
        }
        asio::co_spawn(acceptor.get_executor(), serve_connection(std::move(s), interval),
                       asio::detached);
    }
}

int run_serve(unsigned short port, int interval_ms, int threads) {
    std::vector<std::unique_ptr<asio::io_context>> ctxs;
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
    for (int i = 0; i < threads; ++i) {
        ctxs.push_back(std::make_unique<asio::io_context>(1));
        auto a = std::make_unique<tcp::acceptor>(*ctxs.back());
        a->open(tcp::v4());
        a->set_option(tcp::acceptor::reuse_address(true));
        const int one = 1;
        ::setsockopt(a->native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        a->bind(loopback(port));
        a->listen(4096);
        asio::co_spawn(*ctxs.back(), accept_loop(*a, std::chrono::milliseconds(interval_ms)),
                       asio::detached);
        acceptors.push_back(std::move(a));
    }
    std::vector<std::thread> pool;
    for (auto& c : ctxs) {
        pool.emplace_back([&c] { c->run(); });
    }
    std::printf("serving port=%u\n", port);
    std::fflush(stdout);
    for (auto& t : pool) {
        t.join();
    }
    return 0;
}

// ------------------------------------------------------------ responses ----

// Reads one response with Content-Length; returns the status (0 on failure).
asio::awaitable<unsigned> read_response(tcp::socket& s, std::string& buf) {
    auto [ec, n] =
        co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
    if (ec || buf.size() < 12) {
        co_return 0;
    }
    const std::string head = buf.substr(0, n);
    buf.erase(0, n);
    const unsigned status = static_cast<unsigned>(std::atoi(head.c_str() + 9));
    const auto len_text = header_value(head, "content-length");
    if (len_text.empty()) {
        co_return status == 101 ? status : 0u;
    }
    const auto len = static_cast<std::size_t>(std::stoull(len_text));
    if (buf.size() < len) {
        auto [bec, bn] = co_await asio::async_read(
            s, asio::dynamic_buffer(buf), asio::transfer_exactly(len - buf.size()), kNoThrow);
        if (bec) {
            co_return 0;
        }
    }
    buf.erase(0, len);
    co_return status;
}

// ------------------------------------------------------------------ sse ----

struct SseState {
    std::mutex mu;
    std::vector<double> delays_us;
    std::atomic<int> connected{0};
    std::atomic<int> failed{0};
};

asio::awaitable<void> sse_client(unsigned short port, Clock::time_point until, SseState& st) {
    tcp::socket s(co_await asio::this_coro::executor);
    if (auto [ec] = co_await s.async_connect(loopback(port), kNoThrow); ec) {
        ++st.failed;
        co_return;
    }
    s.set_option(tcp::no_delay(true));
    constexpr std::string_view req =
        "GET /sse HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n";
    co_await asio::async_write(s, asio::buffer(req), kNoThrow);
    std::string buf;
    auto [ec, n] =
        co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
    if (ec) {
        ++st.failed;
        co_return;
    }
    buf.erase(0, n);
    ++st.connected;
    std::vector<double> local;
    const auto counted_from = now_ns() + 1'000'000'000;  // the first second warms up
    // The body is chunked; event lines never contain CRLF, so the chunk framing
    // lines are simply skipped and "data: N" lines read.
    char tmp[4096];
    std::string line;
    bool have_unparsed = !buf.empty();  // bytes that came with the response head
    while (Clock::now() < until) {
        if (!have_unparsed) {
            auto [rec, rn] = co_await s.async_read_some(asio::buffer(tmp), kNoThrow);
            if (rec) {
                break;
            }
            buf.append(tmp, rn);
        }
        have_unparsed = false;
        const auto arrived = now_ns();
        std::size_t pos;
        while ((pos = buf.find('\n')) != std::string::npos) {
            line = buf.substr(0, pos);
            buf.erase(0, pos + 1);
            if (line.rfind("data: ", 0) == 0 && arrived >= counted_from) {
                const auto sent = std::stoll(line.substr(6));
                local.push_back(static_cast<double>(arrived - sent) / 1000.0);
            }
        }
    }
    std::lock_guard lock(st.mu);
    st.delays_us.insert(st.delays_us.end(), local.begin(), local.end());
}

int run_sse(unsigned short port, int clients, double seconds) {
    asio::io_context ctx(1);
    SseState st;
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(seconds));
    for (int i = 0; i < clients; ++i) {
        asio::co_spawn(ctx, sse_client(port, until, st), asio::detached);
    }
    // The run ends when every stream has seen its deadline pass at an event.
    std::thread watchdog([&] {
        std::this_thread::sleep_until(until + std::chrono::seconds(2));
        ctx.stop();
    });
    ctx.run();
    watchdog.join();
    auto& d = st.delays_us;
    std::printf("events=%zu clients=%d failed=%d p50_us=%.0f p99_us=%.0f max_us=%.0f\n", d.size(),
                st.connected.load(), st.failed.load(), percentile(d, 0.50), percentile(d, 0.99),
                d.empty() ? 0.0 : *std::max_element(d.begin(), d.end()));
    return st.failed.load() == 0 ? 0 : 1;
}

// ----------------------------------------------------------------- ttfb ----
// A new connection's time to the first byte of its answer: one client at a
// time, so that nothing but the path itself is measured. Each sample is
// connect + request + the first byte of the response (or, with --sse, the
// first event of a stream, which the upstream sends with the head).

int run_ttfb(unsigned short port, int samples, bool sse) {
    asio::io_context ctx;
    const std::string req = sse ? "GET /sse HTTP/1.1\r\nHost: bench\r\n\r\n"
                                : "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(samples));
    int failed = 0;
    char buf[4096];
    for (int i = 0; i < samples + samples / 10; ++i) {  // the first tenth warms up
        const auto t0 = Clock::now();
        tcp::socket s(ctx);
        error_code ec;
        s.connect(loopback(port), ec);
        if (!ec) {
            s.set_option(tcp::no_delay(true));
            asio::write(s, asio::buffer(req), ec);
        }
        std::string got;
        while (!ec) {
            const auto n = s.read_some(asio::buffer(buf), ec);
            got.append(buf, n);
            if (!sse ? !got.empty() : got.find("data: ") != std::string::npos) {
                break;
            }
        }
        const auto t1 = Clock::now();
        while (!ec && got.size() < 12) {  // the status line, untimed, to check it
            const auto n = s.read_some(asio::buffer(buf), ec);
            got.append(buf, n);
        }
        if (ec || got.rfind("HTTP/1.1 200", 0) != 0) {
            ++failed;
        } else if (i >= samples / 10) {
            us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        }
        s.close(ec);
    }
    std::printf("samples=%zu failed=%d p50_us=%.0f p90_us=%.0f p99_us=%.0f\n", us.size(), failed,
                percentile(us, 0.50), percentile(us, 0.90), percentile(us, 0.99));
    return failed == 0 ? 0 : 1;
}

// ----------------------------------------------------------------- hold ----

struct HoldState {
    std::atomic<int> keepalive{0};
    std::atomic<int> websockets{0};
    std::atomic<int> failed{0};
};

asio::awaitable<void> hold_one(unsigned short port, bool websocket, HoldState& st,
                               std::vector<tcp::socket>& keep, std::mutex& mu) {
    tcp::socket s(co_await asio::this_coro::executor);
    if (auto [ec] = co_await s.async_connect(loopback(port), kNoThrow); ec) {
        ++st.failed;
        co_return;
    }
    const std::string req =
        websocket
            ? "GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            : "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(req), kNoThrow); ec) {
        ++st.failed;
        co_return;
    }
    std::string buf;
    const unsigned status = co_await read_response(s, buf);
    if (status != (websocket ? 101u : 200u)) {
        ++st.failed;
        co_return;
    }
    ++(websocket ? st.websockets : st.keepalive);
    std::lock_guard lock(mu);
    keep.push_back(std::move(s));
}

asio::awaitable<void> hold_batch(unsigned short port, int count, bool websocket, HoldState& st,
                                 std::vector<tcp::socket>& keep, std::mutex& mu) {
    for (int i = 0; i < count; ++i) {
        co_await hold_one(port, websocket, st, keep, mu);
    }
}

int run_hold(unsigned short port, int keepalive, int websockets, double seconds) {
    asio::io_context ctx(1);
    HoldState st;
    std::vector<tcp::socket> keep;
    std::mutex mu;
    // 64 openers at a time keep the listen backlog from overflowing.
    constexpr int kOpeners = 64;
    for (int i = 0; i < kOpeners; ++i) {
        const int k = keepalive / kOpeners + (i < keepalive % kOpeners ? 1 : 0);
        const int w = websockets / kOpeners + (i < websockets % kOpeners ? 1 : 0);
        asio::co_spawn(ctx, hold_batch(port, k, false, st, keep, mu), asio::detached);
        asio::co_spawn(ctx, hold_batch(port, w, true, st, keep, mu), asio::detached);
    }
    ctx.run();
    std::printf("ready keepalive=%d websockets=%d failed=%d\n", st.keepalive.load(),
                st.websockets.load(), st.failed.load());
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    // Still open? A socket the proxy closed meanwhile reads EOF at once.
    int still_open = 0;
    for (auto& s : keep) {
        char c;
        const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ++still_open;
        }
    }
    std::printf("held still_open=%d of=%zu\n", still_open, keep.size());
    return 0;
}

// ------------------------------------------------------------- hold-tls ----

// Idle TLS keep-alive connections: each shakes hands, makes one request and
// then stays open and quiet. Sequential and blocking: only the held count
// and the server's memory matter.
int run_hold_tls(unsigned short port, int connections, double seconds) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    std::vector<std::pair<int, SSL*>> keep;
    int failed = 0;
    const std::string req = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    for (int i = 0; i < connections; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        timeval tv{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        SSL* ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        char buf[4096];
        std::size_t n = 0;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            SSL_connect(ssl) != 1 || SSL_write_ex(ssl, req.data(), req.size(), &n) != 1 ||
            SSL_read_ex(ssl, buf, sizeof buf, &n) != 1 ||
            std::string_view(buf, n).find(" 200 ") == std::string_view::npos) {
            ++failed;
            SSL_free(ssl);
            ::close(fd);
            continue;
        }
        keep.emplace_back(fd, ssl);
    }
    std::printf("ready tls=%zu failed=%d\n", keep.size(), failed);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    for (auto& [fd, ssl] : keep) {
        SSL_free(ssl);
        ::close(fd);
    }
    SSL_CTX_free(ctx);
    return 0;
}

// ----------------------------------------------------------------- load ----

struct LoadState {
    Clock::time_point start;
    Clock::time_point until;
    std::vector<std::atomic<std::uint64_t>> buckets;  // completed requests per 100 ms
    std::atomic<std::uint64_t> failures{0};
    std::mutex mu;
    std::vector<double> latencies_ms;
    explicit LoadState(double seconds) : buckets(static_cast<std::size_t>(seconds * 10) + 20) {}
};

asio::awaitable<void> load_connection(unsigned short port, LoadState& st) {
    constexpr std::string_view req = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
    std::vector<double> lat;
    lat.reserve(1 << 16);
    while (Clock::now() < st.until) {
        tcp::socket s(co_await asio::this_coro::executor);
        if (auto [ec] = co_await s.async_connect(loopback(port), kNoThrow); ec) {
            ++st.failures;
            asio::steady_timer t(s.get_executor(), std::chrono::milliseconds(10));
            co_await t.async_wait(kNoThrow);
            continue;
        }
        s.set_option(tcp::no_delay(true));
        std::string buf;
        for (;;) {
            const auto t0 = Clock::now();
            if (t0 >= st.until) {
                break;
            }
            if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(req), kNoThrow); ec) {
                ++st.failures;
                break;
            }
            const unsigned status = co_await read_response(s, buf);
            const auto t1 = Clock::now();
            if (status != 200) {
                ++st.failures;
                break;
            }
            const auto slot =
                static_cast<std::size_t>((t1 - st.start) / std::chrono::milliseconds(100));
            if (slot < st.buckets.size()) {
                st.buckets[slot].fetch_add(1, std::memory_order_relaxed);
            }
            lat.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
    }
    std::lock_guard lock(st.mu);
    st.latencies_ms.insert(st.latencies_ms.end(), lat.begin(), lat.end());
}

// One admin call on a blocking socket; returns the status and body.
std::pair<unsigned, std::string> admin_post(unsigned short port, const std::string& token,
                                            const std::string& path, const std::string& body) {
    asio::io_context ctx;
    tcp::socket s(ctx);
    error_code ec;
    s.connect(loopback(port), ec);
    if (ec) {
        return {0, ec.message()};
    }
    std::string req =
        "POST " + path + " HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n" +
        (token.empty() ? "" : "Authorization: Bearer " + token + "\r\n") +
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    asio::write(s, asio::buffer(req), ec);
    std::string all;
    asio::read(s, asio::dynamic_buffer(all), ec);
    const unsigned status = all.size() > 12 ? static_cast<unsigned>(std::atoi(all.c_str() + 9)) : 0;
    const auto body_at = all.find("\r\n\r\n");
    return {status, body_at == std::string::npos ? "" : all.substr(body_at + 4)};
}

// With switches, the run is: the warm-up, then a switch every `spacing`
// seconds starting one second in, then half a spacing more. The rate in the
// second centred on each switch is compared with the mean of the two quiet
// seconds centred half-way to the switches before and after it, so drift of
// the machine's speed over the run does not count as a switch's cost; the same
// comparison between quiet seconds gives the noise floor.
int run_load(unsigned short port, int connections, double seconds, int threads,
             unsigned short admin, const std::string& token, int switches, double warmup,
             double spacing) {
    const double first_switch = warmup + 1.0;
    if (switches > 0) {
        seconds = first_switch + spacing * switches + 1.0;
    }
    LoadState st(seconds);
    st.start = Clock::now();
    st.until = st.start +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    std::vector<std::unique_ptr<asio::io_context>> ctxs;
    for (int t = 0; t < threads; ++t) {
        ctxs.push_back(std::make_unique<asio::io_context>(1));
    }
    for (int i = 0; i < connections; ++i) {
        asio::co_spawn(*ctxs[static_cast<std::size_t>(i % threads)], load_connection(port, st),
                       asio::detached);
    }
    std::vector<std::thread> pool;
    for (auto& c : ctxs) {
        pool.emplace_back([&c] { c->run(); });
    }

    // Switches every `spacing` seconds after the warm-up, alternating colors.
    std::vector<double> switch_at_s;
    int switch_failures = 0;
    if (switches > 0) {
        for (int i = 0; i < switches; ++i) {
            const auto at =
                st.start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(first_switch + spacing * i));
            std::this_thread::sleep_until(at);
            const auto t = Clock::now();
            auto [status, body] =
                admin_post(admin, token, "/v1/switch",
                           std::string("{\"to\":\"") + (i % 2 == 0 ? "green" : "blue") + "\"}");
            if (status != 200 || body.find("\"switched\"") == std::string::npos) {
                ++switch_failures;
                std::fprintf(stderr, "switch %d: %u %s\n", i, status, body.c_str());
            }
            switch_at_s.push_back(std::chrono::duration<double>(t - st.start).count());
        }
    }
    for (auto& t : pool) {
        t.join();
    }

    std::uint64_t total = 0;
    for (auto& b : st.buckets) {
        total += b.load();
    }
    auto& lat = st.latencies_ms;
    std::printf("requests=%llu failures=%llu rps=%.0f p50_ms=%.3f p99_ms=%.3f",
                static_cast<unsigned long long>(total),
                static_cast<unsigned long long>(st.failures.load()),
                static_cast<double>(total) / seconds, percentile(lat, 0.5), percentile(lat, 0.99));
    if (switches > 0) {
        // Requests completed in the second centred on `t` (ten 100 ms buckets).
        auto second_around = [&](double t) {
            std::uint64_t sum = 0;
            const auto first = static_cast<std::size_t>(std::lround(t * 10)) - 5;
            for (auto i = first; i < first + 10 && i < st.buckets.size(); ++i) {
                sum += st.buckets[i].load();
            }
            return static_cast<double>(sum);
        };
        // quiet[i]: the second half-way between switch i-1 and switch i.
        std::vector<double> quiet;
        for (int i = 0; i <= switches; ++i) {
            quiet.push_back(second_around(first_switch + spacing * (i - 0.5)));
        }
        std::vector<double> ratios;
        for (int i = 0; i < switches; ++i) {
            const double around = second_around(switch_at_s[static_cast<std::size_t>(i)]);
            ratios.push_back(around / ((quiet[static_cast<std::size_t>(i)] +
                                        quiet[static_cast<std::size_t>(i) + 1]) /
                                       2));
        }
        std::vector<double> noise;
        for (std::size_t i = 1; i + 1 < quiet.size(); ++i) {
            noise.push_back(quiet[i] / ((quiet[i - 1] + quiet[i + 1]) / 2));
        }
        double steady = 0;
        for (double q : quiet) {
            steady += q;
        }
        steady /= static_cast<double>(quiet.size());
        std::printf(
            " switches=%zu switch_failures=%d steady_rps=%.0f around_switch_min=%.3f "
            "around_switch_median=%.3f quiet_min=%.3f quiet_median=%.3f",
            switch_at_s.size(), switch_failures, steady,
            *std::min_element(ratios.begin(), ratios.end()), percentile(ratios, 0.5),
            noise.empty() ? 1.0 : *std::min_element(noise.begin(), noise.end()),
            noise.empty() ? 1.0 : percentile(noise, 0.5));
    }
    std::printf("\n");
    return 0;
}

// -------------------------------------------------------------- startup ----

int run_startup(unsigned short port, std::vector<std::string> command) {
    std::vector<char*> argv;
    for (auto& a : command) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    const auto t0 = Clock::now();
    pid_t pid = 0;
    if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
        std::printf("error=spawn\n");
        return 1;
    }
    double ms = -1;
    asio::io_context ctx;
    while (Clock::now() - t0 < std::chrono::seconds(10)) {
        tcp::socket s(ctx);
        error_code ec;
        s.connect(loopback(port), ec);
        if (!ec) {
            constexpr std::string_view req =
                "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
            asio::write(s, asio::buffer(req), ec);
            std::string all;
            asio::read(s, asio::dynamic_buffer(all), ec);
            if (all.rfind("HTTP/1.1 200", 0) == 0) {
                ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
                break;
            }
        }
        std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    ::kill(pid, SIGTERM);
    int status = 0;
    ::waitpid(pid, &status, 0);
    std::printf("first_response_ms=%.1f\n", ms);
    return ms < 0 ? 1 : 0;
}

// ------------------------------------------------------------------ mix ----
// The soak's traffic (bench/soak.sh): keep-alive GETs, a connection per
// request, POSTs with a body, WebSockets sending a message every 500 ms and
// SSE subscribers, for `seconds`. Every outcome is counted by class, so the
// soak can tell a failure its faults explain from one they do not. A
// WebSocket or SSE stream that ends must end cleanly (Close 1001, the
// terminating chunk); it then reconnects.

struct MixState {
    Clock::time_point start = Clock::now();
    Clock::time_point until;
    std::mutex mu;
    std::map<std::string, long> counts;
    void count(const std::string& what, long n = 1) {
        std::lock_guard lock(mu);
        counts[what] += n;
    }
    // A failure is counted and told, with when and how, so that the soak's
    // log can set it beside its timeline of faults.
    void failed(const std::string& what, const std::string& how) {
        count(what);
        const auto at = std::chrono::duration<double>(Clock::now() - start).count();
        std::fprintf(stderr, "mix: [%6.1fs] %s: %s\n", at, what.c_str(), how.c_str());
    }
};

// The mix's pacing: waits `ms` on the client's own timer.
asio::awaitable<void> pause(asio::steady_timer& pace, int ms) {
    pace.expires_after(std::chrono::milliseconds(ms));
    co_await pace.async_wait(kNoThrow);
}

asio::awaitable<bool> connect_to(tcp::socket& s, unsigned short port, MixState& st) {
    if (auto [ec] = co_await s.async_connect(loopback(port), kNoThrow); ec) {
        st.failed("fail_connect", ec.message());
        co_return false;
    }
    s.set_option(tcp::no_delay(true));
    co_return true;
}

// One request, classified: ok, fail_status_<code>, fail_io.
asio::awaitable<bool> mix_request(tcp::socket& s, std::string& buf, const std::string& req,
                                  MixState& st, const char* kind) {
    if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(req), kNoThrow); ec) {
        st.failed(std::string("fail_io_") + kind, "request write: " + ec.message());
        co_return false;
    }
    const unsigned status = co_await read_response(s, buf);
    if (status == 200) {
        st.count(std::string("ok_") + kind);
        co_return true;
    }
    if (status == 0) {
        st.failed(std::string("fail_io_") + kind, "no complete response");
    } else {
        st.failed("fail_status_" + std::to_string(status), kind);
    }
    co_return false;
}

asio::awaitable<void> mix_keepalive(unsigned short port, MixState& st, bool post) {
    const std::string body(16 * 1024, 'b');
    const std::string req =
        post ? "POST / HTTP/1.1\r\nHost: soak\r\nContent-Length: " + std::to_string(body.size()) +
                   "\r\n\r\n" + body
             : std::string("GET /color HTTP/1.1\r\nHost: soak\r\n\r\n");
    asio::steady_timer pace(co_await asio::this_coro::executor);
    while (Clock::now() < st.until) {
        tcp::socket s(co_await asio::this_coro::executor);
        if (!co_await connect_to(s, port, st)) {
            co_await pause(pace, 100);
            continue;
        }
        std::string buf;
        while (Clock::now() < st.until) {
            if (!co_await mix_request(s, buf, req, st, post ? "post" : "keepalive")) {
                co_await pause(pace, 100);
                break;
            }
            co_await pause(pace, 10);
        }
    }
}

asio::awaitable<void> mix_one_shot(unsigned short port, MixState& st) {
    const std::string req = "GET /color HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n";
    asio::steady_timer pace(co_await asio::this_coro::executor);
    while (Clock::now() < st.until) {
        tcp::socket s(co_await asio::this_coro::executor);
        if (co_await connect_to(s, port, st)) {
            std::string buf;
            co_await mix_request(s, buf, req, st, "oneshot");
        }
        co_await pause(pace, 20);
    }
}

// A masked text frame (client to server).
std::string mix_frame(const std::string& text) {
    std::string f;
    f.push_back(static_cast<char>(0x81));
    f.push_back(static_cast<char>(0x80 | text.size()));  // under 126 bytes
    const char mask[4] = {1, 2, 3, 4};
    f.append(mask, 4);
    for (std::size_t i = 0; i < text.size(); ++i) {
        f.push_back(static_cast<char>(text[i] ^ mask[i % 4]));
    }
    return f;
}

asio::awaitable<void> mix_websocket(unsigned short port, MixState& st) {
    const std::string upgrade =
        "GET /ws HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    asio::steady_timer pace(co_await asio::this_coro::executor);
    while (Clock::now() < st.until) {
        tcp::socket s(co_await asio::this_coro::executor);
        std::string buf;
        if (!co_await connect_to(s, port, st)) {
            co_await pause(pace, 100);
            continue;
        }
        if (auto [ec, n] = co_await asio::async_write(s, asio::buffer(upgrade), kNoThrow); ec) {
            st.failed("fail_io_ws", "upgrade write: " + ec.message());
            continue;
        }
        if (const auto status = co_await read_response(s, buf); status != 101) {
            if (status == 0) {
                st.failed("fail_io_ws", "no complete upgrade response");
            } else {
                st.failed("fail_status_" + std::to_string(status), "ws");
            }
            co_await pause(pace, 100);
            continue;
        }
        st.count("ws_opened");
        // Send, read the echo; a Close frame ends it (1001 expected).
        while (Clock::now() < st.until) {
            if (auto [ec, n] =
                    co_await asio::async_write(s, asio::buffer(mix_frame("soak")), kNoThrow);
                ec) {
                st.failed("ws_cut", "message write: " + ec.message());
                break;
            }
            if (buf.size() < 2) {
                auto [ec, n] =
                    co_await asio::async_read(s, asio::dynamic_buffer(buf),
                                              asio::transfer_at_least(2 - buf.size()), kNoThrow);
                if (ec) {
                    st.failed("ws_cut", "frame head read: " + ec.message());
                    break;
                }
            }
            const std::size_t len = static_cast<unsigned char>(buf[1]) & 0x7f;  // short frames
            if (buf.size() < 2 + len) {
                auto [ec, n] = co_await asio::async_read(
                    s, asio::dynamic_buffer(buf), asio::transfer_at_least(2 + len - buf.size()),
                    kNoThrow);
                if (ec) {
                    st.failed("ws_cut", "frame read: " + ec.message());
                    break;
                }
            }
            const auto opcode = static_cast<unsigned char>(buf[0]) & 0x0f;
            if (opcode == 0x8) {
                const int code = len >= 2 ? (static_cast<unsigned char>(buf[2]) << 8) |
                                                static_cast<unsigned char>(buf[3])
                                          : 0;
                if (code == 1001) {
                    st.count("ws_closed_1001");
                } else {
                    st.failed("ws_closed_other", "Close " + std::to_string(code));
                }
                break;
            }
            st.count("ok_ws_message");
            buf.erase(0, 2 + len);
            co_await pause(pace, 500);
        }
    }
}

// The fault on demand: the upstream sends a 200 promising 64 KiB, 1 KiB of
// it, then resets. The client must see that response cut short (or a 502,
// when the reset overtook the head): never a complete body, never a hang.
asio::awaitable<void> mix_reset(unsigned short port, MixState& st) {
    const std::string req = "GET /fault/reset-mid-body HTTP/1.1\r\nHost: soak\r\n\r\n";
    asio::steady_timer pace(co_await asio::this_coro::executor);
    while (Clock::now() < st.until) {
        co_await pause(pace, 2000);
        tcp::socket s(co_await asio::this_coro::executor);
        if (!co_await connect_to(s, port, st)) {
            continue;
        }
        std::string buf;
        auto [wec, wn] = co_await asio::async_write(s, asio::buffer(req), kNoThrow);
        auto [ec, n] =
            co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
        if (wec || ec || buf.size() < 12) {
            st.failed("fail_io_reset", "no response head: " + (wec ? wec : ec).message());
            continue;
        }
        const unsigned status = static_cast<unsigned>(std::atoi(buf.c_str() + 9));
        if (status == 502) {
            st.count("fault_reset_502");
            continue;
        }
        if (status != 200) {
            st.failed("fail_status_" + std::to_string(status), "reset");
            continue;
        }
        std::size_t body = buf.size() - n;
        char sink[16384];
        for (;;) {
            auto [rec, rn] = co_await s.async_read_some(asio::buffer(sink), kNoThrow);
            if (rec) {
                break;
            }
            body += rn;
        }
        if (body < 65536) {
            st.count("fault_reset_cut_short");
        } else {
            st.failed("fail_reset_complete", "a body the upstream never sent");
        }
    }
}

asio::awaitable<void> mix_sse(unsigned short port, MixState& st) {
    const std::string req = "GET /events HTTP/1.1\r\nHost: soak\r\n\r\n";
    asio::steady_timer pace(co_await asio::this_coro::executor);
    while (Clock::now() < st.until) {
        tcp::socket s(co_await asio::this_coro::executor);
        if (!co_await connect_to(s, port, st)) {
            co_await pause(pace, 100);
            continue;
        }
        std::string buf;
        auto [wec, wn] = co_await asio::async_write(s, asio::buffer(req), kNoThrow);
        auto [ec, n] =
            co_await asio::async_read_until(s, asio::dynamic_buffer(buf), "\r\n\r\n", kNoThrow);
        if (wec || ec || buf.compare(0, 12, "HTTP/1.1 200") != 0) {
            st.failed("fail_sse_start", (wec ? wec : ec).message());
            continue;
        }
        st.count("sse_opened");
        // Events until the stream ends: with "0\r\n\r\n" (clean) or not.
        for (;;) {
            const auto [rec, rn] =
                co_await s.async_read_some(asio::dynamic_buffer(buf).prepare(4096), kNoThrow);
            if (rec) {
                const bool clean = buf.find("\r\n0\r\n\r\n") != std::string::npos;
                if (clean) {
                    st.count("sse_ended_clean");
                } else {
                    st.failed("sse_cut", "stream read: " + rec.message());
                }
                break;
            }
            buf.resize(buf.size() - (4096 - rn));
            if (buf.size() > 65536) {
                buf.erase(0, buf.size() - 16);  // keep the tail for the terminator check
            }
            if (Clock::now() >= st.until) {
                break;
            }
        }
    }
}

int run_mix(unsigned short port, double seconds, int keepalive, int oneshot, int posts,
            int websockets, int sse, int resets) {
    MixState st;
    st.until = Clock::now() +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    asio::io_context ctx(1);
    for (int i = 0; i < keepalive; ++i) {
        asio::co_spawn(ctx, mix_keepalive(port, st, false), asio::detached);
    }
    for (int i = 0; i < posts; ++i) {
        asio::co_spawn(ctx, mix_keepalive(port, st, true), asio::detached);
    }
    for (int i = 0; i < oneshot; ++i) {
        asio::co_spawn(ctx, mix_one_shot(port, st), asio::detached);
    }
    for (int i = 0; i < websockets; ++i) {
        asio::co_spawn(ctx, mix_websocket(port, st), asio::detached);
    }
    for (int i = 0; i < sse; ++i) {
        asio::co_spawn(ctx, mix_sse(port, st), asio::detached);
    }
    for (int i = 0; i < resets; ++i) {
        asio::co_spawn(ctx, mix_reset(port, st), asio::detached);
    }
    std::thread runner([&ctx] { ctx.run(); });
    // A line every 10 s (the soak watches traffic keep flowing), then the total.
    long last_ok = 0;
    while (Clock::now() < st.until) {
        std::this_thread::sleep_for(std::chrono::seconds(10));
        std::lock_guard lock(st.mu);
        long ok = 0;
        for (const auto& [k, v] : st.counts) {
            ok += k.rfind("ok_", 0) == 0 ? v : 0;
        }
        std::printf("progress ok=%ld\n", ok - last_ok);
        std::fflush(stdout);
        last_ok = ok;
    }
    ctx.stop();  // streams still open are left as they are
    runner.join();
    std::printf("total");
    for (const auto& [k, v] : st.counts) {
        std::printf(" %s=%ld", k.c_str(), v);
    }
    std::printf("\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bgs-bench: load generator and upstream for bench/run.sh"};
    app.require_subcommand(1);
    int port = 0;
    int interval_ms = 10, threads = 1, clients = 50, keepalive = 0, websockets = 0;
    int connections = 64, admin = 0, switches = 0;
    double seconds = 5, warmup = 3, spacing = 2;
    std::string token;
    std::vector<std::string> command;

    auto* serve = app.add_subcommand("serve", "the upstream");
    serve->add_option("--port", port)->required();
    serve->add_option("--interval-ms", interval_ms, "SSE event interval");
    serve->add_option("--threads", threads);
    auto* sse = app.add_subcommand("sse", "SSE subscribers measuring event delay");
    sse->add_option("--port", port)->required();
    sse->add_option("--clients", clients);
    sse->add_option("--seconds", seconds);
    auto* hold = app.add_subcommand("hold", "idle keep-alive connections and WebSockets");
    hold->add_option("--port", port)->required();
    hold->add_option("--keepalive", keepalive);
    hold->add_option("--websockets", websockets);
    hold->add_option("--seconds", seconds);
    auto* hold_tls = app.add_subcommand("hold-tls", "idle TLS keep-alive connections");
    hold_tls->add_option("--port", port)->required();
    hold_tls->add_option("--connections", connections);
    hold_tls->add_option("--seconds", seconds);
    auto* load = app.add_subcommand("load", "keep-alive load, optionally with switches");
    load->add_option("--port", port)->required();
    load->add_option("--connections", connections);
    load->add_option("--seconds", seconds);
    load->add_option("--threads", threads);
    load->add_option("--admin", admin);
    load->add_option("--token", token);
    load->add_option("--switches", switches);
    load->add_option("--warmup", warmup);
    load->add_option("--spacing", spacing,
                     "seconds between switches (the run lasts as long as they need)");
    int oneshot = 4, posts = 2, sse_clients = 4;
    auto* mix = app.add_subcommand("mix", "the soak's mixed traffic, every outcome counted");
    mix->add_option("--port", port)->required();
    mix->add_option("--seconds", seconds);
    mix->add_option("--keepalive", keepalive);
    mix->add_option("--oneshot", oneshot);
    mix->add_option("--posts", posts);
    mix->add_option("--websockets", websockets);
    mix->add_option("--sse", sse_clients);
    int resets = 0;
    mix->add_option("--resets", resets, "clients asking the upstream to reset mid-body, every 2 s");
    int samples = 2000;
    bool sse_first = false;
    auto* ttfb = app.add_subcommand("ttfb", "a new connection's time to its first byte");
    ttfb->add_option("--port", port)->required();
    ttfb->add_option("--samples", samples);
    ttfb->add_flag("--sse", sse_first, "time to a stream's first event");
    auto* startup = app.add_subcommand("startup", "time to the first 200");
    startup->add_option("--port", port)->required();
    startup->add_option("command", command)->required();
    CLI11_PARSE(app, argc, argv);

    const auto p = static_cast<unsigned short>(port);
    if (*serve) {
        return run_serve(p, interval_ms, threads);
    }
    if (*sse) {
        return run_sse(p, clients, seconds);
    }
    if (*hold) {
        return run_hold(p, keepalive, websockets, seconds);
    }
    if (*hold_tls) {
        return run_hold_tls(p, connections, seconds);
    }
    if (*load) {
        return run_load(p, connections, seconds, threads, static_cast<unsigned short>(admin), token,
                        switches, warmup, spacing);
    }
    if (*ttfb) {
        return run_ttfb(p, samples, sse_first);
    }
    if (*mix) {
        return run_mix(p, seconds, keepalive, oneshot, posts, websockets, sse_clients, resets);
    }
    return run_startup(p, command);
}
