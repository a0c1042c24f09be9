// Decides, per request, which color serves it. Shared by all workers; which
// upstream of that color serves it is each worker's pick (upstream.hpp) over
// its own copy of the color's members, so the hot path takes no lock.
#pragma once

#include "proxy/routing/color_state.hpp"

namespace bgs::routing {

/// Who a listener serves: live traffic goes to the active color, the preview
/// listener to the idle one.
enum class Audience { Live, Preview };

class Router {
  public:
    explicit Router(ColorState& state) : state_(state) {}

    /// The color for a request arriving now.
    Color route(Audience audience) const noexcept {
        const auto active = state_.load().active;
        return audience == Audience::Live ? active : other(active);
    }

    ColorState& state() const { return state_; }

  private:
    ColorState& state_;
};

}  // namespace bgs::routing
