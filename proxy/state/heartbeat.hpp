// One instance's heartbeat in fleet mode: what it reports of itself under
// "<key>:node:<name>", and its decoder. Pure; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bgs::state {

struct NodeReport {
    std::string node;
    std::uint64_t applied_version = 0;
    std::chrono::milliseconds age{0};  // since its last heartbeat
    std::string backend;               // "ok" | "unreachable" as the node saw it
    std::string active;                // the color it serves
};

/// One instance's heartbeat as stored in Redis (JSON written by another
/// process, so anything): nullopt unless it is an object. Fields of the wrong
/// type or out of range are left at their defaults; never throws.
std::optional<NodeReport> decode_heartbeat(std::string_view text, std::string node,
                                           std::int64_t now_ms);

}  // namespace bgs::state
