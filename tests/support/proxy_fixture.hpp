// Starts an in-process bgswitch Server on 127.0.0.1:0 for integration tests.
#pragma once

#include "proxy/config/config.hpp"
#include "proxy/server.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bgs::test {

/// A state file path of this process that does not exist yet.
std::string fresh_state_path();

/// A configuration for tests: one listener on 127.0.0.1:0, two workers, access
/// log off, generous timeouts (tests shorten what they exercise).
config::Config test_config(const std::vector<std::uint16_t>& blue,
                           const std::vector<std::uint16_t>& green = {});

struct AdminAnswer {
    int status = 0;
    std::string body;
    std::string content_type;
};

/// One admin API call on a fresh connection.
AdminAnswer admin_call(std::uint16_t port, const std::string& method, const std::string& path,
                       const std::string& body = "", const std::string& token = "");

/// A started server; stopped gracefully when destroyed.
struct RunningProxy {
    explicit RunningProxy(config::Config cfg, NameResolver resolver = resolve_with_system);
    std::uint16_t port() const { return server->listen_ports().front(); }
    std::unique_ptr<Server> server;
};

}  // namespace bgs::test
