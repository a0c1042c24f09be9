#include "proxy/http/headers.hpp"

#include "proxy/common/random.hpp"
#include "proxy/routing/canary.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/container/small_vector.hpp>

#include <algorithm>

namespace bgs::http {
namespace bh = boost::beast::http;
using boost::beast::iequals;

namespace {

boost::beast::string_view bsv(std::string_view s) {
    return {s.data(), s.size()};
}

// Calls `f` with the value of every instance of `field`.
template <typename F>
void for_each_value(const Fields& fields, bh::field field, F&& f) {
    for (const auto& x : fields) {
        if (x.name() == field) {
            f(x.value());
        }
    }
}

// Every comma-separated token of every instance of `field`, whitespace trimmed.
// Headers name a handful of tokens at most; those stay off the heap.
using Tokens = boost::container::small_vector<std::string_view, 8>;
Tokens list_tokens(const Fields& fields, bh::field field) {
    Tokens out;
    for_each_value(fields, field, [&](std::string_view value) {
        std::size_t pos = 0;
        while (pos <= value.size()) {
            auto comma = value.find(',', pos);
            if (comma == std::string_view::npos) {
                comma = value.size();
            }
            auto token = value.substr(pos, comma - pos);
            while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
                token.remove_prefix(1);
            }
            while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
                token.remove_suffix(1);
            }
            if (!token.empty()) {
                out.push_back(token);
            }
            pos = comma + 1;
        }
    });
    return out;
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::optional<std::string> request_framing_error(const Fields& fields, unsigned version) {
    const bool has_te = fields.count(bh::field::transfer_encoding) > 0;
    const bool has_cl = fields.count(bh::field::content_length) > 0;
    if (has_te && has_cl) {
        return "both Content-Length and Transfer-Encoding";
    }
    if (has_te) {
        if (version < 11) {
            return "Transfer-Encoding in an HTTP/1.0 request";
        }
        auto codings = list_tokens(fields, bh::field::transfer_encoding);
        if (codings.empty() || !iequals(codings.back(), "chunked")) {
            return "Transfer-Encoding does not end with chunked";
        }
        if (codings.size() != 1) {
            return "unsupported Transfer-Encoding (only chunked is accepted)";
        }
    }
    if (has_cl) {
        auto values = list_tokens(fields, bh::field::content_length);
        if (values.empty()) {
            return "invalid Content-Length";
        }
        for (auto v : values) {
            if (!all_digits(v) || v.size() > 18) {
                return "invalid Content-Length";
            }
        }
        // Leading zeros make "5" and "005" the same length; compare numerically.
        auto number = [](std::string_view v) { return std::stoull(std::string(v)); };
        const auto first = number(values.front());
        for (auto v : values) {
            if (number(v) != first) {
                return "several different Content-Length values";
            }
        }
    }
    if (version >= 11) {
        const auto hosts = fields.count(bh::field::host);
        if (hosts == 0) {
            return "missing Host";
        }
        if (hosts > 1) {
            return "several Host fields";
        }
    }
    return std::nullopt;
}

namespace {

bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 3986 reg-name: unreserved / pct-encoded / sub-delims (IPv4 fits too).
bool valid_reg_name(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (is_alnum(c) || std::string_view("-._~!$&'()*+,;=").find(c) != std::string_view::npos) {
            continue;
        }
        if (c == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            i += 2;
            continue;
        }
        return false;
    }
    return true;
}

}  // namespace

bool valid_host(std::string_view host) {
    if (host.empty()) {
        return false;
    }
    std::string_view name = host;
    std::string_view port;
    if (host.front() == '[') {
        const auto close = host.find(']');
        if (close == std::string_view::npos || close < 3) {
            return false;
        }
        const auto literal = host.substr(1, close - 1);
        const bool ok = std::all_of(literal.begin(), literal.end(),
                                    [](char c) { return is_hex(c) || c == ':' || c == '.'; });
        if (!ok) {
            return false;
        }
        const auto rest = host.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                return false;
            }
            port = rest.substr(1);
        }
        name = {};
    } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
        name = host.substr(0, colon);
        port = host.substr(colon + 1);
        if (name.empty()) {
            return false;
        }
    }
    if (!port.empty() && (!all_digits(port) || port.size() > 5)) {
        return false;
    }
    return valid_reg_name(name);
}

RequestTarget resolve_target(const Fields& fields, std::string_view method,
                             std::string_view target) {
    RequestTarget out;
    if (const auto host = fields.find(bh::field::host)) {
        out.host = host->value();
        if (!valid_host(out.host)) {
            out.error = "invalid Host";
        }
    }
    if (!target.empty() && target.front() == '/') {
        out.target = target;
        return out;
    }
    if (target == "*") {
        if (method != "OPTIONS") {
            out.error = "asterisk-form target outside OPTIONS";
        }
        out.target = target;
        return out;
    }
    // absolute-form: scheme "://" authority [path-abempty] ["?" query]
    const auto sep = target.find("://");
    const auto scheme = target.substr(0, sep == std::string_view::npos ? 0 : sep);
    if (sep == std::string_view::npos ||
        !(iequals(bsv(scheme), "http") || iequals(bsv(scheme), "https"))) {
        out.error = "request target is not origin-form or an http(s) absolute URI";
        return out;
    }
    const auto rest = target.substr(sep + 3);
    const auto end = std::min(rest.find_first_of("/?#"), rest.size());
    const auto authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) {
        out.error = "userinfo in the request target";
        return out;
    }
    if (!valid_host(authority)) {
        out.error = "invalid authority in the request target";
        return out;
    }
    out.host = authority;
    out.error.reset();  // the target's authority wins over a Host field (§3.2.2)
    // "http://a" and "http://a?x" have an empty path; the head writer puts
    // the "/" that origin-form needs in front.
    out.target = rest.substr(end);
    if (!out.target.empty() && out.target.front() == '#') {
        out.target = {};
    }
    return out;
}

bool connection_has_token(const Fields& fields, std::string_view token) {
    auto tokens = list_tokens(fields, bh::field::connection);
    return std::any_of(tokens.begin(), tokens.end(),
                       [&](std::string_view t) { return iequals(t, token); });
}

bool is_upgrade_request(const Fields& fields, unsigned version) {
    return version >= 11 && fields.count(bh::field::upgrade) > 0 &&
           connection_has_token(fields, "upgrade");
}

namespace {

void append(std::string& out, boost::beast::string_view s) {
    out.append(s.data(), s.size());
}

void append_number(std::string& out, std::uint64_t n) {
    char buf[24];
    char* end = buf + sizeof buf;
    char* p = end;
    do {
        *--p = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n != 0);
    out.append(p, static_cast<std::size_t>(end - p));
}

bool is_forwarding_field(std::string_view sname) {
    const auto name = bsv(sname);
    return iequals(name, "X-Forwarded-For") || iequals(name, "X-Forwarded-Proto") ||
           iequals(name, "X-Forwarded-Host") || iequals(name, "X-Request-Id") ||
           iequals(name, "X-Bgswitch-Color");
}

// The end-to-end fields of `in`, each as "Name: value\r\n". Hop-by-hop fields
// (RFC 9110 §7.6.1) and those the Connection field names are left out, and so
// are the framing fields, which the caller writes for what it actually sends.
// `skip` sees each field first: what the caller writes itself (Host, the
// forwarding fields) is skipped there, so Connection can never remove it.
template <typename Skip>
void append_end_to_end(std::string& out, const Fields& in, bool keep_upgrade, Skip&& skip) {
    const auto named = list_tokens(in, bh::field::connection);
    for (const auto& f : in) {
        switch (f.name()) {
            case bh::field::connection:
            case bh::field::keep_alive:
            case bh::field::proxy_connection:
            case bh::field::te:
            case bh::field::trailer:
            case bh::field::transfer_encoding:
            case bh::field::content_length:
                continue;
            case bh::field::upgrade:
                if (!keep_upgrade) {
                    continue;
                }
                break;
            default:
                break;
        }
        const std::string_view name = f.name_string();
        if (skip(f.name(), name)) {
            continue;
        }
        if (!named.empty()) {
            const bool listed = std::any_of(named.begin(), named.end(), [&](std::string_view t) {
                return iequals(bsv(t), bsv(name)) && !(keep_upgrade && iequals(bsv(t), "upgrade"));
            });
            if (listed) {
                continue;
            }
        }
        out.append(name);
        out += ": ";
        out.append(f.value());
        out += "\r\n";
    }
}

void append_framing(std::string& out, Framing framing, std::uint64_t length) {
    if (framing == Framing::Length) {
        out += "Content-Length: ";
        append_number(out, length);
        out += "\r\n";
    } else if (framing == Framing::Chunked) {
        out += "Transfer-Encoding: chunked\r\n";
    }
}

}  // namespace

void write_upstream_request_head(std::string& out, const Fields& in, const UpstreamRequestHead& h) {
    out.append(h.method);
    out += ' ';
    if (h.target.empty() || h.target.front() == '?') {
        out += '/';
    }
    out.append(h.target);
    out += " HTTP/1.1\r\nHost: ";
    out.append(h.host);
    out += "\r\n";
    std::string_view proto;
    std::string_view forwarded_host;
    append_end_to_end(out, in, h.upgrade, [&](bh::field f, std::string_view name) {
        if (f == bh::field::host || (f == bh::field::expect && h.drop_expect)) {
            return true;
        }
        if (f == bh::field::unknown && is_forwarding_field(name)) {
            if (h.trusted_peer && proto.empty() && iequals(bsv(name), "X-Forwarded-Proto")) {
                proto = in.find(name)->value();
            } else if (h.trusted_peer && forwarded_host.empty() &&
                       iequals(bsv(name), "X-Forwarded-Host")) {
                forwarded_host = in.find(name)->value();
            }
            return true;
        }
        return false;
    });
    out += "X-Forwarded-For: ";
    if (h.trusted_peer) {
        for (const auto& f : in) {
            if (f.name() == bh::field::unknown &&
                iequals(bsv(f.name_string()), "X-Forwarded-For")) {
                out.append(f.value());
                out += ", ";
            }
        }
    }
    out.append(h.client_ip);
    out += "\r\nX-Forwarded-Proto: ";
    out.append(!proto.empty() ? proto
               : h.tls        ? std::string_view("https")
                              : std::string_view("http"));
    out += "\r\nX-Forwarded-Host: ";
    out.append(forwarded_host.empty() ? h.host : forwarded_host);
    out += "\r\nX-Request-Id: ";
    out.append(h.request_id);
    out += "\r\n";
    append_framing(out, h.framing, h.content_length);
    if (h.upgrade) {
        out += "Connection: upgrade\r\n";
    }
    out += "\r\n";
}

void write_client_response_head(std::string& out, const Fields& in, const ClientResponseHead& h) {
    out += h.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_number(out, h.status);
    out += ' ';
    if (h.reason.empty()) {
        append(out, bh::obsolete_reason(bh::int_to_status(h.status)));
    } else {
        out.append(h.reason);
    }
    out += "\r\n";
    append_end_to_end(out, in, h.upgrade, [](bh::field f, std::string_view name) {
        return f == bh::field::unknown &&
               (iequals(bsv(name), "X-Request-Id") || iequals(bsv(name), "X-Bgswitch-Color"));
    });
    out += "X-Request-Id: ";
    out.append(h.request_id);
    out += "\r\n";
    if (!h.color.empty()) {
        out += "X-Bgswitch-Color: ";
        out.append(h.color);
        out += "\r\n";
    }
    if (!h.cookie_name.empty()) {
        routing::append_session_cookie(out, h.cookie_name, h.cookie_color, h.cookie_epoch,
                                       h.cookie_secure);
    }
    append_framing(out, h.framing, h.content_length);
    if (h.upgrade) {
        out += "Connection: upgrade\r\n";
    } else if (h.version == 10 && h.keep_alive) {
        out += "Connection: keep-alive\r\n";
    } else if (h.version != 10 && !h.keep_alive) {
        out += "Connection: close\r\n";
    }
    out += "\r\n";
}

void request_id_for(const Fields& in, std::string& out) {
    if (const auto id = in.find("X-Request-Id")) {
        const auto v = id->value();
        const bool sane =
            !v.empty() && v.size() <= 128 &&
            std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; });
        if (sane) {
            out.assign(v);
            return;
        }
    }
    make_request_id(out);
}

}  // namespace bgs::http
