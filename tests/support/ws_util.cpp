#include "tests/support/ws_util.hpp"

namespace bgs::test {

int Frame::close_code() const {
    if (opcode != ws::kClose || payload.size() < 2) {
        return 0;
    }
    return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
}

Frame read_frame(Socket& s, Ms timeout) {
    std::string head = s.read_exact(2, timeout);
    for (;;) {
        auto h = ws::parse_header(reinterpret_cast<const std::uint8_t*>(head.data()), head.size());
        if (h) {
            Frame f{h->opcode, h->fin, h->masked, s.read_exact(h->payload_length, timeout)};
            if (h->masked) {
                ws::apply_mask(f.payload, h->mask);
            }
            return f;
        }
        head += s.read_exact(1, timeout);
    }
}

Socket open_websocket(std::uint16_t port, const std::string& path) {
    auto s = Socket::connect(port);
    s.send("GET " + path +
           " HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    auto res = read_response(s);
    if (res.status != 101) {
        throw std::runtime_error("WebSocket handshake answered " + std::to_string(res.status));
    }
    return s;
}

std::string client_text(std::string_view text) {
    return ws::encode_frame(ws::kText, text, true, kClientMask);
}

ScriptedUpstream::Handler ws_app(std::string name, WsUpstreamLog& log) {
    return [name = std::move(name), &log](Socket& s, ScriptedUpstream& up) {
        auto req = up.next_request(s);
        if (!req) {
            return;
        }
        if (!req->header("Upgrade")) {
            s.send(http_response(200, req->target == "/health" || req->target == "/api/v1/health"
                                          ? R"({"status":"ok"})"
                                          : name));
            return;
        }
        ++log.connections;
        s.send(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
        for (;;) {
            auto f = read_frame(s, 60s);
            if (f.opcode == ws::kClose) {
                log.close_code = f.close_code();
                log.close_masked = f.masked;
                s.send(ws::encode_frame(ws::kClose, f.payload.substr(0, 2)));
                return;
            }
            s.send(ws::encode_frame(f.opcode, name + ":" + f.payload));
        }
    };
}

}  // namespace bgs::test
