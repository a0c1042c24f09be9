#include "proxy/http/ws_frame.hpp"

#include <algorithm>

namespace bgs::ws {

std::optional<FrameHeader> parse_header(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return std::nullopt;
    }
    FrameHeader h;
    h.fin = (data[0] & 0x80) != 0;
    h.opcode = data[0] & 0x0f;
    h.masked = (data[1] & 0x80) != 0;
    std::uint64_t len = data[1] & 0x7f;
    std::size_t pos = 2;
    if (len == 126) {
        if (size < 4) {
            return std::nullopt;
        }
        len = (std::uint64_t{data[2]} << 8) | data[3];
        pos = 4;
    } else if (len == 127) {
        if (size < 10) {
            return std::nullopt;
        }
        len = 0;
        for (int i = 0; i < 8; ++i) {
            len = (len << 8) | data[2 + i];
        }
        pos = 10;
    }
    if (h.masked) {
        if (size < pos + 4) {
            return std::nullopt;
        }
        std::copy_n(data + pos, 4, h.mask.begin());
        pos += 4;
    }
    h.payload_length = len;
    h.header_length = pos;
    return h;
}

void apply_mask(std::string& payload, const std::array<std::uint8_t, 4>& mask) {
    for (std::size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<char>(static_cast<std::uint8_t>(payload[i]) ^ mask[i % 4]);
    }
}

std::string encode_frame(std::uint8_t opcode, std::string_view payload, bool fin,
                         const std::optional<std::array<std::uint8_t, 4>>& mask) {
    std::string out;
    out.reserve(payload.size() + 14);
    out.push_back(static_cast<char>((fin ? 0x80 : 0x00) | (opcode & 0x0f)));
    const std::uint8_t mask_bit = mask ? 0x80 : 0x00;
    const std::uint64_t len = payload.size();
    if (len < 126) {
        out.push_back(static_cast<char>(mask_bit | len));
    } else if (len <= 0xffff) {
        out.push_back(static_cast<char>(mask_bit | 126));
        out.push_back(static_cast<char>(len >> 8));
        out.push_back(static_cast<char>(len & 0xff));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127));
        for (int shift = 56; shift >= 0; shift -= 8) {
            out.push_back(static_cast<char>((len >> shift) & 0xff));
        }
    }
    std::string body(payload);
    if (mask) {
        out.append(reinterpret_cast<const char*>(mask->data()), 4);
        apply_mask(body, *mask);
    }
    out += body;
    return out;
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    std::string out;
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xff));
    out.append(reason.substr(0, 123));
    return out;
}

std::size_t BoundaryTracker::consume_to_boundary(const std::uint8_t* data, std::size_t size) {
    if (at_boundary()) {
        return 0;
    }
    std::size_t used = 0;
    while (used < size) {
        // Whole payload runs at once; header bytes one by one.
        const std::size_t step =
            payload_left_ > 0
                ? static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, size - used))
                : 1;
        consume(data + used, step);
        used += step;
        if (at_boundary()) {
            break;
        }
    }
    return used;
}

void BoundaryTracker::consume(const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
        if (payload_left_ > 0) {
            const auto step =
                static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, size));
            payload_left_ -= step;
            data += step;
            size -= step;
            if (payload_left_ == 0 && in_close_) {
                saw_close_ = true;
            }
            continue;
        }
        // Accumulate header bytes until the header parses.
        header_[header_fill_++] = *data++;
        --size;
        if (auto h = parse_header(header_.data(), header_fill_)) {
            header_fill_ = 0;
            payload_left_ = h->payload_length;
            in_close_ = h->opcode == kClose;
            if (payload_left_ == 0 && in_close_) {
                saw_close_ = true;
            }
        }
    }
}

}  // namespace bgs::ws
