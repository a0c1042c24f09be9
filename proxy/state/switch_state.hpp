// The durable blue-green state: active and previous color, the version, and a
// bounded history of switches. Plain data; the store (state_store.hpp) persists
// it, the switcher (control/switcher.hpp) changes it. Control thread only.
#pragma once

#include "proxy/common/color.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace bgs::state {

/// One switch, rollback, dry run, upstream change or reload, as the history
/// shows it.
struct HistoryEvent {
    std::chrono::system_clock::time_point time;
    std::string
        action;  // "switch" | "rollback" | "auto_rollback" | "canary" | "set_upstreams" | "reload"
    Color from = Color::Blue;
    Color to = Color::Blue;
    std::string result;  // "switched" | "dry_run_passed" | "gate_failed" | "persist_failed" | ...
    std::string source;  // the admin client's address
    std::string reason;
    std::uint64_t version = 0;  // the version after the event
    bool dry_run = false;
    std::string failure;          // gate_failed: the first failed check and its reason
    std::uint64_t health_us = 0;  // gate timings
    std::uint64_t smoke_us = 0;
    // set_upstreams: the color's list before and after (the color is `to`).
    std::vector<std::string> old_upstreams;
    std::vector<std::string> new_upstreams;
    // reload: the configuration keys that changed.
    std::vector<std::string> changed;
    // Fleet mode: the instance that took the call (empty otherwise).
    std::string node;
    // A switch that moved traffic: the old color's drain window, which every
    // instance of a fleet applies (0: not recorded).
    std::uint64_t drain_ms = 0;
    /// A canary step, its end, or a switch that completed one: the canary's
    /// share after the event.
    std::optional<unsigned> percent;
};

/// A share of new sessions sent to the idle color (SPEC section 13).
struct Canary {
    Color to = Color::Green;
    unsigned percent = 0;     // 1..100
    std::uint64_t epoch = 0;  // the version it began at; session cookies carry it
    std::chrono::system_clock::time_point since;
};

struct SwitchState {
    static constexpr std::size_t kHistoryLimit = 200;
    /// Versions stay exact in every JSON reader (2^53 - 1).
    static constexpr std::uint64_t kMaxVersion = (std::uint64_t{1} << 53) - 1;

    Color active = Color::Blue;
    std::optional<Color> previous;
    std::uint64_t version = 1;
    std::deque<HistoryEvent> history;  // newest first
    /// A color's upstream list as set through the API; it wins over the
    /// configuration's at start. None: the configuration's list applies.
    std::array<std::optional<std::vector<std::string>>, 2> upstreams;
    /// When this version was committed (fleet mode measures each instance's
    /// apply from it).
    std::optional<std::chrono::system_clock::time_point> committed_at;
    /// The canary running, if any; `to` is never the active color.
    std::optional<Canary> canary;

    void record(HistoryEvent e) {
        history.push_front(std::move(e));
        while (history.size() > kHistoryLimit) {
            history.pop_back();
        }
    }
};

}  // namespace bgs::state
