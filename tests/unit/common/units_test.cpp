#include "proxy/common/units.hpp"

#include <gtest/gtest.h>

namespace bgs {
namespace {

TEST(UnitsTest, ParsesDurations) {
    struct Case {
        const char* text;
        std::optional<long> ms;
    };
    const Case cases[] = {
        {"500ms", 500}, {"2s", 2000},
        {"5m", 300000}, {"1h", 3600000},
        {"0", 0},       {"0s", 0},
        {"10", {}},     {"-1s", {}},
        {"1.5s", {}},   {"s", {}},
        {"", {}},       {"2 s", {}},
        {"1d", {}},     {"99999999999999999999h", {}},
    };
    for (const auto& c : cases) {
        auto d = parse_duration(c.text);
        ASSERT_EQ(d.has_value(), c.ms.has_value()) << c.text;
        if (d) {
            EXPECT_EQ(d->count(), *c.ms) << c.text;
        }
    }
}

TEST(UnitsTest, ParsesSizes) {
    EXPECT_EQ(parse_size("512"), 512u);
    EXPECT_EQ(parse_size("512B"), 512u);
    EXPECT_EQ(parse_size("16KiB"), 16u * 1024);
    EXPECT_EQ(parse_size("10MiB"), 10u * 1024 * 1024);
    EXPECT_EQ(parse_size("1GiB"), 1024u * 1024 * 1024);
    EXPECT_FALSE(parse_size("16KB"));
    EXPECT_FALSE(parse_size("-1"));
    EXPECT_FALSE(parse_size("KiB"));
    EXPECT_FALSE(parse_size("99999999999999999GiB"));
}

TEST(UnitsTest, FormatsDurationsInTheirLargestExactUnit) {
    EXPECT_EQ(format_duration(std::chrono::milliseconds(90000)), "90s");
    EXPECT_EQ(format_duration(std::chrono::milliseconds(120000)), "2m");
    EXPECT_EQ(format_duration(std::chrono::milliseconds(1500)), "1500ms");
    EXPECT_EQ(format_duration(std::chrono::milliseconds(0)), "0s");
}

}  // namespace
}  // namespace bgs
