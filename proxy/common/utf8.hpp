// UTF-8 validation for text that leaves the process in a format that must stay
// valid (JSON log lines) or safe (a terminal). Pure functions; any thread.
#pragma once

#include <cstddef>
#include <string_view>

namespace bgs {

/// The length (1 to 4) of the well-formed UTF-8 sequence that starts at `s[i]`
/// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or 0
/// when the bytes there are not one.
inline std::size_t utf8_sequence_at(std::string_view s, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = byte(0);
    if (c < 0x80) {
        return 1;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;  // the allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (i + len > s.size() || byte(1) < lo || byte(1) > hi) {
        return 0;
    }
    for (std::size_t k = 2; k < len; ++k) {
        if ((byte(k) & 0xc0) != 0x80) {
            return 0;
        }
    }
    return len;
}

}  // namespace bgs
