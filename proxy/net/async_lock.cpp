#include "proxy/net/async_lock.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace bgs::net {

Task<AsyncLock::Guard> AsyncLock::lock() {
    if (!held_) {
        held_ = true;
        co_return Guard(this);
    }
    auto me = std::make_shared<Waiter>(co_await asio::this_coro::executor);
    waiting_.push_back(me);
    while (!me->granted) {
        co_await me->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return Guard(this);  // passed on by unlock(): held_ stayed true
}

void AsyncLock::unlock() {
    while (!waiting_.empty()) {
        auto next = waiting_.front().lock();
        waiting_.pop_front();
        if (next) {
            next->granted = true;
            next->timer.cancel();
            return;
        }
    }
    held_ = false;
}

}  // namespace bgs::net
