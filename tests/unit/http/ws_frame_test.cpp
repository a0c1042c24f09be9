#include "proxy/http/ws_frame.hpp"

#include <gtest/gtest.h>

namespace bgs::ws {
namespace {

const std::uint8_t* bytes(const std::string& s) {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

TEST(WsFrameTest, RoundTripsEveryLengthEncoding) {
    for (std::size_t len : {0u, 5u, 125u, 126u, 65535u, 65536u, 100000u}) {
        const std::string payload(len, 'x');
        const std::array<std::uint8_t, 4> mask{1, 2, 3, 4};
        for (bool masked : {false, true}) {
            auto frame =
                encode_frame(kBinary, payload, true, masked ? std::optional(mask) : std::nullopt);
            auto h = parse_header(bytes(frame), frame.size());
            ASSERT_TRUE(h);
            EXPECT_EQ(h->payload_length, len);
            EXPECT_EQ(h->masked, masked);
            EXPECT_EQ(h->opcode, kBinary);
            EXPECT_EQ(frame.size(), h->header_length + len);
            std::string body = frame.substr(h->header_length);
            if (masked) {
                apply_mask(body, h->mask);
            }
            EXPECT_EQ(body, payload);
        }
    }
}

TEST(WsFrameTest, IncompleteHeaderNeedsMoreBytes) {
    auto frame = encode_frame(kText, std::string(300, 'a'), true, std::array<std::uint8_t, 4>{});
    for (std::size_t n = 0; n < 8; ++n) {
        EXPECT_FALSE(parse_header(bytes(frame), n)) << n;
    }
    EXPECT_TRUE(parse_header(bytes(frame), 8));
}

TEST(WsFrameTest, ClosePayloadCarriesCode) {
    auto p = close_payload(kGoingAway, "bye");
    ASSERT_EQ(p.size(), 5u);
    EXPECT_EQ(static_cast<unsigned char>(p[0]) << 8 | static_cast<unsigned char>(p[1]), 1001);
    EXPECT_EQ(p.substr(2), "bye");
}

TEST(WsFrameTest, BoundaryTrackerFollowsFramesSplitAnywhere) {
    std::string stream = encode_frame(kText, "hello", false) +
                         encode_frame(kContinuation, "!", true) + encode_frame(kPing, "") +
                         encode_frame(kBinary, std::string(70000, 'b'));
    // Feed the stream in every split size; the tracker is at a boundary exactly
    // at the frame ends.
    const std::vector<std::size_t> ends{7, 10, 12, stream.size()};
    for (std::size_t step : {1u, 3u, 1000u}) {
        BoundaryTracker t;
        std::size_t fed = 0;
        while (fed < stream.size()) {
            const auto n = std::min(step, stream.size() - fed);
            t.consume(bytes(stream) + fed, n);
            fed += n;
            const bool is_end = std::find(ends.begin(), ends.end(), fed) != ends.end();
            if (is_end) {
                EXPECT_TRUE(t.at_boundary()) << "step " << step << " at " << fed;
            } else if (step == 1) {
                EXPECT_FALSE(t.at_boundary()) << "step 1 at " << fed;
            }
        }
        EXPECT_FALSE(t.saw_close());
    }
    BoundaryTracker t;
    auto close = encode_frame(kClose, close_payload(1000, ""));
    t.consume(bytes(close), close.size());
    EXPECT_TRUE(t.saw_close());
}

}  // namespace
}  // namespace bgs::ws
