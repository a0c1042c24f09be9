// Fleet mode (SPEC section 12), on the control thread. Follows the fleet's
// record in Redis: a subscription to the fleet's channel wakes it the moment a
// version is committed, and a read every second is the safety net for
// messages lost across reconnects. A newer version goes to the switcher to
// apply; a record Redis lost (or an older one) is re-seeded from this
// instance's version, and the highest version wins. Every second, and at once
// after a change, a heartbeat reports the version this instance applied.
//
// Redis unreachable: nothing moves (fail static). The instance serves what it
// applied last, commits are refused, and the loop reconnects with backoff and
// catches up. No Redis call runs anywhere but here.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/net/async_lock.hpp"
#include "proxy/state/fleet_store.hpp"

#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace bgs::control {

/// How long a heartbeat counts: an instance is live while its last one is
/// younger than this.
inline constexpr auto kLiveFor = std::chrono::seconds(5);

/// The fleet as GET /v1/fleet shows it.
struct FleetView {
    std::uint64_t version = 0;  // the record's
    std::vector<state::NodeReport> nodes;
};

/// A change waited for across the fleet: the instances live when it was
/// committed that applied it in time, and those that did not.
struct FleetWait {
    std::vector<std::string> applied;
    std::vector<std::string> lagging;
    std::string error;  // Redis could not be asked
};

class Fleet {
  public:
    struct Hooks {
        /// What this instance applied last.
        std::function<const state::SwitchState&()> local;
        /// A newer version from the record, to apply here.
        std::function<void(state::SwitchState)> apply;
    };

    Fleet(config::Fleet settings, Hooks hooks);
    ~Fleet();

    void start(const net::asio::any_io_executor& ex);
    void stop();

    /// The record as Redis holds it now, read once before the control
    /// thread runs (at start), within `timeout`: nullopt when there is none,
    /// or the error in words.
    static std::variant<std::optional<state::SwitchState>, std::string> read_once(
        const config::Fleet& settings, Duration timeout);

    /// Redis answered the last time it was asked.
    bool up() const { return up_; }
    /// Why it is down, when it is.
    const std::string& error() const { return error_; }
    const config::Fleet& settings() const { return settings_; }
    /// The Redis URL without its password.
    std::string where() const;

    /// The switcher's compare-and-set of `next` on the record's version.
    net::Task<state::CasOutcome> commit(std::uint64_t expected, const state::SwitchState& next);

    net::Task<std::variant<FleetView, std::string>> view();

    /// Waits until every instance live now reports `version` or later, or
    /// for `timeout`.
    net::Task<FleetWait> wait(std::uint64_t version, Duration timeout);

  private:
    net::Task<void> follow();
    /// One look at the record (`announced`: the version a message named, 0
    /// for none); false when Redis did not answer.
    net::Task<bool> sync(std::uint64_t announced);
    net::Task<bool> subscribe();
    net::Task<void> pause(Duration d);
    void set_up(bool up, const std::string& error);

    config::Fleet settings_;
    redis::Url url_;
    Hooks hooks_;
    std::unique_ptr<state::FleetStore> follower_;  // the loop's reads, seeds, heartbeats
    std::unique_ptr<state::FleetStore> calls_;     // commits and queries, one at a time
    net::AsyncLock calls_lock_;
    std::unique_ptr<redis::Connection> subscription_;
    std::unique_ptr<net::asio::steady_timer> timer_;
    bool up_ = false;
    bool stopping_ = false;
    std::string error_ = "not connected yet";
    std::uint64_t beaten_version_ = 0;  // the version the last heartbeat reported
    std::chrono::steady_clock::time_point beaten_at_{};
};

}  // namespace bgs::control
