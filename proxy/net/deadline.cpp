#include "proxy/net/deadline.hpp"

namespace bgs::net {

void CancelDeadline::arm(tcp::socket& socket, Duration after) {
    disarm();
    state_ = std::make_shared<State>();
    state_->socket = &socket;
    timer_.expires_after(after);
    timer_.async_wait([weak = std::weak_ptr<State>(state_)](const error_code& ec) {
        auto state = weak.lock();
        if (ec || !state || state->socket == nullptr) {
            return;
        }
        state->fired = true;
        error_code ignored;
        state->socket->cancel(ignored);
    });
}

void CancelDeadline::disarm() {
    if (state_) {
        state_->socket = nullptr;
        timer_.cancel();
    }
}

}  // namespace bgs::net
