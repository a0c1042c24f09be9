#include "proxy/control/observer.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/control/switcher.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace bgs::control {

namespace asio = net::asio;
using Clock = std::chrono::steady_clock;

const char* to_string(Verdict v) {
    switch (v) {
        case Verdict::Ok:
            return "ok";
        case Verdict::Inconclusive:
            return "inconclusive";
        case Verdict::Failing:
            return "failing";
    }
    return "inconclusive";
}

namespace {

// The 99th percentile of a fine histogram, interpolated within its bucket.
std::optional<double> p99_of(
    const std::array<std::uint64_t, metrics::Metrics::kFineBuckets + 1>& h) {
    std::uint64_t total = 0;
    for (auto n : h) {
        total += n;
    }
    if (total == 0) {
        return std::nullopt;
    }
    const auto& edges = metrics::Metrics::fine_edges();
    const double rank = std::ceil(0.99 * static_cast<double>(total));
    double below = 0;
    for (std::size_t i = 0; i < h.size(); ++i) {
        if (h[i] == 0 || below + static_cast<double>(h[i]) < rank) {
            below += static_cast<double>(h[i]);
            continue;
        }
        const double lower = i == 0 ? 0.0 : edges[i - 1];
        const double upper = i < edges.size() ? edges[i] : edges.back() * 1.25;
        const double share = (rank - below) / static_cast<double>(h[i]);
        return (lower + (upper - lower) * share) * 1000.0;
    }
    return edges.back() * 1000.0;
}

}  // namespace

void ObserveWindow::add(TimePoint t, const metrics::Metrics::Totals& totals, Duration keep) {
    samples_.emplace_back(t, totals);
    // One sample at or before the window's start stays: it is the window's base.
    while (samples_.size() > 2 && samples_[1].first <= t - keep) {
        samples_.pop_front();
    }
}

ObserveFigures ObserveWindow::figures(Duration window) const {
    ObserveFigures f;
    if (samples_.size() < 2) {
        return f;
    }
    const auto& [newest_t, newest] = samples_.back();
    // The base: the newest sample at or before the window's start (the
    // oldest one while the window is not full yet).
    auto from = samples_.begin();
    while (std::next(from) != std::prev(samples_.end()) &&
           std::next(from)->first <= newest_t - window) {
        ++from;
    }
    const auto& oldest = from->second;
    f.span = std::chrono::duration_cast<Duration>(newest_t - from->first);
    f.requests = newest.requests - oldest.requests;
    f.errors = newest.errors - oldest.errors;
    f.error_ratio =
        f.requests == 0 ? 0.0 : static_cast<double>(f.errors) / static_cast<double>(f.requests);
    std::array<std::uint64_t, metrics::Metrics::kFineBuckets + 1> timed{};
    for (std::size_t i = 0; i < timed.size(); ++i) {
        timed[i] = newest.timed[i] - oldest.timed[i];
    }
    f.p99_ms = p99_of(timed);
    return f;
}

Verdict judge(const ObserveFigures& f, const config::AutoRollback& limits) {
    if (f.requests < limits.min_requests) {
        return Verdict::Inconclusive;
    }
    const double max_p99_ms = std::chrono::duration<double, std::milli>(limits.max_p99).count();
    if (f.error_ratio > limits.max_error_ratio || (f.p99_ms && *f.p99_ms > max_p99_ms)) {
        return Verdict::Failing;
    }
    return Verdict::Ok;
}

std::string describe(const ObserveFigures& f, const config::AutoRollback& limits) {
    char b[256];
    const double max_p99_ms = std::chrono::duration<double, std::milli>(limits.max_p99).count();
    const auto over = format_duration(limits.window);
    if (f.error_ratio > limits.max_error_ratio) {
        std::snprintf(b, sizeof b, "5xx ratio %.2g > %.2g over %s (%llu of %llu requests)",
                      f.error_ratio, limits.max_error_ratio, over.c_str(),
                      static_cast<unsigned long long>(f.errors),
                      static_cast<unsigned long long>(f.requests));
    } else if (f.p99_ms && *f.p99_ms > max_p99_ms) {
        std::snprintf(b, sizeof b, "p99 %.0fms > %.0fms over %s (%llu requests)", *f.p99_ms,
                      max_p99_ms, over.c_str(), static_cast<unsigned long long>(f.requests));
    } else {
        std::snprintf(b, sizeof b, "5xx ratio %.2g, p99 %s over %s (%llu requests)", f.error_ratio,
                      f.p99_ms ? (std::to_string(std::lround(*f.p99_ms)) + "ms").c_str() : "-",
                      over.c_str(), static_cast<unsigned long long>(f.requests));
    }
    return b;
}

Observer::Observer(const config::Config& cfg, const metrics::Metrics& metrics, Switcher& switcher)
    : cfg_(cfg), metrics_(metrics), switcher_(switcher) {}

void Observer::start(const asio::any_io_executor& ex) {
    timer_ = std::make_unique<asio::steady_timer>(ex);
    asio::co_spawn(ex, run(), [](std::exception_ptr e) {
        if (e) {
            log().error("the observer ended by an exception");
        }
    });
}

void Observer::stop() {
    stopping_ = true;
    if (timer_) {
        timer_->cancel();
    }
}

int Observer::state_number() const {
    if (!current_) {
        return 0;
    }
    return static_cast<int>(current_->verdict) + 1;
}

void Observer::begin(Color color, Duration length, bool canary) {
    end("ended_by_switch");
    if (length <= Duration{0}) {
        return;
    }
    const auto now = Clock::now();
    started_ = now;
    ends_ = now + length;
    next_try_ = now;
    window_.clear();
    window_.add(now, metrics_.totals(color), cfg_.switching.auto_rollback.window);
    current_.emplace();
    current_->color = color;
    current_->canary = canary;
    current_->ends_at = std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(length);
    log().info(
        "observing {}{} for {}: rolls back on a 5xx ratio over {} or a p99 over {} "
        "within {}",
        bgs::to_string(color), canary ? " (the canary's share)" : "", format_duration(length),
        cfg_.switching.auto_rollback.max_error_ratio,
        format_duration(cfg_.switching.auto_rollback.max_p99),
        format_duration(cfg_.switching.auto_rollback.window));
}

bool Observer::end(const std::string& result) {
    if (!current_) {
        return false;
    }
    current_->result = result;
    log().info("observation of {} ended: {} ({})", bgs::to_string(current_->color), result,
               describe(current_->figures, cfg_.switching.auto_rollback));
    last_ = std::move(current_);
    current_.reset();
    return true;
}

bool Observer::tick(Clock::time_point now) {
    const auto& limits = cfg_.switching.auto_rollback;
    window_.add(now, metrics_.totals(current_->color), limits.window);
    current_->figures = window_.figures(limits.window);
    current_->verdict = judge(current_->figures, limits);
    const bool full = now - started_ >= limits.window;
    if (current_->verdict == Verdict::Failing && full && !rolling_back_ && now >= next_try_) {
        return true;
    }
    if (now >= ends_ && !rolling_back_) {
        end(to_string(current_->verdict));
    }
    return false;
}

net::Task<void> Observer::roll_back() {
    rolling_back_ = true;
    const auto color = current_->color;
    const auto why = describe(current_->figures, cfg_.switching.auto_rollback);
    log().warn("observation of {} is failing: {}; rolling back", bgs::to_string(color), why);
    SwitchRequest req;
    if (current_->canary) {
        req.canary = 0;  // the canary ends; no color moves
    } else {
        req.rollback = true;
    }
    req.skip_smoke = true;
    req.automatic = true;
    req.reason = why;
    req.source = "observer";
    const auto out = co_await switcher_.run(std::move(req));
    rolling_back_ = false;
    if (out.result == Result::Switched || out.result == Result::CanaryEnded) {
        ++auto_rollbacks_;
        co_return;  // the switcher ended the observation as rolled_back
    }
    // The old color cannot take traffic (or another switch runs): the new
    // color stays, says why, and the rollback is tried again a window later.
    const auto refusal = out.result == Result::GateFailed ? health::first_failure(out.gates)
                                                          : std::string(to_string(out.result));
    if (current_) {
        current_->note = "rollback refused: " + refusal;
        next_try_ = Clock::now() + cfg_.switching.auto_rollback.window;
    }
    log().error("observation of {}: rollback refused ({}); {} stays", bgs::to_string(color),
                refusal, bgs::to_string(color));
}

net::Task<void> Observer::run() {
    while (!stopping_) {
        // A tenth of the window, between 100 ms and 1 s: fine enough to slide.
        const auto every =
            std::clamp<Duration>(cfg_.switching.auto_rollback.window / 10,
                                 std::chrono::milliseconds(100), std::chrono::seconds(1));
        timer_->expires_after(every);
        co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
        if (stopping_) {
            co_return;
        }
        if (current_ && tick(Clock::now())) {
            co_await roll_back();
        }
    }
}

}  // namespace bgs::control
