// Blocking loopback sockets and a small HTTP/1.1 message reader for tests.
// Plain POSIX on purpose: the test side speaks exact bytes, so malformed and
// hostile input can be written as it is, and no Beast code is compiled here.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bgs::test {

using namespace std::chrono_literals;
using Ms = std::chrono::milliseconds;

/// Thrown when a read does not complete before its deadline.
struct Timeout : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// A connected TCP socket with deadline-bounded reads. Owns the descriptor.
class Socket {
  public:
    explicit Socket(int fd = -1) : fd_(fd) {}
    Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)), pending_(std::move(o.pending_)) {}
    Socket& operator=(Socket&& o) noexcept;
    ~Socket();

    /// Connects to 127.0.0.1:port, from `source` (an IPv4 loopback address
    /// such as "127.0.0.2") when given. Throws std::runtime_error.
    static Socket connect(std::uint16_t port, const char* source = nullptr);

    void send(std::string_view data);
    /// Reads what is available (at least one byte); "" at EOF. Throws Timeout.
    std::string read_some(Ms timeout = 5s);
    /// Reads up to and including `delim`. Throws Timeout, or runtime_error at EOF.
    std::string read_until(std::string_view delim, Ms timeout = 5s);
    std::string read_exact(std::size_t n, Ms timeout = 5s);
    /// Reads everything until the peer closes. Throws Timeout.
    std::string read_to_eof(Ms timeout = 5s);
    /// True when the peer closed (EOF or reset) within `timeout`; data before is discarded.
    bool closed_within(Ms timeout);
    /// Bytes received and not read yet (kernel buffer plus what a read kept).
    std::size_t readable() const;
    void shutdown_write();
    void close();
    int fd() const { return fd_; }

  private:
    int fd_;
    std::string pending_;  // read past what a caller asked for
    friend struct Reader;
};

struct Header {
    std::string name;
    std::string value;
};

/// An HTTP message as read off the wire; the body is decoded from chunked.
struct Message {
    std::string start_line;               // "HTTP/1.1 200 OK" or "GET / HTTP/1.1"
    int status = 0;                       // responses
    std::string method, target, version;  // requests
    std::vector<Header> headers;
    std::string body;
    bool chunked = false;

    /// The first value of `name` (case-insensitive), or nullopt.
    std::optional<std::string> header(std::string_view name) const;
    std::size_t count(std::string_view name) const;
};

/// Reads one response. `head_request`: no body follows. Bodies without a length
/// are read to EOF. Throws Timeout / runtime_error.
Message read_response(Socket& s, Ms timeout = 5s, bool head_request = false);

/// Reads one request (body by Content-Length or chunked). nullopt on a clean EOF
/// before any byte.
std::optional<Message> read_request(Socket& s, Ms timeout = 5s);

/// A port on 127.0.0.1 where nothing listens (found free, then let go), below
/// the kernel's ephemeral range so that no outgoing connection takes it meanwhile.
std::uint16_t dead_port();

/// Resident and peak memory of this process, in KiB (from /proc/self/status).
std::size_t rss_kib();

/// Polls `cond` until it is true or `timeout` passes; returns its last value.
template <typename F>
bool eventually(F cond, Ms timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (cond()) {
            return true;
        }
        struct timespec ts {
            0, 2'000'000
        };
        nanosleep(&ts, nullptr);
    }
    return cond();
}

}  // namespace bgs::test
