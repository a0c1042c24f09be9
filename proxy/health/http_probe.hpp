// A one-shot HTTP/1.1 request sent straight to one upstream, for health checks
// and smoke checks. Runs on the control thread's executor; never throws.
#pragma once

#include "proxy/common/units.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/upstream.hpp"

#include <map>
#include <string>

namespace bgs::health {

struct ProbeRequest {
    std::string method = "GET";
    std::string target = "/";
    std::string host;  // Host header; the upstream's address when empty
    std::map<std::string, std::string> headers;
    std::string body;
    std::shared_ptr<const routing::TlsTarget> tls;  // the upstream's TLS, if its color has one
};

struct ProbeResult {
    bool responded = false;  // a complete response arrived
    unsigned status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;                            // at most 1 MiB
    double latency_ms = 0;                       // connect to complete response
    std::string error;                           // why there is no response
};

/// Sends `req` to `ep` on a new connection and reads the response, all within `timeout`.
net::Task<ProbeResult> probe(net::tcp::endpoint ep, ProbeRequest req, Duration timeout);

}  // namespace bgs::health
