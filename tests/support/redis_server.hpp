// A real redis-server for tests: started on a free loopback port with no
// persistence, stopped by PID. Pausable (SIGSTOP) to play a stalled store.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace bgs::test {

class RedisServer {
  public:
    /// Starts redis-server with `extra` arguments (e.g. {"--requirepass", "s"})
    /// and waits (with a deadline) until it answers. Throws when it does not.
    explicit RedisServer(std::vector<std::string> extra = {});
    /// Speaks TLS only, with this certificate and key (no client certificates).
    static RedisServer with_tls(const std::string& cert, const std::string& key,
                                const std::string& ca);
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url() const {
        return (tls_ ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") + std::to_string(port_);
    }
    void pause();   // SIGSTOP
    void resume();  // SIGCONT
    void stop();    // SIGTERM and wait
    /// Starts it again after stop(), on the same port, empty (it keeps no
    /// data across a restart).
    void start();

    /// True when redis-server is installed (deploy/setup.sh installs it).
    static bool available();

    RedisServer(RedisServer&& o) noexcept
        : pid_(std::exchange(o.pid_, -1)),
          port_(o.port_),
          extra_(std::move(o.extra_)),
          tls_(o.tls_) {}

  private:
    struct Tls {};
    RedisServer(Tls, std::vector<std::string> extra);

    pid_t pid_ = -1;
    std::uint16_t port_ = 0;
    std::vector<std::string> extra_;
    bool tls_ = false;
};

}  // namespace bgs::test
