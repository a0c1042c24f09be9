#include "proxy/config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <thread>

namespace bgs::config {

std::string HostPort::to_string() const {
    if (host.find(':') != std::string::npos) {
        return "[" + host + "]:" + std::to_string(port);
    }
    return host + ":" + std::to_string(port);
}

std::optional<HostPort> HostPort::parse(std::string_view text, std::string* why) {
    std::string_view host;
    std::string_view port;
    if (!text.empty() && text.front() == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            *why = "expected [ipv6]:port";
            return std::nullopt;
        }
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        in6_addr probe{};
        if (inet_pton(AF_INET6, std::string(host).c_str(), &probe) != 1) {
            *why = "not an IPv6 address";
            return std::nullopt;
        }
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            *why = "expected host:port";
            return std::nullopt;
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            *why = "IPv6 addresses are written [addr]:port";
            return std::nullopt;
        }
    }
    if (host.empty()) {
        *why = "missing host";
        return std::nullopt;
    }
    const bool host_ok = std::all_of(host.begin(), host.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
               c == '_';
    });
    if (!host_ok) {
        *why = "invalid host";
        return std::nullopt;
    }
    unsigned long value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec == std::errc::invalid_argument || end != port.data() + port.size()) {
        *why = "port is not a number";
        return std::nullopt;
    }
    if (ec == std::errc::result_out_of_range || value > 65535) {
        *why = "port out of range";
        return std::nullopt;
    }
    return HostPort{std::string(host), static_cast<std::uint16_t>(value)};
}

std::optional<Cidr> Cidr::parse(std::string_view text, std::string* why) {
    Cidr cidr;
    auto slash = text.find('/');
    std::string addr(text.substr(0, slash));
    if (inet_pton(AF_INET, addr.c_str(), cidr.addr.data()) == 1) {
        cidr.v6 = false;
    } else if (inet_pton(AF_INET6, addr.c_str(), cidr.addr.data()) == 1) {
        cidr.v6 = true;
    } else {
        *why = "not an IPv4 or IPv6 address";
        return std::nullopt;
    }
    const unsigned max_prefix = cidr.v6 ? 128 : 32;
    cidr.prefix = max_prefix;
    if (slash != std::string_view::npos) {
        auto bits = text.substr(slash + 1);
        unsigned value = 0;
        auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), value);
        if (bits.empty() || ec != std::errc{} || end != bits.data() + bits.size() ||
            value > max_prefix) {
            *why = "prefix length must be 0.." + std::to_string(max_prefix);
            return std::nullopt;
        }
        cidr.prefix = value;
    }
    return cidr;
}

bool Cidr::contains(const unsigned char* bytes, std::size_t len) const {
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (len == 16 && !v6 && std::memcmp(bytes, kMapped, 12) == 0) {
        bytes += 12;
        len = 4;
    }
    if ((len == 16) != v6) {
        return false;
    }
    unsigned full = prefix / 8;
    if (std::memcmp(bytes, addr.data(), full) != 0) {
        return false;
    }
    unsigned rest = prefix % 8;
    if (rest == 0) {
        return true;
    }
    unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
    return (bytes[full] & mask) == (addr[full] & mask);
}

std::vector<Cidr> loopback_networks() {
    std::string why;
    return {*Cidr::parse("127.0.0.0/8", &why), *Cidr::parse("::1/128", &why)};
}

unsigned Config::worker_count() const {
    if (proxy.workers > 0) {
        return proxy.workers;
    }
    return std::max(1u, std::thread::hardware_concurrency());
}

bool is_loopback_host(const std::string& host) {
    if (host == "localhost" || host == "::1") {
        return true;
    }
    in_addr v4{};
    if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
        return (ntohl(v4.s_addr) >> 24) == 127;
    }
    return false;
}

std::vector<std::string> changed_keys(const Config& a, const Config& b) {
    std::vector<std::string> out;
    auto note = [&](bool differs, const char* key) {
        if (differs) {
            out.emplace_back(key);
        }
    };
    note(a.listen != b.listen || a.listen_tls != b.listen_tls, "listen");
    note(a.preview != b.preview || a.preview_tls != b.preview_tls, "preview");
    note(a.admin.address != b.admin.address, "admin.address");
    note(a.admin.token != b.admin.token, "admin.token");
    note(a.admin.allow != b.admin.allow, "admin.allow");
    note(a.colors[0] != b.colors[0], "colors.blue.upstreams");
    note(a.colors[1] != b.colors[1], "colors.green.upstreams");
    note(a.resolver != b.resolver, "resolver");
    note(a.health != b.health, "health");
    note(a.smoke != b.smoke, "smoke");
    note(a.switching != b.switching, "switch");
    note(a.state_file != b.state_file, "state.file");
    note(a.fleet.has_value() != b.fleet.has_value(), "state.backend");
    note(a.fleet && b.fleet && *a.fleet != *b.fleet, "state.redis");
    note(a.proxy.workers != b.proxy.workers, "proxy.workers");
    note(a.proxy.expose_color_header != b.proxy.expose_color_header, "proxy.expose_color_header");
    note(a.proxy.trusted_proxies != b.proxy.trusted_proxies, "proxy.trusted_proxies");
    note(a.timeouts.connect != b.timeouts.connect, "timeouts.connect");
    note(a.timeouts.header_read != b.timeouts.header_read, "timeouts.header_read");
    note(a.timeouts.idle != b.timeouts.idle, "timeouts.idle");
    note(a.timeouts.upstream_response != b.timeouts.upstream_response,
         "timeouts.upstream_response");
    note(a.timeouts.shutdown != b.timeouts.shutdown, "timeouts.shutdown");
    note(a.limits.max_header_bytes != b.limits.max_header_bytes, "limits.max_header_bytes");
    note(a.limits.max_body_bytes != b.limits.max_body_bytes, "limits.max_body_bytes");
    note(a.limits.max_connections != b.limits.max_connections, "limits.max_connections");
    note(a.log.level != b.log.level, "log.level");
    note(a.log.access != b.log.access, "log.access");
    note(a.log.format != b.log.format, "log.format");
    return out;
}

bool needs_restart(const std::string& key) {
    return key == "proxy.workers" || key == "state.file" || key == "state.backend" ||
           key == "state.redis" || key == "admin.address";
}

}  // namespace bgs::config
