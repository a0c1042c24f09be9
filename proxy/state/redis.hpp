// A small Redis client for fleet mode (SPEC section 12): the URL, replies, and
// one connection that sends commands and reads replies (also in subscribe
// mode) as coroutines on the caller's executor, every step within a deadline.
// Replies are parsed with hiredis's RESP reader; Asio does the I/O. Control
// thread only (no Redis call ever runs on a worker).
#pragma once

#include "proxy/common/units.hpp"
#include "proxy/net/http_io.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bgs::redis {

/// redis://[[user]:password@]host[:port][/db] (rediss:// for TLS).
struct Url {
    bool tls = false;
    std::string host;
    std::uint16_t port = 6379;
    std::string user;
    std::string password;
    unsigned db = 0;

    static std::optional<Url> parse(std::string_view text, std::string* why);
    /// The URL with the password replaced by "***", for logs.
    std::string redacted() const;
};

struct Reply {
    enum class Type { Nil, String, Status, Integer, Array, Error };
    Type type = Type::Nil;
    std::string str;  // String, Status, Error
    long long integer = 0;
    std::vector<Reply> elements;

    bool is_error() const { return type == Type::Error; }
};

/// The most a reply may hold before the connection is dropped as broken.
inline constexpr std::size_t kMaxReplyBytes = 16 * 1024 * 1024;

/// A reply, or what went wrong in words (the connection is closed then).
using Result = std::variant<Reply, std::string>;

class Connection {
  public:
    explicit Connection(net::asio::any_io_executor ex);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Resolves, connects, authenticates (AUTH) and selects the database,
    /// all within `timeout`. The error in words, or nullopt.
    net::Task<std::optional<std::string>> connect(Url url, Duration timeout);

    /// Sends `args` as one command and awaits its reply within `timeout`.
    /// A Redis error is a Reply of Type::Error; a broken or slow connection
    /// is an error string (and the connection is closed).
    net::Task<Result> command(std::vector<std::string> args, Duration timeout);

    /// The next reply without sending anything (subscribe mode: a published
    /// message is ["message", channel, payload]).
    net::Task<Result> next_reply(Duration timeout);

    bool connected() const;
    void close();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The RESP encoding of a command (an array of bulk strings).
std::string encode(const std::vector<std::string>& args);

}  // namespace bgs::redis
