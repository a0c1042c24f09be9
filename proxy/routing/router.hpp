// Decides, per request, which color serves it and which upstream of that color.
// Shared by all workers; the per-worker round-robin cursor is passed in so the
// hot path takes no lock and writes no shared cache line.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/routing/color_state.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bgs::routing {

/// Who a listener serves: live traffic goes to the active color, the preview
/// listener to the idle one.
enum class Audience { Live, Preview };

/// One upstream of a color. `healthy` is written by the health checker and read
/// by the router (relaxed: a stale read only routes one request to a peer that
/// just changed state, which the retry covers).
struct Upstream {
    std::string address;  // "host:port"
    std::atomic<bool> healthy{true};
};

class Router {
  public:
    Router(const config::Config& cfg, ColorState& state);

    /// The color for a request arriving now.
    Color route(Audience audience) const noexcept {
        const auto active = state_.load().active;
        return audience == Audience::Live ? active : other(active);
    }

    /// The next upstream of `color` in round-robin order after `cursor` (advanced),
    /// preferring healthy ones and skipping `exclude`. When none is healthy every
    /// upstream is a candidate: stale health must not turn into certain 502s.
    /// nullopt only when `exclude` was the color's only upstream.
    std::optional<std::size_t> pick(Color color, std::size_t& cursor,
                                    std::optional<std::size_t> exclude = std::nullopt) const;

    std::size_t size(Color color) const { return upstreams_[index(color)].size(); }
    Upstream& upstream(Color color, std::size_t i) const { return *upstreams_[index(color)][i]; }
    ColorState& state() const { return state_; }

  private:
    ColorState& state_;
    std::array<std::vector<std::unique_ptr<Upstream>>, 2> upstreams_;
};

}  // namespace bgs::routing
