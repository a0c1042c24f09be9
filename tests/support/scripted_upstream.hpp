// A scripted fake upstream on 127.0.0.1:0 for integration tests, in the spirit
// of HAProxy's reg-tests: each accepted connection runs the test's handler on
// its own thread with a blocking Socket. Records every request it parsed.
#pragma once

#include "tests/support/test_net.hpp"

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bgs::test {

class ScriptedUpstream {
  public:
    /// Called once per accepted connection. Return to close the connection.
    using Handler = std::function<void(Socket&, ScriptedUpstream&)>;

    explicit ScriptedUpstream(Handler handler);
    /// Listens on `ip` ("127.0.0.2", "::1"; "::" takes IPv4 too) and `port`
    /// (0: any free one).
    ScriptedUpstream(Handler handler, const std::string& ip, std::uint16_t port = 0);
    /// Shuts down every open connection (unblocking handlers) and joins them.
    ~ScriptedUpstream();

    std::uint16_t port() const { return port_; }
    int connections() const { return connections_.load(); }
    std::size_t request_count() const;
    std::vector<Message> requests() const;

    /// Reads a request and records it; nullopt when the peer closed first.
    std::optional<Message> next_request(Socket& s, Ms timeout = 10s);

    /// Handler: answer every request on the connection with 200 and `body`
    /// (Content-Length), plus a header naming the upstream.
    static Handler respond_with(std::string body, std::string name = "up");

    /// Handler: a small application of color `name`: /health and /api/v1/health
    /// answer {"status":"ok"}; anything else answers `name` with X-Upstream: name.
    static Handler app(std::string name);

  private:
    void accept_loop();

    Handler handler_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> connections_{0};
    std::thread acceptor_;
    mutable std::mutex mutex_;
    std::vector<std::thread> threads_;
    std::vector<int> open_fds_;
    std::vector<Message> requests_;
};

/// A canned response with Content-Length.
std::string http_response(int status, std::string_view body, std::string_view extra_headers = "");

}  // namespace bgs::test
