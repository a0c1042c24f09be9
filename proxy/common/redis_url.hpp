// A Redis URL (fleet mode, SPEC section 12): parsed where the configuration
// is checked and where the client connects. No I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

}  // namespace bgs::redis
