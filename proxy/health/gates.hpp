// The switch gates: a fresh health probe of every upstream of the target color,
// then every smoke check against every one of them. Results carry timings and
// reasons so that a refused switch says exactly what failed. Control thread.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/config/config.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/upstream.hpp"

#include <string>
#include <vector>

namespace bgs::health {

struct HealthGateResult {
    std::string upstream;
    bool healthy = false;
    unsigned status = 0;
    double latency_ms = 0;
    std::string error;
};

struct SmokeResult {
    std::string check;
    std::string upstream;
    bool passed = false;
    unsigned tries = 0;
    unsigned status = 0;
    double latency_ms = 0;
    std::string error;  // what did not match
};

struct GateReport {
    bool health_passed = false;
    unsigned healthy = 0;
    unsigned required = 0;
    double health_ms = 0;
    std::vector<HealthGateResult> health;
    bool smoke_ran = false;
    bool smoke_passed = false;
    double smoke_ms = 0;
    std::vector<SmokeResult> smoke;

    bool passed() const { return health_passed && (!smoke_ran || smoke_passed); }
};

/// Awaits every task of `tasks` concurrently on the current executor. Slot i
/// of the answer is task i's result, or `failed[i]` with `error` set to what
/// was thrown when task i threw: a check that throws is a failed check, never
/// a gate that waits forever. Defined for HealthGateResult and SmokeResult.
template <typename T>
net::Task<std::vector<T>> gather(std::vector<net::Task<T>> tasks, std::vector<T> failed);

/// Probes every upstream of `members` once, in parallel; result i is member i's.
net::Task<std::vector<HealthGateResult>> probe_health(const config::Config& cfg,
                                                      const routing::Members& members);

/// Runs every smoke check against every upstream of `members`, in parallel.
net::Task<std::vector<SmokeResult>> run_smoke(const config::Config& cfg,
                                              const routing::Members& members);

/// Both gates in order (smoke only when health passed and `with_smoke`). The
/// health gate needs at least one healthy upstream whatever min_healthy
/// says; when it passes, the upstreams that passed are marked healthy.
net::Task<GateReport> run_gates(const config::Config& cfg, const routing::Members& members,
                                bool with_smoke);

/// The first failed check of a refused gate and its reason, in words
/// ("health: 1 of 2 upstreams healthy, 2 required; 127.0.0.1:9101: status 503
/// is not expected"); empty when the gates passed.
std::string first_failure(const GateReport& g);

/// Judges a probe against a smoke check's expectations; empty when it passed.
std::string smoke_mismatch(const config::SmokeCheck& check, unsigned status,
                           const std::map<std::string, std::string>& headers,
                           const std::string& body, double latency_ms);

}  // namespace bgs::health
