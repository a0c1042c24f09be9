// A built-in upstream for `bgswitch demo` and the tests: a page naming its
// color, /health, an SSE stream at /events and a WebSocket echo at /ws. Runs on
// its own thread; the public methods are for the owning thread.
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/units.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace bgs::demo {

class DemoUpstream {
  public:
    /// Binds `host:port` (port 0 picks one) and starts serving at once.
    /// Throws std::runtime_error when the address cannot be bound.
    DemoUpstream(Color color, const std::string& host, std::uint16_t port,
                 Duration event_interval = std::chrono::seconds(1));
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
