// One access-log line per request, as text or JSON. Formatting is pure; the
// line goes to the asynchronous access logger. Any thread.
#pragma once

#include "proxy/config/config.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace bgs::metrics {

struct AccessRecord {
    std::chrono::system_clock::time_point time;  // when the request started
    std::string client;                          // "ip:port"
    std::string method;
    std::string target;
    unsigned version = 11;
    unsigned status = 0;
    std::uint64_t bytes_sent = 0;  // response body bytes sent to the client
    double duration_s = 0;
    std::string color;     // "blue", "green" or "-" when the proxy answered itself
    std::string upstream;  // "host:port" or "-"
    std::string request_id;
    std::string error;  // "" or the ProxyError's name, e.g. "upstream_reset"
};

/// `2026-11-23T12:00:00.123Z 10.0.0.1:5123 "GET / HTTP/1.1" 200 512 0.0012 blue 127.0.0.1:9001
/// <id> <error or ->` or one JSON object with the same fields.
std::string format_access(const AccessRecord& r, config::LogFormat format);

/// RFC 3339 UTC with milliseconds.
std::string format_time(std::chrono::system_clock::time_point t);

}  // namespace bgs::metrics
