// One request to the admin API, for the client commands: a fresh connection,
// HTTP/1.1 through Beast, every step under one deadline. Blocks the calling
// thread (the CLI's main thread).
#pragma once

#include <chrono>
#include <string>

namespace bgs::admin::cli {

struct HttpResult {
    int status = 0;  // the HTTP status; 0 when there was no answer
    std::string body;
    std::string error;  // why there was no answer (cannot resolve, refused, timed out, ...)
};

/// Calls `method path` on the admin API at `admin_url` ("http://host:port",
/// with [v6] literals), with a bearer `token` when not empty and a JSON
/// `body` when not empty. A switch's gates can take long, hence the generous
/// default.
HttpResult call_admin(const std::string& admin_url, const std::string& token,
                      const std::string& method, const std::string& path,
                      const std::string& body = "",
                      std::chrono::seconds timeout = std::chrono::minutes(5));

}  // namespace bgs::admin::cli
