// Where the drain and shutdown logic find every client connection: a per-worker
// list of tracked sessions (worker thread only) and process-wide per-color
// activity counters (atomics, readable from any thread).
#pragma once

#include "proxy/common/color.hpp"
#include "proxy/common/shards.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace bgs::drain {

/// What a client connection is doing right now.
enum class Activity : std::uint8_t {
    Idle,      // between requests (keep-alive) or reading a request header
    Request,   // a request is in flight to an upstream of its color
    Stream,    // a response of unknown length (chunked, SSE) is being relayed
    Upgraded,  // a WebSocket or other upgraded tunnel
};

/// Per-color counts of requests, streams and tunnels across all workers.
class ActivityCounts {
  public:
    void add(Color c, Activity a, std::int64_t delta) {
        if (a != Activity::Idle) {
            counts_.local()[index(c)][slot(a)].fetch_add(delta, std::memory_order_relaxed);
        }
    }
    std::int64_t get(Color c, Activity a) const {
        std::int64_t sum = 0;
        if (a != Activity::Idle) {
            counts_.for_each([&](const Counts& counts) {
                sum += counts[index(c)][slot(a)].load(std::memory_order_relaxed);
            });
        }
        return sum;
    }

  private:
    static std::size_t slot(Activity a) { return static_cast<std::size_t>(a) - 1; }
    using Counts = std::array<std::array<std::atomic<std::int64_t>, 3>, 2>;
    Sharded<Counts> counts_;
};

/// Why a session is asked to end.
enum class StopReason : std::uint8_t {
    Shutdown,          // stop accepting work: idle connections close, WebSockets get
                       // 1001, requests and streams in progress may finish
    ShutdownDeadline,  // timeouts.shutdown is nearly over: streams get their
                       // terminating chunk, anything else still open is closed
    Drain,             // its color's drain window is over: WebSockets get 1001,
                       // streams their terminating chunk, other tunnels are closed
};

class SessionRegistry;

/// One client connection as drain and shutdown see it: a session derives from
/// it and is registered for exactly its lifetime. Worker thread only.
class TrackedSession {
  public:
    explicit TrackedSession(SessionRegistry& registry);
    virtual ~TrackedSession();
    TrackedSession(const TrackedSession&) = delete;
    TrackedSession& operator=(const TrackedSession&) = delete;

    /// Moves the session to a new activity on `color`, keeping the counters exact.
    void set(Activity activity, Color color);
    Activity activity() const { return activity_; }
    Color color() const { return color_; }
    /// The upstream (routing::Upstream::id) its exchange goes to; 0 for none.
    void set_upstream(std::uint64_t id) { upstream_ = id; }
    std::uint64_t upstream() const { return upstream_; }

    /// Asks the session to end at its next safe point, for `why`.
    void stop(StopReason why) {
        if (why == StopReason::Drain || why == StopReason::ShutdownDeadline) {
            drain_signalled_ = true;
        }
        on_stop(why);
    }
    /// True once a drain (or the end of a shutdown) has asked this session to
    /// close.
    bool drain_signalled() const { return drain_signalled_; }

    /// The worker's loop has ended for good with this session still open: one
    /// that owns itself (a parked connection or tunnel, whose pending handler
    /// will never run) deletes itself here. Coroutine sessions end with their
    /// frames.
    virtual void abandon() {}

  protected:
    /// What stopping means for this session (called on the worker thread); it
    /// must not destroy the session.
    virtual void on_stop(StopReason why) = 0;

  private:
    friend class SessionRegistry;
    SessionRegistry& registry_;
    Activity activity_ = Activity::Idle;
    Color color_ = Color::Blue;
    std::uint64_t upstream_ = 0;
    bool drain_signalled_ = false;
    TrackedSession* prev_ = nullptr;
    TrackedSession* next_ = nullptr;
};

/// The sessions of one worker. Worker thread only.
class SessionRegistry {
  public:
    explicit SessionRegistry(ActivityCounts& counts) : counts_(counts) {}

    std::size_t size() const { return size_; }

    /// Calls f(TrackedSession&) for each session. f may stop sessions but not
    /// destroy them.
    template <typename F>
    void for_each(F&& f) {
        for (auto* s = head_; s != nullptr;) {
            auto* next = s->next_;
            f(*s);
            s = next;
        }
    }

    void stop_all(StopReason why) {
        for_each([why](TrackedSession& s) { s.stop(why); });
    }
    /// After the worker's loop ended: see TrackedSession::abandon (which may
    /// delete the session; the walk has its next already).
    void abandon_all() {
        for_each([](TrackedSession& s) { s.abandon(); });
    }

  private:
    friend class TrackedSession;
    ActivityCounts& counts_;
    TrackedSession* head_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace bgs::drain
