// A deadline that cancels a socket's pending operations instead of closing the
// socket (as beast::tcp_stream's timeouts do), so that the session can still
// answer, e.g. with 408. Owner's thread only.
#pragma once

#include "proxy/common/units.hpp"
#include "proxy/net/http_io.hpp"

#include <boost/asio/steady_timer.hpp>

#include <memory>

namespace bgs::net {

class CancelDeadline {
  public:
    explicit CancelDeadline(const asio::any_io_executor& ex) : timer_(ex) {}
    ~CancelDeadline() { disarm(); }
    CancelDeadline(const CancelDeadline&) = delete;
    CancelDeadline& operator=(const CancelDeadline&) = delete;

    /// After `after`, cancels what is pending on `socket` and marks fired().
    void arm(tcp::socket& socket, Duration after);
    /// Stops the deadline; a expiry already queued does nothing.
    void disarm();
    bool fired() const { return state_ && state_->fired; }

  private:
    struct State {
        tcp::socket* socket = nullptr;
        bool fired = false;
    };
    asio::steady_timer timer_;
    // A fresh State per arm(): a completion queued for an older arm finds its
    // State detached (or gone with the owner) and does nothing.
    std::shared_ptr<State> state_;
};

}  // namespace bgs::net
