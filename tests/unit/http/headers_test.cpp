#include "proxy/http/headers.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <utility>

namespace bgs::http {
namespace {

Fields make(std::initializer_list<std::pair<const char*, const char*>> fields) {
    Fields f;
    for (const auto& [name, value] : fields) {
        f.insert(name, value);
    }
    return f;
}

TEST(FramingTest, TableOfRequestFramings) {
    struct Case {
        std::initializer_list<std::pair<const char*, const char*>> fields;
        unsigned version;
        const char* error;  // nullptr: accepted
    };
    const Case cases[] = {
        {{{"Host", "a"}}, 11, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5"}}, 11, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Content-Length", "5"}}, 11, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5, 5"}}, 11, nullptr},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, 11, nullptr},
        {{{"Host", "a"}, {"Transfer-Encoding", "Chunked"}}, 11, nullptr},
        {{}, 10, nullptr},
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
         11,
         "both Content-Length and Transfer-Encoding"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Content-Length", "0"}},
         11,
         "both Content-Length and Transfer-Encoding"},
        {{{"Host", "a"}, {"Content-Length", "5"}, {"Content-Length", "6"}},
         11,
         "several different Content-Length values"},
        {{{"Host", "a"}, {"Content-Length", "5, 7"}},
         11,
         "several different Content-Length values"},
        {{{"Host", "a"}, {"Content-Length", "+5"}}, 11, "invalid Content-Length"},
        {{{"Host", "a"}, {"Content-Length", "0x5"}}, 11, "invalid Content-Length"},
        {{{"Host", "a"}, {"Transfer-Encoding", "gzip"}},
         11,
         "Transfer-Encoding does not end with chunked"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked, gzip"}},
         11,
         "Transfer-Encoding does not end with chunked"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "identity"}},
         11,
         "Transfer-Encoding does not end with chunked"},
        {{{"Host", "a"}, {"Transfer-Encoding", "gzip, chunked"}},
         11,
         "unsupported Transfer-Encoding (only chunked is accepted)"},
        {{{"Host", "a"}, {"Transfer-Encoding", "chunked, chunked"}},
         11,
         "unsupported Transfer-Encoding (only chunked is accepted)"},
        {{{"Transfer-Encoding", "chunked"}}, 10, "Transfer-Encoding in an HTTP/1.0 request"},
        {{}, 11, "missing Host"},
        {{{"Host", "a"}, {"Host", "b"}}, 11, "several Host fields"},
    };
    for (const auto& c : cases) {
        auto f = make(c.fields);
        auto err = request_framing_error(f, c.version);
        if (c.error == nullptr) {
            EXPECT_FALSE(err) << *err;
        } else {
            ASSERT_TRUE(err) << "accepted but should fail with: " << c.error;
            EXPECT_EQ(*err, c.error);
        }
    }
}

TEST(HeaderRewriteTest, DropsHopByHopAndTheFieldsConnectionNames) {
    auto in = make({{"Host", "a"},
                    {"Connection", "keep-alive, X-Secret"},
                    {"X-Secret", "1"},
                    {"Keep-Alive", "timeout=5"},
                    {"Proxy-Connection", "keep-alive"},
                    {"TE", "trailers"},
                    {"Trailer", "X-T"},
                    {"Transfer-Encoding", "chunked"},
                    {"Upgrade", "websocket"},
                    {"Content-Length", "3"},
                    {"X-Keep", "yes"},
                    {"Accept", "a"},
                    {"Accept", "b"}});
    Fields out;
    copy_end_to_end(in, out, false);
    std::vector<std::string> names;
    for (const auto& f : out) {
        names.emplace_back(f.name_string());
    }
    EXPECT_EQ(names, (std::vector<std::string>{"Host", "X-Keep", "Accept", "Accept"}));
}

TEST(HeaderRewriteTest, KeepsUpgradeForTunnels) {
    auto in =
        make({{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "k"}});
    Fields out;
    copy_end_to_end(in, out, true);
    EXPECT_EQ(out["Upgrade"], "websocket");
    EXPECT_EQ(out["Sec-WebSocket-Key"], "k");
    EXPECT_EQ(out.count("Connection"), 0u);
    EXPECT_TRUE(is_upgrade_request(in, 11));
    EXPECT_FALSE(is_upgrade_request(in, 10));
    EXPECT_FALSE(is_upgrade_request(make({{"Upgrade", "websocket"}}), 11));
}

TEST(HeaderRewriteTest, ForwardedHeaders) {
    auto in = make({{"Host", "example.com"},
                    {"X-Forwarded-For", "203.0.113.9"},
                    {"X-Forwarded-Proto", "https"},
                    {"X-Forwarded-Host", "evil"}});
    Fields out;
    copy_end_to_end(in, out, false);
    add_forwarded(in, out, {"127.0.0.1", "http"});
    EXPECT_EQ(out["X-Forwarded-For"], "203.0.113.9, 127.0.0.1");
    EXPECT_EQ(out.count("X-Forwarded-For"), 1u);
    EXPECT_EQ(out["X-Forwarded-Proto"], "http");
    EXPECT_EQ(out["X-Forwarded-Host"], "example.com");
}

TEST(HeaderRewriteTest, RequestIdKeptWhenSaneElseGenerated) {
    EXPECT_EQ(request_id_for(make({{"X-Request-Id", "abc-123"}})), "abc-123");
    const auto generated = request_id_for(make({}));
    EXPECT_EQ(generated.size(), 32u);
    EXPECT_NE(generated, request_id_for(make({})));
    EXPECT_NE(request_id_for(make({{"X-Request-Id", "has space"}})), "has space");
    EXPECT_EQ(request_id_for(make({{"X-Request-Id", std::string(200, 'a').c_str()}})).size(), 32u);
}

}  // namespace
}  // namespace bgs::http
