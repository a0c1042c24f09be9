// Turning an upstream's host into addresses, behind a seam: the system's
// resolver (getaddrinfo: /etc/hosts, then DNS) in production, a function of
// their own in tests. Blocking: a resolver thread or start-up only.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace bgs {

/// Every address `host` resolves to (A and AAAA), as text ("10.0.0.7",
/// "::1"), each once, in the resolver's order; empty when it does not resolve now.
using NameResolver = std::function<std::vector<std::string>(const std::string& host)>;

/// getaddrinfo's answer.
std::vector<std::string> resolve_with_system(const std::string& host);

}  // namespace bgs
