// A small Redis client for fleet mode (SPEC section 12): the URL, replies, and
// one connection that sends commands and reads replies (also in subscribe
// mode) as coroutines on the caller's executor, every step within a deadline.
// Replies are parsed with hiredis's RESP reader; Asio does the I/O. Control
// thread only (no Redis call ever runs on a worker).
#pragma once

#include "proxy/common/redis_url.hpp"
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

    /// Like next_reply, but nullopt when nothing at all arrived within `idle`:
    /// the connection stays open (subscribe mode waits this way).
    net::Task<std::optional<Result>> poll(Duration idle);

    bool connected() const;
    /// Connected, and Redis has not closed its end while the connection sat
    /// idle (checked without blocking; a closed one is dropped). Not in
    /// subscribe mode, where messages wait to be read.
    bool usable();
    /// Drops the connection. Not while a call is waiting on it: use cancel().
    void close();
    /// Ends a waiting call at once (it answers an error; the connection closes).
    void cancel();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// The RESP encoding of a command (an array of bulk strings).
std::string encode(const std::vector<std::string>& args);

}  // namespace bgs::redis
