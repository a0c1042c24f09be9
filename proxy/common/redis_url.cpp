#include "proxy/common/redis_url.hpp"

#include <charconv>
#include <utility>

namespace bgs::redis {
namespace {

bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        unsigned value = 0;
        if (i + 2 >= in.size() ||
            std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16).ptr !=
                in.data() + i + 3) {
            return false;
        }
        out += static_cast<char>(value);
        i += 2;
    }
    return true;
}

}  // namespace

std::optional<Url> Url::parse(std::string_view text, std::string* why) {
    Url u;
    if (text.starts_with("redis://")) {
        text.remove_prefix(8);
    } else if (text.starts_with("rediss://")) {
        u.tls = true;
        text.remove_prefix(9);
    } else {
        *why = "must start with redis:// or rediss://";
        return std::nullopt;
    }
    std::string_view path;
    if (const auto slash = text.find('/'); slash != std::string_view::npos) {
        path = text.substr(slash + 1);
        text = text.substr(0, slash);
    }
    if (const auto at = text.rfind('@'); at != std::string_view::npos) {
        const auto credentials = text.substr(0, at);
        text = text.substr(at + 1);
        const auto colon = credentials.find(':');
        const auto user = credentials.substr(0, colon);
        const auto password =
            colon == std::string_view::npos ? std::string_view{} : credentials.substr(colon + 1);
        if (!percent_decode(user, u.user) || !percent_decode(password, u.password)) {
            *why = "a bad %-escape in the credentials";
            return std::nullopt;
        }
        if (colon == std::string_view::npos) {  // redis://password@host: the password alone
            u.password = std::exchange(u.user, {});
        }
    }
    std::string_view host = text;
    std::string_view port;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos) {
            *why = "an IPv6 address needs its closing ]";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        const auto rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') {
                *why = "expected :port after ]";
                return std::nullopt;
            }
            port = rest.substr(1);
        }
    } else if (const auto colon = text.rfind(':'); colon != std::string_view::npos) {
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (host.empty()) {
        *why = "no host";
        return std::nullopt;
    }
    u.host = host;
    if (!port.empty()) {
        unsigned p = 0;
        const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
        if (ec != std::errc{} || end != port.data() + port.size() || p == 0 || p > 65535) {
            *why = "port must be 1..65535";
            return std::nullopt;
        }
        u.port = static_cast<std::uint16_t>(p);
    }
    if (!path.empty()) {
        const auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), u.db);
        if (ec != std::errc{} || end != path.data() + path.size() || u.db > 65535) {
            *why = "the database must be a number";
            return std::nullopt;
        }
    }
    return u;
}

std::string Url::redacted() const {
    std::string out = tls ? "rediss://" : "redis://";
    if (!user.empty() || !password.empty()) {
        out += user + (password.empty() ? "" : ":***") + "@";
    }
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return out + ":" + std::to_string(port) + "/" + std::to_string(db);
}

}  // namespace bgs::redis
