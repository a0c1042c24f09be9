// Turning an upstream's host into an address, behind a seam: the system's
// resolver (getaddrinfo: /etc/hosts, then DNS) in production, a function of
// their own in tests. Blocking: the control thread or start-up only.
#pragma once

#include <functional>
#include <optional>
#include <string>

namespace bgs {

/// The first address `host` resolves to, as text ("10.0.0.7", "::1"), or
/// nullopt when it does not resolve now.
using NameResolver = std::function<std::optional<std::string>(const std::string& host)>;

/// getaddrinfo's answer.
std::optional<std::string> resolve_with_system(const std::string& host);

}  // namespace bgs
