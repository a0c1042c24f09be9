// The active color, its version and the canary's share, published as one
// atomic word so that every worker reads a consistent triple once per
// request. Written by the control thread (switches, canary steps), read by
// every worker.
#pragma once

#include "proxy/common/color.hpp"

#include <atomic>
#include <cstdint>

namespace bgs::routing {

class ColorState {
  public:
    /// The canary always goes to the color that is not active.
    struct Snapshot {
        Color active;
        std::uint64_t version;
        unsigned canary_percent;  // 0: no canary
        Color canary() const { return other(active); }
    };

    ColorState(Color active, std::uint64_t version) { publish(active, version); }

    /// The current triple. Acquire pairs with publish's release, so whatever the
    /// switch wrote before publishing (durable state, drain bookkeeping, the
    /// canary's epoch) is visible.
    Snapshot load() const noexcept {
        const auto word = word_.load(std::memory_order_acquire);
        return {static_cast<Color>(word & 1), word >> kVersionShift,
                static_cast<unsigned>((word >> 1) & 0x7f)};
    }

    /// `percent` is clamped to 100; `canary_epoch` names the canary (the
    /// version it began at), which session cookies carry.
    void publish(Color active, std::uint64_t version, unsigned percent = 0,
                 std::uint64_t canary_epoch = 0) noexcept {
        epoch_.store(canary_epoch, std::memory_order_relaxed);
        const std::uint64_t p = percent > 100 ? 100 : percent;
        word_.store((version << kVersionShift) | (p << 1) | index(active),
                    std::memory_order_release);
    }

    /// The running canary's epoch; read after load(), it is at least as new as
    /// the snapshot (a stale one only re-assigns one session once).
    std::uint64_t canary_epoch() const noexcept { return epoch_.load(std::memory_order_relaxed); }

  private:
    // bit 0: active; bits 1-7: canary percent; the rest: the version (53 bits).
    static constexpr unsigned kVersionShift = 8;
    std::atomic<std::uint64_t> word_{0};
    std::atomic<std::uint64_t> epoch_{0};
};

}  // namespace bgs::routing
