// WebSocket helpers for tests on top of the blocking Socket: the client
// handshake through the proxy, reading whole frames, and a scripted upstream
// that speaks WebSocket frames and records how its connection was closed.
#pragma once

#include "proxy/http/ws_frame.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <atomic>

namespace bgs::test {

struct Frame {
    std::uint8_t opcode = 0;
    bool fin = true;
    bool masked = false;
    std::string payload;  // unmasked

    /// The status code of a Close frame, or 0.
    int close_code() const;
};

inline const std::array<std::uint8_t, 4> kClientMask{0x11, 0x22, 0x33, 0x44};

Frame read_frame(Socket& s, Ms timeout = 5s);

/// Connects to the proxy and completes a WebSocket handshake for `path`.
Socket open_websocket(std::uint16_t port, const std::string& path = "/ws");

/// A masked client text frame.
std::string client_text(std::string_view text);

/// What a scripted WebSocket upstream saw when its connection ended.
struct WsUpstreamLog {
    std::atomic<int> connections{0};
    std::atomic<int> close_code{0};  // from the last Close frame received
    std::atomic<bool> close_masked{false};
};

/// Handler: answers health and smoke paths like ScriptedUpstream::app, and turns
/// an Upgrade request into an echoing WebSocket that records the Close it gets.
ScriptedUpstream::Handler ws_app(std::string name, WsUpstreamLog& log);

}  // namespace bgs::test
