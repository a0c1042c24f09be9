// Process-wide counters and histograms of the data plane (relaxed atomics in
// per-thread shards, any thread) and their Prometheus text rendering (control
// thread).
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/error.hpp"
#include "proxy/common/shards.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bgs::metrics {

/// What kind of long-lived connection was ended, and why.
enum class DrainKind : std::uint8_t { WebSocket = 0, Stream = 1, Other = 2 };
enum class EndReason : std::uint8_t { Drain = 0, Shutdown = 1 };

class Metrics {
  public:
    static constexpr std::array<double, 11> kBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,   1.0,  2.5,   5.0,  10.0};

    /// One request answered for `color` (routed requests only). `timed`: its
    /// duration says how fast the color answers (false for streams and
    /// upgraded connections, long by design); those also feed the fine
    /// histogram an observation's p99 is read from.
    void observe(Color color, unsigned status, double seconds, bool timed = true);

    /// Upper edges, in seconds, of the fine duration buckets (1 ms growing by
    /// 25 % to about 36 s; the last bucket takes everything longer).
    static constexpr std::size_t kFineBuckets = 48;
    static const std::array<double, kFineBuckets>& fine_edges();

    /// Cumulative figures of one color since start, for windows taken by
    /// differences (the observation of a switch).
    struct Totals {
        std::uint64_t requests = 0;
        std::uint64_t errors = 0;  // 5xx: the upstream's and the proxy's own 502/504
        std::array<std::uint64_t, kFineBuckets + 1> timed{};  // fine buckets, then overflow
    };
    Totals totals(Color c) const;
    /// A WebSocket, stream or other tunnel ended by the proxy for `why`.
    void ended(EndReason why, DrainKind kind) {
        shards_.local()
            .ended[static_cast<std::size_t>(why)][static_cast<std::size_t>(kind)]
            .fetch_add(1, std::memory_order_relaxed);
    }
    /// An error on the data path; `color` is unset when the request had none yet.
    void error(const std::optional<Color>& color, ErrorSource source, ErrorKind kind) {
        shards_.local()
            .errors[color ? index(*color) : 2][static_cast<std::size_t>(source)]
                   [static_cast<std::size_t>(kind)]
            .fetch_add(1, std::memory_order_relaxed);
    }

    /// A configuration reload ended: applied (0), refused as invalid (1) or
    /// refused during a switch (2). Control thread.
    void reloaded(std::size_t outcome) {
        reloads_[std::min<std::size_t>(outcome, 2)].fetch_add(1, std::memory_order_relaxed);
    }

    std::uint64_t requests(Color c, unsigned status_class) const;
    std::uint64_t ended_count(EndReason why, DrainKind kind) const;
    std::uint64_t error_count(std::size_t color_slot, ErrorSource source, ErrorKind kind) const;

    /// Values owned elsewhere that the exposition includes.
    struct Gauges {
        Color active = Color::Blue;
        std::uint64_t version = 0;
        std::array<std::array<std::int64_t, 3>, 2>
            connections{};  // [color][in_flight, upgraded, streams]
        struct Upstream {
            Color color;
            std::string address;
            bool healthy;
        };
        std::vector<Upstream> upstreams;
        std::map<std::string, std::uint64_t> switches;  // by result
        unsigned canary_percent = 0;                    // of new sessions, to the idle color
        int observe_state = 0;                          // 0 none, 1 ok, 2 inconclusive, 3 failing
        std::uint64_t auto_rollbacks = 0;
        std::uint64_t access_log_dropped = 0;
        std::uint64_t idle_connections = 0;  // keep-alive clients parked between requests
        std::uint64_t idle_tunnels = 0;      // WebSockets parked while both sides are quiet
        bool backend_up = true;              // the state backend (the file, or Redis in fleet mode)
        struct TlsListener {
            std::string listener;  // its address
            std::uint64_t handshakes_ok = 0;
            std::uint64_t handshakes_failed = 0;
            std::vector<std::pair<std::string, std::int64_t>> expiry;  // name, unix seconds
        };
        std::vector<TlsListener> tls;
    };

    /// Prometheus text exposition format 0.0.4.
    std::string render(const Gauges& g) const;

  private:
    struct Histogram {
        std::array<std::atomic<std::uint64_t>, kBuckets.size()> buckets{};
        std::atomic<std::uint64_t> count{0};
        std::atomic<std::uint64_t> sum_us{0};
    };
    struct Shard {
        std::array<std::array<std::atomic<std::uint64_t>, 6>, 2> requests{};  // [color][1xx..5xx]
        std::array<Histogram, 2> durations{};
        std::array<std::array<std::atomic<std::uint64_t>, kFineBuckets + 1>, 2> fine{};
        std::array<std::array<std::atomic<std::uint64_t>, 3>, 2> ended{};  // [reason][kind]
        // [blue, green, none][source][kind]
        std::array<std::array<std::array<std::atomic<std::uint64_t>, kErrorKinds>, kErrorSources>,
                   3>
            errors{};
    };
    template <typename F>
    std::uint64_t sum(F&& field) const {
        std::uint64_t total = 0;
        shards_.for_each(
            [&](const Shard& s) { total += field(s).load(std::memory_order_relaxed); });
        return total;
    }
    Sharded<Shard> shards_;
    std::array<std::atomic<std::uint64_t>, 3> reloads_{};
};

}  // namespace bgs::metrics
