// The WebSocket frame boundary tracker, which decides where a drain may put
// its Close frame. The same bytes fed whole, byte by byte, and boundary by
// boundary must give the same answers; every boundary it reports must be
// where parse_header says a frame ends.
#include "proxy/http/ws_frame.hpp"

#include <cstdio>
#include <cstdlib>

using namespace bgs::ws;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    BoundaryTracker whole, bytes, steps;
    whole.consume(data, size);
    for (std::size_t i = 0; i < size; ++i) {
        bytes.consume(data + i, 1);
    }
    std::size_t at = 0;
    while (at < size) {
        const auto n = steps.consume_to_boundary(data + at, size - at);
        if (n == 0) {
            // At a boundary: a frame starts here; parse_header agrees or needs more.
            if (!steps.at_boundary()) {
                std::abort();
            }
            const auto h = parse_header(data + at, size - at);
            if (!h) {
                steps.consume(data + at, size - at);
                at = size;
                break;
            }
            // Step into the frame by one byte so the next call finds its end.
            steps.consume(data + at, 1);
            at += 1;
            continue;
        }
        at += n;
        if (at > size) {
            std::abort();
        }
    }
    if (whole.at_boundary() != bytes.at_boundary() || whole.at_boundary() != steps.at_boundary() ||
        whole.saw_close() != bytes.saw_close() || whole.saw_close() != steps.saw_close()) {
        std::fprintf(stderr, "ws_frame_fuzz: the tracker depends on how bytes arrive\n");
        std::abort();
    }
    return 0;
}
