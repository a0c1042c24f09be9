// Pure functions over HTTP header fields: request framing validation (the
// request-smuggling defences of RFC 9112 §6.3), hop-by-hop removal (RFC 9110
// §7.6.1) and the forwarding headers the proxy adds. No I/O; any thread.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/net/message_parser.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bgs::http {

using Fields = net::FlatFields;

/// Why a request's framing is ambiguous or invalid, or nullopt when it is sound.
/// `version` is 10 or 11. Checks: Content-Length together with Transfer-Encoding,
/// several different Content-Length values, a malformed Content-Length, a
/// Transfer-Encoding other than exactly "chunked" (in particular one whose last
/// coding is not chunked), Transfer-Encoding in HTTP/1.0, and a missing or
/// repeated Host in HTTP/1.1.
std::optional<std::string> request_framing_error(const Fields& fields, unsigned version);

/// Where a request goes: the Host the upstream gets and the target in
/// origin-form. `error` is set when the request must get 400.
struct RequestTarget {
    std::string_view host;    // the target's authority (absolute-form) or the Host field
    std::string_view target;  // origin-form ("/path?query"), or "*" for OPTIONS
    std::optional<std::string> error;
};

/// Checks the request target and the Host (RFC 9112 §3.2): origin-form as it
/// is; absolute-form ("http://a/b") becomes origin-form with its authority as
/// the Host (§3.2.2: the Host field is then ignored); "*" only with OPTIONS;
/// anything else, an authority with userinfo, or a Host value that is not a
/// host[:port] is an error. Views point into `target` and `fields`.
RequestTarget resolve_target(const Fields& fields, std::string_view method,
                             std::string_view target);

/// True when `host` is a valid Host value: a reg-name, IPv4 or [IPv6] literal,
/// with an optional port (RFC 3986 §3.2.2).
bool valid_host(std::string_view host);

/// True when the request asks for a protocol upgrade (Upgrade plus a Connection
/// field naming "upgrade").
bool is_upgrade_request(const Fields& fields, unsigned version);

/// True when a Connection field lists `token` (case-insensitive).
bool connection_has_token(const Fields& fields, std::string_view token);

/// How a message body is delimited on the wire.
enum class Framing { None, Length, Chunked, UntilClose };

/// What the proxy puts into the request it sends upstream.
struct UpstreamRequestHead {
    std::string_view method;
    std::string_view target;      // origin-form
    std::string_view host;        // Host (the upstream's address when the client sent none)
    std::string_view client_ip;   // appended to X-Forwarded-For
    std::string_view request_id;  // X-Request-Id
    /// The peer is in proxy.trusted_proxies: its X-Forwarded-For is appended
    /// to, its X-Forwarded-Proto and -Host are kept. Otherwise all three are
    /// the proxy's own.
    bool trusted_peer = false;
    bool tls = false;          // the client came over TLS: X-Forwarded-Proto https
    bool upgrade = false;      // keep Upgrade, send Connection: upgrade
    bool drop_expect = false;  // the proxy answered Expect: 100-continue itself
    Framing framing = Framing::None;
    std::uint64_t content_length = 0;
};

/// Appends the upstream request head to `out` in one pass: the request line
/// (always HTTP/1.1), Host, every end-to-end field of `in` (hop-by-hop fields,
/// the fields Connection names, Content-Length and the fields the proxy sets
/// itself are left out; Connection cannot remove those), then
/// X-Forwarded-For (a trusted peer's list plus the peer, as nginx's
/// $proxy_add_x_forwarded_for; just the peer otherwise), X-Forwarded-Proto,
/// X-Forwarded-Host, X-Request-Id, the framing, and the blank line.
void write_upstream_request_head(std::string& out, const Fields& in, const UpstreamRequestHead& h);

/// What the proxy puts into the response it sends the client.
struct ClientResponseHead {
    unsigned version = 11;  // the client's
    unsigned status = 200;
    std::string_view reason;      // the upstream's; the standard one when empty
    std::string_view request_id;  // echoed X-Request-Id
    std::string_view color;       // X-Bgswitch-Color when not empty
    /// A canary's new session is told its color by this cookie (none when
    /// the name is empty).
    std::string_view cookie_name;
    Color cookie_color = Color::Blue;
    std::uint64_t cookie_epoch = 0;
    bool cookie_secure = false;  // the client came over TLS
    bool keep_alive = true;
    bool upgrade = false;  // a 101: keep Upgrade, send Connection: upgrade
    Framing framing = Framing::None;
    std::uint64_t content_length = 0;
};

/// Appends the client response head to `out`: the status line, the end-to-end
/// fields of the upstream's response `in`, X-Request-Id, the color header, the
/// canary's session cookie, the framing and the connection decision.
void write_client_response_head(std::string& out, const Fields& in, const ClientResponseHead& h);

/// Sets `out` to the request id to use: the client's X-Request-Id when it is a
/// sane token (1..128 visible ASCII characters), a new one otherwise. `out`
/// keeps its storage, so a session reusing it allocates nothing.
void request_id_for(const Fields& in, std::string& out);

}  // namespace bgs::http
