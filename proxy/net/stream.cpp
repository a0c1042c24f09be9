#include "proxy/net/stream.hpp"

#include <openssl/ssl.h>
#include <time.h>

#include <algorithm>

namespace bgs::net {

asio::execution_context::id DeadlineWheel::id;

namespace {

DeadlineWheel& wheel_of(const asio::any_io_executor& ex) {
    return asio::use_service<DeadlineWheel>(asio::query(ex, asio::execution::context));
}

std::chrono::nanoseconds coarse_resolution() {
    timespec res{};
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0) {
        return std::chrono::milliseconds(10);
    }
    return std::chrono::seconds(res.tv_sec) + std::chrono::nanoseconds(res.tv_nsec);
}

}  // namespace

SteadyTime coarse_now() {
    static const auto resolution = coarse_resolution();
    timespec ts{};
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) {
        return std::chrono::steady_clock::now();
    }
    return SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(
        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec) + resolution));
}

Stream::Stream(tcp::socket socket)
    : socket_(std::move(socket)), wheel_(wheel_of(socket_.get_executor())) {
    if (socket_.is_open()) {
        boost::system::error_code ignored;
        socket_.non_blocking(true, ignored);
    }
}

Stream::Stream(const asio::any_io_executor& ex) : socket_(ex), wheel_(wheel_of(ex)) {}

Stream::~Stream() {
    wheel_.unfile(*this);
    if (ssl_ != nullptr) {
        SSL_free(ssl_);
    }
}

void Stream::use_tls(ssl_st* ssl) {
    if (ssl_ != nullptr) {
        SSL_free(ssl_);
    }
    ssl_ = ssl;
}

bool Stream::tls_pending() const {
    return ssl_ != nullptr && SSL_has_pending(ssl_) == 1;
}

void Stream::release_tls_buffers() {
    if (ssl_ != nullptr) {
        SSL_free_buffers(ssl_);  // refused (harmlessly) while a record is half read
    }
}

namespace {

// TLS's close_notify, once and only after a handshake; a full socket buffer
// loses it, which the protocol allows.
void send_close_notify(ssl_st* ssl) {
    if (ssl != nullptr && SSL_is_init_finished(ssl) &&
        !(SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN)) {
        SSL_shutdown(ssl);
    }
}

}  // namespace

void Stream::shutdown_send() {
    send_close_notify(ssl_);
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void Stream::shutdown_both() {
    send_close_notify(ssl_);
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
}

void Stream::expires_at(SteadyTime at) {
    deadline_ = at;
    expired_ = false;
    wheel_.file(*this);
}

void Stream::expire() {
    expired_ = true;
    if (pending_ > 0) {
        boost::system::error_code ignored;
        socket_.cancel(ignored);
    }
}

DeadlineWheel::DeadlineWheel(asio::execution_context& ctx)
    : asio::execution_context::service(ctx) {}

std::int64_t DeadlineWheel::tick_of(SteadyTime t) const {
    // Rounded up: a stream is never expired before its deadline.
    const auto since = t - epoch_;
    return (since + kTick - std::chrono::nanoseconds(1)) / kTick;
}

void DeadlineWheel::file(Stream& s) {
    int slot = -1;
    if (s.deadline_ != SteadyTime::max()) {
        const auto tick = std::max(tick_of(s.deadline_), swept_ + 1);
        slot = static_cast<int>(tick % kSlots);
    }
    if (slot == s.slot_) {
        return;  // same slot: a later turn is checked when the slot comes round
    }
    unfile(s);
    if (slot < 0) {
        return;
    }
    s.slot_ = slot;
    s.prev_ = nullptr;
    s.next_ = slots_[slot];
    if (s.next_ != nullptr) {
        s.next_->prev_ = &s;
    }
    slots_[slot] = &s;
    if (++filed_ == 1 && !ticking_ && !shut_down_) {
        start_ticking(s.get_executor());
    }
}

void DeadlineWheel::unfile(Stream& s) {
    if (s.slot_ < 0) {
        return;
    }
    if (s.prev_ != nullptr) {
        s.prev_->next_ = s.next_;
    } else {
        slots_[s.slot_] = s.next_;
    }
    if (s.next_ != nullptr) {
        s.next_->prev_ = s.prev_;
    }
    s.prev_ = s.next_ = nullptr;
    s.slot_ = -1;
    --filed_;
}

void DeadlineWheel::start_ticking(const asio::any_io_executor& ex) {
    if (!timer_) {
        timer_.emplace(ex);
    }
    ticking_ = true;
    timer_->expires_after(kTick);
    timer_->async_wait([this](const boost::system::error_code& ec) {
        ticking_ = false;
        if (ec || shut_down_) {
            return;
        }
        tick();
        if (filed_ > 0) {
            start_ticking(timer_->get_executor());
        }
    });
}

void DeadlineWheel::tick() {
    const auto now = std::chrono::steady_clock::now();
    const auto now_tick = (now - epoch_) / kTick;
    const auto first = std::max(swept_ + 1, now_tick - kSlots + 1);
    for (auto t = first; t <= now_tick; ++t) {
        Stream* s = slots_[t % kSlots];
        while (s != nullptr) {
            Stream* next = s->next_;
            if (s->deadline_ <= now) {
                unfile(*s);
                s->expire();
            }
            s = next;
        }
    }
    swept_ = std::max(swept_, static_cast<std::int64_t>(now_tick));
}

void DeadlineWheel::shutdown() {
    shut_down_ = true;
    timer_.reset();
}

}  // namespace bgs::net
