#include "proxy/metrics/access_log.hpp"

#include <gtest/gtest.h>

namespace bgs::metrics {
namespace {

AccessRecord sample() {
    AccessRecord r;
    r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795435200123));
    r.client = "127.0.0.1:5555";
    r.method = "GET";
    r.target = "/a\"b";
    r.status = 200;
    r.bytes_sent = 42;
    r.duration_s = 0.0015;
    r.color = "blue";
    r.upstream = "127.0.0.1:9001";
    r.request_id = "rid";
    return r;
}

TEST(AccessLogTest, TextLine) {
    EXPECT_EQ(format_access(sample(), config::LogFormat::Text),
              "2026-11-23T12:00:00.123Z 127.0.0.1:5555 \"GET /a\\\"b HTTP/1.1\" 200 42 0.001500 "
              "blue 127.0.0.1:9001 rid");
}

TEST(AccessLogTest, JsonLineEscapes) {
    auto r = sample();
    r.target = "/x\n";
    EXPECT_EQ(
        format_access(r, config::LogFormat::Json),
        R"({"time":"2026-11-23T12:00:00.123Z","client":"127.0.0.1:5555","method":"GET",)"
        R"("target":"/x\u000a","protocol":"HTTP/1.1","status":200,"bytes_sent":42,)"
        R"("duration_s":0.001500,"color":"blue","upstream":"127.0.0.1:9001","request_id":"rid"})");
}

}  // namespace
}  // namespace bgs::metrics
