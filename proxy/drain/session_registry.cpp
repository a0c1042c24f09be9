#include "proxy/drain/session_registry.hpp"

#include <utility>

namespace bgs::drain {

TrackedSession::TrackedSession(SessionRegistry& registry) : registry_(registry) {
    next_ = registry_.head_;
    if (next_ != nullptr) {
        next_->prev_ = this;
    }
    registry_.head_ = this;
    ++registry_.size_;
}

TrackedSession::~TrackedSession() {
    registry_.counts_.add(color_, activity_, -1);
    if (prev_ != nullptr) {
        prev_->next_ = next_;
    } else {
        registry_.head_ = next_;
    }
    if (next_ != nullptr) {
        next_->prev_ = prev_;
    }
    --registry_.size_;
}

void TrackedSession::set(Activity activity, Color color) {
    registry_.counts_.add(color_, activity_, -1);
    activity_ = activity;
    color_ = color;
    registry_.counts_.add(color_, activity_, +1);
}

}  // namespace bgs::drain
