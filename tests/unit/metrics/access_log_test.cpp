#include "proxy/metrics/access_log.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

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
              "blue 127.0.0.1:9001 rid -");
}

TEST(AccessLogTest, TheErrorFieldNamesSourceAndKind) {
    auto r = sample();
    r.status = 200;
    r.error = "upstream_reset";  // a 200 the client saw cut short
    const auto text = format_access(r, config::LogFormat::Text);
    EXPECT_EQ(text.substr(text.size() - 18), "rid upstream_reset") << text;
    const auto json = format_access(r, config::LogFormat::Json);
    EXPECT_NE(json.find(R"("error":"upstream_reset"})"), std::string::npos) << json;
}

TEST(AccessLogTest, JsonLineEscapes) {
    auto r = sample();
    r.target = "/x\n";
    EXPECT_EQ(
        format_access(r, config::LogFormat::Json),
        R"({"time":"2026-11-23T12:00:00.123Z","client":"127.0.0.1:5555","method":"GET",)"
        R"("target":"/x\u000a","protocol":"HTTP/1.1","status":200,"bytes_sent":42,)"
        R"("duration_s":0.001500,"color":"blue","upstream":"127.0.0.1:9001","request_id":"rid",)"
        R"("error":""})");
}

// Every JSON line must parse, whatever bytes the client put in its target:
// bytes that are not UTF-8 are escaped, well-formed UTF-8 passes as it is.
TEST(AccessLogTest, JsonLineStaysValidWithBytesThatAreNotUtf8) {
    auto r = sample();
    r.target = "/\xff\xc3\xa9\xed\xa0\x80\xc0\xaf\xf0\x9f\x98\x80";
    const auto line = format_access(r, config::LogFormat::Json);
    boost::system::error_code ec;
    const auto doc = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << line;
    EXPECT_TRUE(doc.at("target").is_string());
    // The é and the emoji are UTF-8 and kept; each stray byte became a code point.
    EXPECT_NE(line.find("\"target\":\"/\\u00ff\xc3\xa9\\u00ed\\u00a0\\u0080\\u00c0\\u00af"
                        "\xf0\x9f\x98\x80\""),
              std::string::npos)
        << line;
}

}  // namespace
}  // namespace bgs::metrics
