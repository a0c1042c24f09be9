// WebSocket frame codec (RFC 6455 §5.2): header parsing, frame encoding and a
// boundary tracker that follows a byte stream frame by frame, so a relay can
// inject a Close frame without cutting a frame in half. Pure; any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bgs::ws {

enum Opcode : std::uint8_t {
    kContinuation = 0x0,
    kText = 0x1,
    kBinary = 0x2,
    kClose = 0x8,
    kPing = 0x9,
    kPong = 0xA,
};

/// Close codes used by the proxy.
inline constexpr std::uint16_t kGoingAway = 1001;

struct FrameHeader {
    bool fin = true;
    std::uint8_t opcode = kText;
    bool masked = false;
    std::array<std::uint8_t, 4> mask{};
    std::uint64_t payload_length = 0;
    std::size_t header_length = 0;  // bytes before the payload
};

/// Parses a frame header from the start of `data`. nullopt when more bytes are
/// needed. Does not judge the opcode or reserved bits.
std::optional<FrameHeader> parse_header(const std::uint8_t* data, std::size_t size);

/// One complete frame. With `mask`, the payload is masked (client to server).
std::string encode_frame(std::uint8_t opcode, std::string_view payload, bool fin = true,
                         const std::optional<std::array<std::uint8_t, 4>>& mask = std::nullopt);

/// A Close frame payload: the 2-byte code and a reason.
std::string close_payload(std::uint16_t code, std::string_view reason);

/// Applies (or removes) a masking key in place.
void apply_mask(std::string& payload, const std::array<std::uint8_t, 4>& mask);

/// Follows a stream of frames byte by byte.
class BoundaryTracker {
  public:
    /// Accounts for `size` more bytes of the stream.
    void consume(const std::uint8_t* data, std::size_t size);
    /// Consumes bytes only up to the next frame boundary and returns how many;
    /// 0 when already at a boundary.
    std::size_t consume_to_boundary(const std::uint8_t* data, std::size_t size);
    /// True when the bytes consumed so far end exactly at a frame boundary.
    bool at_boundary() const { return header_fill_ == 0 && payload_left_ == 0; }
    /// True once a Close frame has fully passed.
    bool saw_close() const { return saw_close_; }

  private:
    std::array<std::uint8_t, 14> header_{};
    std::size_t header_fill_ = 0;
    std::uint64_t payload_left_ = 0;
    bool in_close_ = false;
    bool saw_close_ = false;
};

}  // namespace bgs::ws
