#include "proxy/routing/router.hpp"

namespace bgs::routing {

Router::Router(const config::Config& cfg, ColorState& state) : state_(state) {
    for (Color c : kColors) {
        for (const auto& hp : cfg.group(c).upstreams) {
            auto up = std::make_unique<Upstream>();
            up->address = hp.to_string();
            upstreams_[index(c)].push_back(std::move(up));
        }
    }
}

std::optional<std::size_t> Router::pick(Color color, std::size_t& cursor,
                                        std::optional<std::size_t> exclude) const {
    const auto& ups = upstreams_[index(color)];
    const std::size_t n = ups.size();
    for (int pass = 0; pass < 2; ++pass) {
        const bool need_healthy = pass == 0;
        for (std::size_t step = 0; step < n; ++step) {
            const std::size_t i = (cursor + step) % n;
            if (exclude && *exclude == i) {
                continue;
            }
            if (need_healthy && !ups[i]->healthy.load(std::memory_order_relaxed)) {
                continue;
            }
            cursor = i + 1;
            return i;
        }
    }
    return std::nullopt;
}

}  // namespace bgs::routing
