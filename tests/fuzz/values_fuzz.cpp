// The small parsers for values from outside: durations, sizes, host:port,
// CIDR networks, Redis URLs (config and admin API), and the canary's session
// cookie (every request during a canary). What parses prints back to
// something that parses to the same.
#include "proxy/common/redis_url.hpp"
#include "proxy/common/units.hpp"
#include "proxy/config/config.hpp"
#include "proxy/routing/canary.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace bgs;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    std::string why;
    if (const auto d = parse_duration(text)) {
        if (*d > kMaxDuration || *d < Duration{0} || parse_duration(format_duration(*d)) != d) {
            std::abort();
        }
    }
    (void)parse_size(text);
    if (const auto hp = config::HostPort::parse(text, &why)) {
        const auto back = config::HostPort::parse(hp->to_string(), &why);
        if (!back || back->to_string() != hp->to_string()) {
            std::abort();
        }
    }
    (void)config::Cidr::parse(text, &why);
    (void)redis::Url::parse(text, &why);

    net::FlatFields fields;
    fields.insert("Cookie", text);
    fields.insert("X-User-Id", text);
    (void)routing::find_session_cookie(fields, "bgswitch_color");
    const routing::ColorState::Snapshot snap{Color::Blue, 9, 37};
    const auto d = routing::decide(snap, 9, fields, "bgswitch_color", "", 12345);
    const auto h = routing::decide(snap, 9, fields, "bgswitch_color", "X-User-Id", 12345);
    if (d.color != Color::Blue && d.color != Color::Green) {
        std::abort();
    }
    if (h.set_cookie && !text.empty()) {
        std::abort();  // a sticky header's session gets no cookie
    }
    return 0;
}
