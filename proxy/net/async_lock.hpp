// One coroutine at a time through a section that suspends, such as a request
// and its reply on a shared connection. Waiters go through in arrival order.
// Single-threaded: every user runs on the same executor.
#pragma once

#include "proxy/net/http_io.hpp"

#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <memory>

namespace bgs::net {

class AsyncLock {
  public:
    /// Held until destroyed; then the next waiter goes.
    class Guard {
      public:
        explicit Guard(AsyncLock* lock) : lock_(lock) {}
        Guard(Guard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
        Guard& operator=(Guard&&) = delete;
        ~Guard() {
            if (lock_ != nullptr) {
                lock_->unlock();
            }
        }

      private:
        AsyncLock* lock_;
    };

    Task<Guard> lock();
    bool held() const { return held_; }

  private:
    struct Waiter {
        explicit Waiter(const asio::any_io_executor& ex)
            : timer(ex, asio::steady_timer::time_point::max()) {}
        asio::steady_timer timer;
        bool granted = false;
    };
    void unlock();

    bool held_ = false;
    // A waiter whose coroutine was destroyed (its context shut down) expires
    // here and is skipped.
    std::deque<std::weak_ptr<Waiter>> waiting_;
};

}  // namespace bgs::net
