// The configuration as plain structs, filled by the loader (loader.hpp) or in code
// (the demo, tests). Immutable once the server starts; any thread may read it.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/units.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bgs::config {

/// A "host:port" or "[v6]:port" address, as written in the file.
struct HostPort {
    std::string host;
    std::uint16_t port = 0;

    std::string to_string() const;
    /// Parses "127.0.0.1:80", "[::1]:80", "name:80". On failure returns the reason.
    static std::optional<HostPort> parse(std::string_view text, std::string* why);

    bool operator==(const HostPort&) const = default;
};

/// An IPv4 or IPv6 network in CIDR notation, e.g. 127.0.0.0/8.
struct Cidr {
    bool v6 = false;
    std::array<unsigned char, 16> addr{};
    unsigned prefix = 0;

    static std::optional<Cidr> parse(std::string_view text, std::string* why);
    /// True when the 4- or 16-byte address `bytes` lies inside this network.
    /// IPv4-mapped IPv6 addresses match IPv4 networks.
    bool contains(const unsigned char* bytes, std::size_t len) const;

    bool operator==(const Cidr&) const = default;
};

/// 127.0.0.0/8 and ::1/128: the default admin.allow.
std::vector<Cidr> loopback_networks();

struct Resolver {
    Duration refresh = std::chrono::seconds(5);
    bool operator==(const Resolver&) const = default;
};

struct Admin {
    HostPort address{"127.0.0.1", 9901};
    std::string token;  // resolved from token, ${VAR} or token_file; empty = none
    std::vector<Cidr> allow = loopback_networks();

    bool operator==(const Admin&) const = default;
};

/// TLS to a color's upstreams (SPEC section 8).
struct UpstreamTls {
    std::string ca;           // PEM bundle; empty: the system's trust store
    std::string server_name;  // SNI and the name to verify; empty: each upstream's host
    bool verify = true;
    std::string cert;  // client certificate and key (optional)
    std::string key;

    bool operator==(const UpstreamTls&) const = default;
};

struct ColorGroup {
    std::vector<HostPort> upstreams;
    std::optional<UpstreamTls> tls;

    bool operator==(const ColorGroup&) const = default;
};

struct Health {
    std::string path = "/health";
    Duration interval = std::chrono::seconds(2);
    Duration timeout = std::chrono::seconds(1);
    unsigned healthy_threshold = 2;
    unsigned unhealthy_threshold = 3;
    std::vector<unsigned> expect_status{200};

    bool operator==(const Health&) const = default;
};

struct SmokeExpect {
    unsigned status = 200;
    std::optional<std::string> body_contains;
    std::map<std::string, std::string> headers;
    std::optional<Duration> max_latency;

    bool operator==(const SmokeExpect&) const = default;
};

struct SmokeCheck {
    std::string name;
    unsigned retries = 0;  // more tries after a failed one, each after retry_interval
    Duration retry_interval = std::chrono::seconds(1);
    std::string method = "GET";
    std::string path;
    std::map<std::string, std::string> headers;
    std::string body;
    SmokeExpect expect;

    bool operator==(const SmokeCheck&) const = default;
};

/// When an observation after a switch rolls back on its own (SPEC section 10).
struct AutoRollback {
    double max_error_ratio = 0.05;                      // 5xx / all requests
    Duration max_p99 = std::chrono::milliseconds(800);  // of request durations
    Duration window = std::chrono::seconds(30);         // the sliding window judged
    unsigned min_requests = 50;                         // fewer: "inconclusive"

    bool operator==(const AutoRollback&) const = default;
};

/// How a canary keeps a session on one color (SPEC section 13).
struct Canary {
    std::string cookie = "bgswitch_color";
    std::string sticky_header;  // empty: none; sessions are kept by the cookie

    bool operator==(const Canary&) const = default;
};

struct Switch {
    std::optional<unsigned> min_healthy;  // nullopt = all
    Duration drain_timeout = std::chrono::seconds(90);
    Duration close_spread = Duration{0};
    Duration observe = Duration{0};  // 0 = no observation after a switch
    AutoRollback auto_rollback;
    Canary canary;

    bool operator==(const Switch&) const = default;
};

struct Proxy {
    unsigned workers = 0;  // 0 = one per core
    bool expose_color_header = false;
    /// Peers whose X-Forwarded-* the proxy keeps (a load balancer in front);
    /// from any other peer they are replaced.
    std::vector<Cidr> trusted_proxies;

    bool operator==(const Proxy&) const = default;
};

struct Timeouts {
    Duration connect = std::chrono::seconds(2);
    Duration header_read = std::chrono::seconds(10);
    Duration idle = std::chrono::seconds(60);
    Duration upstream_response = std::chrono::seconds(60);
    Duration shutdown = std::chrono::seconds(30);

    bool operator==(const Timeouts&) const = default;
};

struct Limits {
    std::uint64_t max_header_bytes = 16 * 1024;
    std::uint64_t max_body_bytes = 10 * 1024 * 1024;
    std::uint64_t max_connections = 10000;

    bool operator==(const Limits&) const = default;
};

enum class LogFormat { Text, Json };

struct Log {
    std::string level = "info";
    std::string access = "stdout";  // stdout | stderr | off | a file path
    LogFormat format = LogFormat::Text;

    bool operator==(const Log&) const = default;
};

/// A listener's TLS (SPEC section 8).
struct ListenerTls {
    struct Certificate {
        std::string cert;  // PEM file: the certificate and its chain
        std::string key;   // PEM file: its private key
        bool operator==(const Certificate&) const = default;
    };
    std::vector<Certificate> certificates;  // chosen by SNI; the first is the default
    bool tls13_only = false;                // min_version "1.3" (else "1.2")

    bool operator==(const ListenerTls&) const = default;
};

/// state.backend: redis (SPEC section 12): the fleet's record in Redis.
struct Fleet {
    std::string url;   // redis://[[user]:password@]host[:port][/db], ${VAR} expanded
    std::string key;   // the fleet's name: instances with the same key switch together
    std::string node;  // this instance's name in the fleet (default: the host name)

    bool operator==(const Fleet&) const = default;
};

struct Config {
    std::vector<HostPort> listen;
    std::vector<std::optional<ListenerTls>> listen_tls;  // listen[i]'s TLS, same order
    std::optional<HostPort> preview;
    std::optional<ListenerTls> preview_tls;
    Admin admin;
    std::array<ColorGroup, 2> colors;  // indexed by bgs::index(Color)
    Color active = Color::Blue;
    Resolver resolver;
    Health health;
    std::vector<SmokeCheck> smoke;
    Switch switching;
    std::string state_file = "/var/lib/bgswitch/state.json";
    std::optional<Fleet> fleet;  // state.backend: redis; none: file (the default)
    Proxy proxy;
    Timeouts timeouts;
    Limits limits;
    Log log;

    const ColorGroup& group(Color c) const { return colors[index(c)]; }
    /// listen[i]'s TLS (none for plain TCP, and in configurations made in code).
    std::optional<ListenerTls> tls_of_listen(std::size_t i) const {
        return i < listen_tls.size() ? listen_tls[i] : std::nullopt;
    }
    /// proxy.workers with "auto" resolved to the number of cores (at least 1).
    unsigned worker_count() const;
};

/// The keys whose values differ between `a` and `b` ("listen",
/// "colors.green.upstreams", "timeouts.idle", ...), in file order. `active`
/// is not compared: the file's active applies to a first start only.
std::vector<std::string> changed_keys(const Config& a, const Config& b);

/// Of those, the ones a running proxy cannot apply (proxy.workers,
/// state.file, state.backend, state.redis, admin.address).
bool needs_restart(const std::string& key);

/// True for 127.0.0.0/8, ::1 and "localhost".
bool is_loopback_host(const std::string& host);

}  // namespace bgs::config
