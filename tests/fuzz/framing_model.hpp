// A reference model of request framing written from RFC 9112 alone (§2.2,
// §3, §5, §6), for the differential fuzz target: given the raw bytes of a
// request head it says whether a server must refuse it and, if not, how long
// its body is. Deliberately simple and slow; shares no code with the proxy.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bgs::fuzz {

struct ModelFraming {
    enum class Body { None, Length, Chunked };
    bool reject = false;  // the RFC says 400 (or the message is not HTTP/1.x)
    Body body = Body::None;
    std::uint64_t length = 0;
    std::string why;
};

/// `head` ends with the blank line (CRLF CRLF).
ModelFraming model_request_framing(std::string_view head);

}  // namespace bgs::fuzz
