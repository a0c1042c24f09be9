// Request smuggling (RFC 9112 §6.3, SPEC section 6): every ambiguous framing is
// answered with 400, the connection is closed, and the upstream never sees the
// request nor whatever was hidden behind it.
#include "tests/support/proxy_fixture.hpp"
#include "tests/support/scripted_upstream.hpp"

#include <gtest/gtest.h>

namespace bgs::test {
namespace {

using namespace std::string_literals;

struct Vector {
    const char* name;
    std::string request;
};

void PrintTo(const Vector& v, std::ostream* os) {
    *os << v.name;
}

class SmugglingTest : public ::testing::TestWithParam<Vector> {};

TEST_P(SmugglingTest, RejectedWith400AndNothingReachesTheUpstream) {
    ScriptedUpstream up(ScriptedUpstream::respond_with("ok"));
    RunningProxy proxy(test_config({up.port()}));
    auto c = Socket::connect(proxy.port());
    // A legitimate request first, on the same connection, to show that exactly
    // one request gets through.
    c.send("GET /legit HTTP/1.1\r\nHost: a\r\n\r\n");
    ASSERT_EQ(read_response(c).status, 200);
    c.send(GetParam().request);
    auto res = read_response(c);
    EXPECT_EQ(res.status, 400);
    EXPECT_EQ(res.header("Connection"), "close");
    EXPECT_EQ(res.body, "400 Bad Request\n");
    EXPECT_TRUE(c.closed_within(5s));
    ASSERT_EQ(up.request_count(), 1u);
    EXPECT_EQ(up.requests().at(0).target, "/legit");
}

const std::string kHidden = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

INSTANTIATE_TEST_SUITE_P(
    Vectors, SmugglingTest,
    ::testing::Values(
        Vector{
            "CLthenTE",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n" +
                kHidden},
        Vector{
            "TEthenCL",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
            "0\r\n\r\n" +
                kHidden},
        Vector{
            "GzipTEWithCL",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 37\r\n\r\n" +
                kHidden},
        Vector{"DifferentContentLengths",
               "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 37\r\n\r\n" +
                   kHidden},
        Vector{"ContentLengthList",
               "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 37\r\n\r\n" + kHidden},
        Vector{
            "TENotEndingInChunked",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" +
                kHidden},
        Vector{"TEOnlyGzip",
               "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n" + kHidden},
        Vector{"DuplicateChunked",
               "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
               "chunked\r\n\r\n"
               "0\r\n\r\n" +
                   kHidden},
        Vector{"MalformedChunkSize",
               "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
               "chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n" +
                   kHidden},
        Vector{"NegativeChunkSize",
               "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
               "chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"},
        Vector{"OverflowingChunkSize",
               "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
        Vector{"InvalidContentLength",
               "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +37\r\n\r\n" + kHidden},
        Vector{
            "SpaceBeforeColon",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n"
            "0\r\n\r\n"},
        Vector{"TransferEncodingInHttp10",
               "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + kHidden},
        Vector{"MissingHost", "GET / HTTP/1.1\r\n\r\n"},
        Vector{"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
        Vector{"GarbageRequestLine", "HELLO\r\n\r\n"},
        Vector{"NulInHeader", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n"s}),
    [](const ::testing::TestParamInfo<Vector>& p) { return p.param.name; });

}  // namespace
}  // namespace bgs::test
