// Process-wide counters and histograms of the data plane (relaxed atomics in
// per-thread shards, any thread) and their Prometheus text rendering (control
// thread).
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/shards.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bgs::metrics {

enum class DrainKind : std::uint8_t { WebSocket = 0, Stream = 1, Other = 2 };

class Metrics {
  public:
    static constexpr std::array<double, 11> kBuckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                     0.5,   1.0,  2.5,   5.0,  10.0};

    /// One request answered for `color` (routed requests only).
    void observe(Color color, unsigned status, double seconds);
    void drain_closed(DrainKind kind) {
        shards_.local().drain_closed[static_cast<std::size_t>(kind)].fetch_add(
            1, std::memory_order_relaxed);
    }

    std::uint64_t requests(Color c, unsigned status_class) const;
    std::uint64_t drain_closed_count(DrainKind kind) const;

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
        std::uint64_t access_log_dropped = 0;
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
        std::array<std::atomic<std::uint64_t>, 3> drain_closed{};
    };
    template <typename F>
    std::uint64_t sum(F&& field) const {
        std::uint64_t total = 0;
        shards_.for_each(
            [&](const Shard& s) { total += field(s).load(std::memory_order_relaxed); });
        return total;
    }
    Sharded<Shard> shards_;
};

}  // namespace bgs::metrics
