// Pure functions over HTTP header fields: request framing validation (the
// request-smuggling defences of RFC 9112 §6.3), hop-by-hop removal (RFC 9110
// §7.6.1) and the forwarding headers the proxy adds. No I/O; any thread.
#pragma once

#include <boost/beast/http/fields.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace bgs::http {

using Fields = boost::beast::http::fields;

/// Why a request's framing is ambiguous or invalid, or nullopt when it is sound.
/// `version` is 10 or 11. Checks: Content-Length together with Transfer-Encoding,
/// several different Content-Length values, a malformed Content-Length, a
/// Transfer-Encoding other than exactly "chunked" (in particular one whose last
/// coding is not chunked), Transfer-Encoding in HTTP/1.0, and a missing or
/// repeated Host in HTTP/1.1.
std::optional<std::string> request_framing_error(const Fields& fields, unsigned version);

/// True when the request asks for a protocol upgrade (Upgrade plus a Connection
/// field naming "upgrade").
bool is_upgrade_request(const Fields& fields, unsigned version);

/// True when a Connection field lists `token` (case-insensitive).
bool connection_has_token(const Fields& fields, std::string_view token);

/// Copies every end-to-end field of `from` into `to`: drops Connection, the
/// fields it names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
/// Upgrade and Content-Length (the caller sets the framing it sends). When
/// `keep_upgrade` the Upgrade field is kept, for a tunnel handshake.
void copy_end_to_end(const Fields& from, Fields& to, bool keep_upgrade);

struct ForwardedInfo {
    std::string_view client_ip;  // the TCP peer
    std::string_view proto;      // "http"
};

/// Adds X-Forwarded-For (appending the peer to what the client sent, as nginx's
/// $proxy_add_x_forwarded_for does), X-Forwarded-Proto and X-Forwarded-Host
/// (the client's Host) to `out`, replacing client-sent Proto and Host values.
void add_forwarded(const Fields& in, Fields& out, const ForwardedInfo& info);

/// The request id to use: the client's X-Request-Id when it is a sane token
/// (1..128 visible ASCII characters), a new one otherwise.
std::string request_id_for(const Fields& in);

}  // namespace bgs::http
