#include "proxy/upstream/upstream_pool.hpp"

#include "proxy/common/logging.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace bgs::upstream {
namespace {

// A pooled socket is reused only when it is provably clean: reading must
// block. EOF or a reset means the upstream closed it (a request sent on it
// would fail, and one with a body could not be sent again); data means the
// upstream wrote past its last response, and those bytes would become the next
// client's answer.
bool nothing_readable(Connection& c) {
    char probe;
    const auto fd = c.stream.socket().native_handle();
    const auto n = ::recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// Below this idle time (read on the coarse clock, whose ticks are a few ms)
// a reuse is not peeked: the peek is a system call (about a microsecond here,
// 5 % of a keep-alive request), and on a busy pool connections come back within
// a millisecond or two. An upstream closing an idle connection does so after a
// keep-alive timeout far longer than this; a connection whose last response was
// bodiless is peeked regardless.
constexpr auto kPeekAfter = std::chrono::milliseconds(10);

}  // namespace

Pool::Pool(std::size_t max_idle, Duration idle_timeout)
    : max_idle_(max_idle), idle_timeout_(idle_timeout) {}

void Pool::set_members(Color c, routing::Members members) {
    auto& old_members = members_[index(c)];
    auto& old_idle = idle_[index(c)];
    std::vector<std::deque<std::unique_ptr<Connection>>> idle(members.size());
    for (std::size_t i = 0; i < members.size(); ++i) {
        for (std::size_t j = 0; j < old_members.size(); ++j) {
            if (old_members[j]->id == members[i]->id) {
                idle[i] = std::move(old_idle[j]);
                for (auto& conn : idle[i]) {
                    conn->index = i;
                }
                break;
            }
        }
    }
    old_members = std::move(members);
    old_idle = std::move(idle);  // what was not moved closes here
}

std::unique_ptr<Connection> Pool::take(Color color, std::size_t i) {
    auto& q = idle_[index(color)][i];
    const auto now = net::coarse_now();
    while (!q.empty()) {
        auto conn = std::move(q.back());
        q.pop_back();
        const auto idle = now - conn->idle_since;
        const bool peek = idle >= kPeekAfter || conn->bodiless_last;
        if (idle < idle_timeout_ && (!peek || nothing_readable(*conn))) {
            conn->reused = true;
            return conn;
        }
    }
    return nullptr;
}

void Pool::give_back(std::unique_ptr<Connection> conn) {
    const auto c = index(conn->color);
    if (!pooling_[c]) {
        return;
    }
    // The members may have changed since it was dialled: it goes back only to
    // an upstream still in rotation.
    auto& members = members_[c];
    if (conn->index >= members.size() || members[conn->index] != conn->upstream) {
        const auto it = std::find(members.begin(), members.end(), conn->upstream);
        if (it == members.end()) {
            return;
        }
        conn->index = static_cast<std::size_t>(it - members.begin());
    }
    auto& q = idle_[c][conn->index];
    if (q.size() >= max_idle_) {
        q.pop_front();  // the coldest one goes
    }
    conn->idle_since = net::coarse_now();
    conn->stream.expires_never();  // idle time is the pool's to bound
    q.push_back(std::move(conn));
}

net::Task<std::pair<net::error_code, std::unique_ptr<Connection>>> Pool::connect(
    net::asio::any_io_executor ex, Color color, std::size_t i, Duration timeout) {
    auto conn = std::make_unique<Connection>(net::tcp::socket(ex));
    conn->color = color;
    conn->index = i;
    conn->upstream = members_[index(color)][i];
    conn->stream.expires_after(timeout);
    auto ec = co_await net::connect(conn->stream, conn->upstream->endpoint);
    if (ec) {
        co_return std::pair{ec, std::unique_ptr<Connection>{}};
    }
    net::error_code ignored;
    conn->stream.socket().set_option(net::tcp::no_delay(true), ignored);
    if (const auto tls = conn->upstream->tls.load()) {
        SSL* ssl = tls->context->connect(conn->stream.socket().native_handle(), tls->name);
        conn->stream.use_tls(ssl);
        if (auto hec = co_await net::handshake(conn->stream)) {
            log().error("TLS to upstream {} of {} failed: {}", conn->upstream->name,
                        to_string(color), net::tls::ClientContext::why_failed(ssl, hec.message()));
            co_return std::pair{hec == net::beast::error::timeout
                                    ? hec
                                    : net::error_code(net::asio::error::connection_refused),
                                std::unique_ptr<Connection>{}};
        }
    }
    co_return std::pair{net::error_code{}, std::move(conn)};
}

void Pool::sweep() {
    const auto now = net::coarse_now();
    for (auto& per_color : idle_) {
        for (auto& q : per_color) {
            while (!q.empty() && now - q.front()->idle_since >= idle_timeout_) {
                q.pop_front();
            }
        }
    }
}

void Pool::close_idle(Color color) {
    for (auto& q : idle_[index(color)]) {
        q.clear();
    }
}

void Pool::close_all() {
    for (Color c : kColors) {
        close_idle(c);
    }
}

}  // namespace bgs::upstream
