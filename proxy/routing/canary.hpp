// The canary's per-request decision (SPEC section 13): which color a live
// request's session belongs to while a share of sessions goes to the idle
// color. Pure functions over the request's fields and one ColorState
// snapshot; no allocation, no lock. Any thread.
//
// A session is one of three kinds:
//   - it sends switch.canary.sticky_header: a hash of the value (salted by the
//     canary's epoch) picks a bucket 0..9999, on the canary below percent*100,
//     so raising the percent keeps every canary session where it is;
//   - it sends the cookie: "green.17" holds the color it was given by the
//     canary that began at version 17 (a cookie of another canary is stale and
//     counts as none); a bare "green" is honoured while any canary runs (a
//     tester asking for the canary);
//   - neither: assigned at random in the share, and told its color by a
//     cookie on the response.
// Without a canary every live request goes to the active color and no
// cookie is read or set.
#pragma once

#include "proxy/net/message_parser.hpp"
#include "proxy/routing/color_state.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bgs::routing {

struct SessionCookie {
    Color color = Color::Blue;
    std::optional<std::uint64_t> epoch;  // none: a bare color
};

/// The cookie `name` among the request's Cookie fields (RFC 6265 §5.4: "a=b;
/// c=d", several fields allowed), if its value is a color, optionally with
/// ".<epoch>". The first cookie of that name wins; anything malformed is none.
std::optional<SessionCookie> find_session_cookie(const net::FlatFields& fields,
                                                 std::string_view name);

/// 0..9999, stable for one (value, epoch) across processes and restarts
/// (64-bit FNV-1a), so every instance of a fleet agrees.
unsigned sticky_bucket(std::string_view value, std::uint64_t epoch);

struct CanaryDecision {
    Color color = Color::Blue;
    bool set_cookie = false;  // the response tells the session its color
};

/// The color of a live request. `sticky_header` empty: none configured.
/// `random` is a uniform 32-bit draw, used only for a new session.
CanaryDecision decide(const ColorState::Snapshot& snap, std::uint64_t epoch,
                      const net::FlatFields& fields, std::string_view cookie_name,
                      std::string_view sticky_header, std::uint32_t random);

/// Appends the Set-Cookie field (name, line end included) telling a session
/// its color: "bgswitch_color=green.17; Path=/; HttpOnly; SameSite=Lax"
/// (plus "; Secure" over TLS).
void append_session_cookie(std::string& out, std::string_view name, Color color,
                           std::uint64_t epoch, bool secure);

}  // namespace bgs::routing
