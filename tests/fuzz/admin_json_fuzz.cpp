// The admin API's JSON bodies: switch, rollback, canary and upstream lists.
// Each parse gives a request or a message, never a crash or an exception.
#include "admin/api.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace bgs;
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    (void)admin::duplicate_json_key(body);
    for (bool rollback : {false, true}) {
        const auto r = admin::parse_switch_body(body, rollback);
        if (const auto* req = std::get_if<control::SwitchRequest>(&r)) {
            if (!rollback && !req->to) {
                std::abort();  // a switch without a color
            }
        }
    }
    const auto c = admin::parse_canary_body(body);
    if (const auto* req = std::get_if<control::SwitchRequest>(&c)) {
        if (!req->canary || *req->canary > 100 || (*req->canary > 0 && !req->to)) {
            std::abort();
        }
    }
    const auto u = admin::parse_upstreams_body(body, Color::Green);
    if (const auto* req = std::get_if<control::UpstreamsRequest>(&u)) {
        if (req->upstreams.empty() || req->upstreams.size() > admin::kMaxUpstreams) {
            std::abort();
        }
    }
    return 0;
}
