#include "proxy/routing/upstream.hpp"

namespace bgs::routing {
namespace {

std::string address_text(const boost::asio::ip::tcp::endpoint& ep) {
    const auto ip = ep.address().to_string();
    const auto port = std::to_string(ep.port());
    return ep.address().is_v6() ? "[" + ip + "]:" + port : ip + ":" + port;
}

std::uint64_t next_id() {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace

Upstream::Upstream(config::HostPort configured_as, boost::asio::ip::tcp::endpoint ep,
                   bool healthy_now)
    : id(next_id()),
      configured(std::move(configured_as)),
      authority(configured.to_string()),
      endpoint(ep),
      address(address_text(ep)),
      name(configured.host == ep.address().to_string()
               ? address
               : authority + " (" + ep.address().to_string() + ")"),
      healthy(healthy_now) {}

std::optional<std::size_t> pick(const Members& members, std::size_t& cursor,
                                std::optional<std::size_t> exclude) {
    const std::size_t n = members.size();
    for (int pass = 0; pass < 2; ++pass) {
        const bool need_healthy = pass == 0;
        for (std::size_t step = 0; step < n; ++step) {
            const std::size_t i = (cursor + step) % n;
            if (exclude && *exclude == i) {
                continue;
            }
            if (need_healthy && !members[i]->healthy.load(std::memory_order_relaxed)) {
                continue;
            }
            cursor = i + 1;
            return i;
        }
    }
    return std::nullopt;
}

}  // namespace bgs::routing
