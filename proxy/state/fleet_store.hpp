// The fleet's record in Redis (SPEC section 12): one hash per fleet key
// holding the version and the state (the state file's JSON: active, previous,
// version, upstream lists, history), changed only by an atomic
// compare-and-set on the version that also announces the new version on the
// fleet's channel; and each instance's heartbeat. Typed operations over one
// connection, one call at a time: each control-thread loop owns its store.
#pragma once

#include "proxy/state/heartbeat.hpp"
#include "proxy/state/redis.hpp"
#include "proxy/state/switch_state.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace bgs::state {

/// The names a fleet key gives its parts in Redis.
struct FleetKeys {
    explicit FleetKeys(std::string key) : record(std::move(key)) {}
    std::string record;  // the hash: version, state
    std::string channel() const { return record + ":changed"; }
    std::string nodes() const { return record + ":nodes"; }
    std::string node(const std::string& name) const { return record + ":node:" + name; }
};

/// What a compare-and-set did.
struct CasOutcome {
    enum class Result { Applied, Conflict, Unavailable };
    Result result = Result::Unavailable;
    std::uint64_t current_version = 0;  // Conflict: the record's version
    std::string error;                  // Unavailable: why
};

/// One instance as its heartbeat says.
class FleetStore {
  public:
    FleetStore(net::asio::any_io_executor ex, redis::Url url, std::string key,
               Duration timeout = std::chrono::seconds(2));

    /// Connects when not connected; the error in words, or nullopt.
    net::Task<std::optional<std::string>> ensure_connected();

    /// The record, nullopt when the fleet has none yet (or Redis lost it), or
    /// the error in words.
    net::Task<std::variant<std::optional<SwitchState>, std::string>> read();

    /// The record's version alone (0: no record), or the error in words.
    net::Task<std::variant<std::uint64_t, std::string>> version();

    /// Writes `next` (whose version is `expected` + 1) when the record's
    /// version is `expected` (0: no record yet), and announces it.
    net::Task<CasOutcome> commit(std::uint64_t expected, const SwitchState& next);

    /// Re-seeds the record from `local` when Redis has none or an older one
    /// (the highest version wins; nobody's goes backwards). True when it wrote.
    net::Task<std::variant<bool, std::string>> seed(const SwitchState& local);

    /// Records `node`'s applied version (and the color it serves), valid
    /// for `ttl`.
    net::Task<std::optional<std::string>> heartbeat(const std::string& node,
                                                    std::uint64_t applied_version,
                                                    const std::string& active,
                                                    std::chrono::milliseconds ttl);

    /// Every node whose heartbeat has not expired, by name.
    net::Task<std::variant<std::vector<NodeReport>, std::string>> nodes();

    const FleetKeys& keys() const { return keys_; }
    redis::Connection& connection() { return conn_; }

  private:
    net::Task<redis::Result> call(std::vector<std::string> args);
    /// One field of the record: nullopt when absent, or the error in words.
    net::Task<std::variant<std::optional<std::string>, std::string>> field(const char* name);

    redis::Connection conn_;
    redis::Url url_;
    FleetKeys keys_;
    Duration timeout_;
};

}  // namespace bgs::state
