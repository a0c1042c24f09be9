// The active color and its version, published as one atomic word so that every
// worker reads a consistent pair once per request. Written by the control thread
// (switches), read by every worker.
#pragma once

#include "proxy/common/color.hpp"

#include <atomic>
#include <cstdint>

namespace bgs::routing {

class ColorState {
  public:
    struct Snapshot {
        Color active;
        std::uint64_t version;
    };

    ColorState(Color active, std::uint64_t version) { publish(active, version); }

    /// The current pair. Acquire pairs with publish's release, so whatever the
    /// switch wrote before publishing (durable state, drain bookkeeping) is visible.
    Snapshot load() const noexcept {
        const auto word = word_.load(std::memory_order_acquire);
        return {static_cast<Color>(word & 1), word >> 1};
    }

    void publish(Color active, std::uint64_t version) noexcept {
        word_.store((version << 1) | index(active), std::memory_order_release);
    }

  private:
    std::atomic<std::uint64_t> word_{0};
};

}  // namespace bgs::routing
