#include "proxy/state/heartbeat.hpp"

#include <boost/json.hpp>

namespace bgs::state {
namespace json = boost::json;

std::optional<NodeReport> decode_heartbeat(std::string_view text, std::string node,
                                           std::int64_t now_ms) {
    json::error_code ec;
    const auto v = json::parse(text, ec);
    if (ec || !v.is_object()) {
        return std::nullopt;
    }
    const auto& o = v.as_object();
    NodeReport n;
    n.node = std::move(node);
    if (const auto* a = o.if_contains("applied_version"); a && a->is_number()) {
        const auto version = a->to_number<std::uint64_t>(ec);
        n.applied_version = ec ? 0 : version;
    }
    if (const auto* at = o.if_contains("at_ms"); at && at->is_number()) {
        const auto ms = at->to_number<std::int64_t>(ec);
        // A time from the future, or none: age 0. A difference that would
        // overflow is as old as it gets.
        if (!ec && ms < now_ms) {
            n.age = std::chrono::milliseconds(ms < 0 && now_ms > INT64_MAX + ms ? INT64_MAX
                                                                                : now_ms - ms);
        }
    }
    if (const auto* b = o.if_contains("backend"); b && b->is_string()) {
        n.backend = b->as_string();
    }
    if (const auto* a = o.if_contains("active"); a && a->is_string()) {
        n.active = a->as_string();
    }
    return n;
}

}  // namespace bgs::state
