// A built-in upstream for `bgswitch demo` and the tests: a page naming its
// color, /health, an SSE stream at /events and a WebSocket echo at /ws (and,
// for the soak, /fault/reset-mid-body: a 200 that resets after 1 KiB). Runs on
// its own thread; the public methods are for the owning thread.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/units.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace bgs::demo {

/// How a demo upstream behaves: as a good version, one that never gets
/// healthy, or one that passes its checks but fails real requests (what a
/// deploy's observation must catch).
enum class Behaviour { Ok, Unhealthy, Failing };

class DemoUpstream {
  public:
    /// Binds `host:port` (port 0 picks one) and starts serving at once.
    /// `version` is shown on /color. Throws std::runtime_error when the
    /// address cannot be bound.
    DemoUpstream(Color color, const std::string& host, std::uint16_t port,
                 Duration event_interval = std::chrono::seconds(1),
                 Behaviour behaviour = Behaviour::Ok, std::string version = "");
    ~DemoUpstream();
    DemoUpstream(const DemoUpstream&) = delete;
    DemoUpstream& operator=(const DemoUpstream&) = delete;

    std::uint16_t port() const;
    /// Requests served so far (any path).
    std::uint64_t requests() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bgs::demo
