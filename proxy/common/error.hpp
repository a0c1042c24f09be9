// The data path's one error record: where an error came from and what it was,
// as Pingora records its errors. The log line, the access log's `error` field
// and bgswitch_errors_total all read it. Plain data; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace bgs {

/// Who failed.
enum class ErrorSource : std::uint8_t { Client, Upstream, Proxy };
/// What failed.
enum class ErrorKind : std::uint8_t { Timeout, Reset, Refused, Protocol, Limit };

inline constexpr std::size_t kErrorSources = 3;
inline constexpr std::size_t kErrorKinds = 5;

constexpr std::string_view to_string(ErrorSource s) {
    constexpr std::string_view names[] = {"client", "upstream", "proxy"};
    return names[static_cast<std::size_t>(s)];
}

constexpr std::string_view to_string(ErrorKind k) {
    constexpr std::string_view names[] = {"timeout", "reset", "refused", "protocol", "limit"};
    return names[static_cast<std::size_t>(k)];
}

struct ProxyError {
    ErrorSource source = ErrorSource::Proxy;
    ErrorKind kind = ErrorKind::Protocol;
    /// The proxy's own answer to the client (400, 502, 504, ...); 0 when the
    /// client gets none (it left, or a response was already under way).
    unsigned status = 0;
    std::string why;  // for the log line

    /// "upstream_reset": the access log's `error` field.
    std::string name() const {
        std::string n(to_string(source));
        n += '_';
        n += to_string(kind);
        return n;
    }
};

}  // namespace bgs
