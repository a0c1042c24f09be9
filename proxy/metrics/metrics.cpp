#include "proxy/metrics/metrics.hpp"

#include <algorithm>
#include <cstdio>

namespace bgs::metrics {

const std::array<double, Metrics::kFineBuckets>& Metrics::fine_edges() {
    static const auto edges = [] {
        std::array<double, kFineBuckets> e{};
        double edge = 0.001;
        for (auto& x : e) {
            x = edge;
            edge *= 1.25;
        }
        return e;
    }();
    return edges;
}

Metrics::Totals Metrics::totals(Color c) const {
    Totals t;
    shards_.for_each([&](const Shard& s) {
        for (const auto& n : s.requests[index(c)]) {
            t.requests += n.load(std::memory_order_relaxed);
        }
        t.errors += s.requests[index(c)][5].load(std::memory_order_relaxed);
        for (std::size_t i = 0; i < t.timed.size(); ++i) {
            t.timed[i] += s.fine[index(c)][i].load(std::memory_order_relaxed);
        }
    });
    return t;
}

void Metrics::observe(Color color, unsigned status, double seconds, bool timed) {
    const unsigned cls = status >= 100 && status < 600 ? status / 100 : 5;
    auto& shard = shards_.local();
    shard.requests[index(color)][cls].fetch_add(1, std::memory_order_relaxed);
    auto& h = shard.durations[index(color)];
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
        if (seconds <= kBuckets[i]) {
            h.buckets[i].fetch_add(1, std::memory_order_relaxed);
            break;  // cumulative counts are summed when rendering
        }
    }
    h.count.fetch_add(1, std::memory_order_relaxed);
    h.sum_us.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
    if (timed) {
        const auto& edges = fine_edges();
        const auto at = std::lower_bound(edges.begin(), edges.end(), seconds) - edges.begin();
        shard.fine[index(color)][static_cast<std::size_t>(at)].fetch_add(1,
                                                                         std::memory_order_relaxed);
    }
}

std::uint64_t Metrics::requests(Color c, unsigned status_class) const {
    return sum([&](const Shard& s) -> const auto& { return s.requests[index(c)][status_class]; });
}

std::uint64_t Metrics::ended_count(EndReason why, DrainKind kind) const {
    return sum([&](const Shard& s) -> const auto& {
        return s.ended[static_cast<std::size_t>(why)][static_cast<std::size_t>(kind)];
    });
}

std::uint64_t Metrics::error_count(std::size_t color_slot, ErrorSource source,
                                   ErrorKind kind) const {
    return sum([&](const Shard& s) -> const auto& {
        return s
            .errors[color_slot][static_cast<std::size_t>(source)][static_cast<std::size_t>(kind)];
    });
}

std::string Metrics::render(const Gauges& g) const {
    std::string out;
    char line[768];
    auto add = [&](const char* fmt, auto... args) {
        std::snprintf(line, sizeof line, fmt, args...);
        out += line;
    };
    out +=
        "# HELP bgswitch_active_color 1 for the color that receives live traffic.\n"
        "# TYPE bgswitch_active_color gauge\n";
    for (Color c : kColors) {
        add("bgswitch_active_color{color=\"%s\"} %d\n", to_string(c).data(), c == g.active ? 1 : 0);
    }
    out +=
        "# HELP bgswitch_state_version Version of the switch state.\n"
        "# TYPE bgswitch_state_version gauge\n";
    add("bgswitch_state_version %llu\n", static_cast<unsigned long long>(g.version));

    out +=
        "# HELP bgswitch_requests_total Requests answered, by color and status class.\n"
        "# TYPE bgswitch_requests_total counter\n";
    for (Color c : kColors) {
        for (unsigned cls = 1; cls <= 5; ++cls) {
            add("bgswitch_requests_total{color=\"%s\",code=\"%uxx\"} %llu\n", to_string(c).data(),
                cls, static_cast<unsigned long long>(requests(c, cls)));
        }
    }
    out +=
        "# HELP bgswitch_request_duration_seconds Time from request header to response end.\n"
        "# TYPE bgswitch_request_duration_seconds histogram\n";
    for (Color c : kColors) {
        const auto ci = index(c);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < kBuckets.size(); ++i) {
            cumulative +=
                sum([&](const Shard& s) -> const auto& { return s.durations[ci].buckets[i]; });
            add("bgswitch_request_duration_seconds_bucket{color=\"%s\",le=\"%g\"} %llu\n",
                to_string(c).data(), kBuckets[i], static_cast<unsigned long long>(cumulative));
        }
        const auto count =
            sum([&](const Shard& s) -> const auto& { return s.durations[ci].count; });
        const auto sum_us =
            sum([&](const Shard& s) -> const auto& { return s.durations[ci].sum_us; });
        add("bgswitch_request_duration_seconds_bucket{color=\"%s\",le=\"+Inf\"} %llu\n",
            to_string(c).data(), static_cast<unsigned long long>(count));
        add("bgswitch_request_duration_seconds_sum{color=\"%s\"} %.6f\n", to_string(c).data(),
            static_cast<double>(sum_us) / 1e6);
        add("bgswitch_request_duration_seconds_count{color=\"%s\"} %llu\n", to_string(c).data(),
            static_cast<unsigned long long>(count));
    }
    out +=
        "# HELP bgswitch_connections Client connections by color and what they carry.\n"
        "# TYPE bgswitch_connections gauge\n";
    static constexpr const char* kKinds[] = {"in_flight", "upgraded", "streams"};
    for (Color c : kColors) {
        for (std::size_t k = 0; k < 3; ++k) {
            add("bgswitch_connections{color=\"%s\",kind=\"%s\"} %lld\n", to_string(c).data(),
                kKinds[k], static_cast<long long>(g.connections[index(c)][k]));
        }
    }
    out +=
        "# HELP bgswitch_upstream_healthy 1 when the upstream passes its health checks.\n"
        "# TYPE bgswitch_upstream_healthy gauge\n";
    for (const auto& u : g.upstreams) {
        add("bgswitch_upstream_healthy{color=\"%s\",upstream=\"%s\"} %d\n",
            to_string(u.color).data(), u.address.c_str(), u.healthy ? 1 : 0);
    }
    out +=
        "# HELP bgswitch_switches_total Switch and rollback requests by result.\n"
        "# TYPE bgswitch_switches_total counter\n";
    for (const auto& [result, n] : g.switches) {
        add("bgswitch_switches_total{result=\"%s\"} %llu\n", result.c_str(),
            static_cast<unsigned long long>(n));
    }
    // One family per reason a connection was ended by the proxy.
    struct Family {
        EndReason reason;
        const char* name;
        const char* help;
    };
    static constexpr Family kEnded[] = {
        {EndReason::Drain, "bgswitch_drain_closed_total",
         "Connections closed at the end of a drain window."},
        {EndReason::Shutdown, "bgswitch_shutdown_closed_total", "Connections ended by a shutdown."},
    };
    static constexpr const char* kDrainKinds[] = {"websocket", "stream", "other"};
    for (const auto& f : kEnded) {
        add("# HELP %s %s\n# TYPE %s counter\n", f.name, f.help, f.name);
        for (std::size_t k = 0; k < 3; ++k) {
            add("%s{kind=\"%s\"} %llu\n", f.name, kDrainKinds[k],
                static_cast<unsigned long long>(ended_count(f.reason, static_cast<DrainKind>(k))));
        }
    }
    out +=
        "# HELP bgswitch_errors_total Errors on the data path by color, source and kind.\n"
        "# TYPE bgswitch_errors_total counter\n";
    static constexpr const char* kColorSlots[] = {"blue", "green", "none"};
    for (std::size_t c = 0; c < 3; ++c) {
        for (std::size_t src = 0; src < kErrorSources; ++src) {
            for (std::size_t k = 0; k < kErrorKinds; ++k) {
                const auto n =
                    error_count(c, static_cast<ErrorSource>(src), static_cast<ErrorKind>(k));
                if (n == 0) {
                    continue;  // the zero series would be 45 lines of noise
                }
                add("bgswitch_errors_total{color=\"%s\",source=\"%s\",kind=\"%s\"} %llu\n",
                    kColorSlots[c], to_string(static_cast<ErrorSource>(src)).data(),
                    to_string(static_cast<ErrorKind>(k)).data(),
                    static_cast<unsigned long long>(n));
            }
        }
    }
    out +=
        "# HELP bgswitch_idle_connections Keep-alive client connections waiting for their next "
        "request (parked: no session, no buffer)\n"
        "# TYPE bgswitch_idle_connections gauge\n";
    add("bgswitch_idle_connections %llu\n", static_cast<unsigned long long>(g.idle_connections));
    out +=
        "# HELP bgswitch_idle_tunnels WebSockets and other tunnels quiet on both sides (parked: "
        "no relay running)\n"
        "# TYPE bgswitch_idle_tunnels gauge\n";
    add("bgswitch_idle_tunnels %llu\n", static_cast<unsigned long long>(g.idle_tunnels));
    out +=
        "# HELP bgswitch_canary_percent The share of new sessions sent to the idle color "
        "(0: no canary)\n"
        "# TYPE bgswitch_canary_percent gauge\n";
    add("bgswitch_canary_percent %u\n", g.canary_percent);
    out +=
        "# HELP bgswitch_observe_state The observation after a switch: 0 none, 1 ok, "
        "2 inconclusive, 3 failing.\n"
        "# TYPE bgswitch_observe_state gauge\n";
    add("bgswitch_observe_state %d\n", g.observe_state);
    out +=
        "# HELP bgswitch_auto_rollbacks_total Rollbacks made by an observation on its own.\n"
        "# TYPE bgswitch_auto_rollbacks_total counter\n";
    add("bgswitch_auto_rollbacks_total %llu\n", static_cast<unsigned long long>(g.auto_rollbacks));
    out +=
        "# HELP bgswitch_state_backend_up 1 while the state backend answers (always 1 with the "
        "file backend; fleet mode: Redis).\n"
        "# TYPE bgswitch_state_backend_up gauge\n";
    add("bgswitch_state_backend_up %d\n", g.backend_up ? 1 : 0);
    if (!g.tls.empty()) {
        out +=
            "# HELP bgswitch_tls_handshakes_total TLS handshakes with clients, by listener and "
            "result.\n"
            "# TYPE bgswitch_tls_handshakes_total counter\n";
        for (const auto& t : g.tls) {
            add("bgswitch_tls_handshakes_total{listener=\"%s\",result=\"ok\"} %llu\n",
                t.listener.c_str(), static_cast<unsigned long long>(t.handshakes_ok));
            add("bgswitch_tls_handshakes_total{listener=\"%s\",result=\"failed\"} %llu\n",
                t.listener.c_str(), static_cast<unsigned long long>(t.handshakes_failed));
        }
        out +=
            "# HELP bgswitch_tls_certificate_expiry_timestamp_seconds When a listener's "
            "certificate expires (its first DNS name, else its subject CN).\n"
            "# TYPE bgswitch_tls_certificate_expiry_timestamp_seconds gauge\n";
        for (const auto& t : g.tls) {
            for (const auto& [name, at] : t.expiry) {
                add("bgswitch_tls_certificate_expiry_timestamp_seconds{listener=\"%s\",name=\"%s\"}"
                    " "
                    "%lld\n",
                    t.listener.c_str(), name.c_str(), static_cast<long long>(at));
            }
        }
    }
    out +=
        "# HELP bgswitch_reloads_total Configuration reloads by result.\n"
        "# TYPE bgswitch_reloads_total counter\n";
    static constexpr const char* kReloadResults[] = {"reloaded", "invalid", "conflict"};
    for (std::size_t i = 0; i < reloads_.size(); ++i) {
        add("bgswitch_reloads_total{result=\"%s\"} %llu\n", kReloadResults[i],
            static_cast<unsigned long long>(reloads_[i].load(std::memory_order_relaxed)));
    }
    out +=
        "# HELP bgswitch_access_log_dropped_total Access log lines dropped because the writer "
        "fell behind.\n"
        "# TYPE bgswitch_access_log_dropped_total counter\n";
    add("bgswitch_access_log_dropped_total %llu\n",
        static_cast<unsigned long long>(g.access_log_dropped));
    return out;
}

}  // namespace bgs::metrics
