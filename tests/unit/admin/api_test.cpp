#include "admin/api.hpp"
#include "admin/routes.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace bgs::admin {
namespace {

TEST(ApiTest, ParsesSwitchBodies) {
    auto ok = parse_switch_body(
        R"({"to":"green","drain_timeout":"30s","dry_run":true,"reason":"deploy v1.4.2","expect_version":6})",
        false);
    ASSERT_TRUE(std::holds_alternative<control::SwitchRequest>(ok)) << std::get<std::string>(ok);
    const auto& r = std::get<control::SwitchRequest>(ok);
    EXPECT_EQ(r.to, Color::Green);
    EXPECT_EQ(r.drain_timeout, std::chrono::seconds(30));
    EXPECT_TRUE(r.dry_run);
    EXPECT_EQ(r.reason, "deploy v1.4.2");
    EXPECT_EQ(r.expect_version, 6u);
    EXPECT_FALSE(r.rollback);

    auto rb = parse_switch_body("", true);
    ASSERT_TRUE(std::holds_alternative<control::SwitchRequest>(rb));
    EXPECT_TRUE(std::get<control::SwitchRequest>(rb).rollback);
    auto skip = parse_switch_body(R"({"skip_smoke":true})", true);
    EXPECT_TRUE(std::get<control::SwitchRequest>(skip).skip_smoke);
}

TEST(ApiTest, RejectsBadSwitchBodies) {
    struct Case {
        const char* body;
        bool rollback;
        const char* error;
    };
    const Case cases[] = {
        {R"({"to":"purple"})", false, "unknown color \"purple\""},
        {R"({"to":"green","extra":1})", false, "unknown field \"extra\""},
        {R"({"to":1})", false, "\"to\" must be \"blue\" or \"green\""},
        {R"({})", false, "\"to\" is required"},
        {"", false, "the body must be a JSON object with \"to\""},
        {"[1]", false, "the body must be a JSON object"},
        {R"({"to":"green","drain_timeout":"2 s"})", false,
         "\"drain_timeout\": \"2 s\" is not a duration (e.g. 30s, 5m; at most 8760h)"},
        {R"({"to":"green","expect_version":-1})", false,
         "\"expect_version\" must be a whole number"},
        {R"({"to":"green"})", true, "unknown field \"to\""},
        {R"({"skip_smoke":true})", false, "unknown field \"skip_smoke\""},
        // One key twice must not mean whichever the parser kept: this made a real switch.
        {R"({"to":"green","dry_run":true,"dry_run":false})", false, "duplicate key \"dry_run\""},
        {R"({"to":"green","drain_timeout":"3000000h"})", false,
         "\"drain_timeout\": \"3000000h\" is not a duration (e.g. 30s, 5m; at most 8760h)"},
    };
    for (const auto& c : cases) {
        auto r = parse_switch_body(c.body, c.rollback);
        ASSERT_TRUE(std::holds_alternative<std::string>(r)) << c.body;
        EXPECT_EQ(std::get<std::string>(r), c.error) << c.body;
    }
    auto malformed = parse_switch_body("{nope", false);
    EXPECT_EQ(std::get<std::string>(malformed).rfind("malformed JSON", 0), 0u);
}

TEST(ApiTest, ParsesUpstreamListBodies) {
    auto r = parse_upstreams_body(
        R"({"upstreams":["10.0.0.7:8080","app-green-v2:8080","[::1]:80"],"reason":"v2",)"
        R"("expect_version":9})",
        Color::Green);
    const auto* req = std::get_if<control::UpstreamsRequest>(&r);
    ASSERT_TRUE(req);
    EXPECT_EQ(req->color, Color::Green);
    ASSERT_EQ(req->upstreams.size(), 3u);
    EXPECT_EQ(req->upstreams[1].host, "app-green-v2");
    EXPECT_EQ(req->upstreams[2].to_string(), "[::1]:80");
    EXPECT_EQ(req->reason, "v2");
    EXPECT_EQ(req->expect_version, 9u);
}

// Every problem of a body is reported at once, each naming its place.
TEST(ApiTest, UpstreamListBodiesReportEveryProblem) {
    auto problems = [](std::string_view body) {
        auto r = parse_upstreams_body(body, Color::Blue);
        auto* p = std::get_if<std::vector<std::string>>(&r);
        return p ? *p : std::vector<std::string>{};
    };
    const auto p = problems(
        R"({"upstreams":["ok:80","no-port","a:99999",7,"ok:80"],"reason":1,"extra":true})");
    ASSERT_EQ(p.size(), 6u) << p.size();
    EXPECT_NE(p[0].find("upstreams[1]: \"no-port\""), std::string::npos) << p[0];
    EXPECT_NE(p[1].find("upstreams[2]: \"a:99999\""), std::string::npos) << p[1];
    EXPECT_NE(p[2].find("upstreams[3]: must be"), std::string::npos) << p[2];
    EXPECT_NE(p[3].find("upstreams[4]: \"ok:80\" appears twice"), std::string::npos) << p[3];
    EXPECT_NE(p[4].find("\"reason\""), std::string::npos) << p[4];
    EXPECT_NE(p[5].find("unknown field \"extra\""), std::string::npos) << p[5];
    EXPECT_EQ(problems(R"({"upstreams":[]})"),
              std::vector<std::string>{"\"upstreams\" must not be empty"});
    EXPECT_EQ(problems(R"({"reason":"x"})"), std::vector<std::string>{"\"upstreams\" is required"});
    EXPECT_EQ(problems("[1]").size(), 1u);
    EXPECT_EQ(problems("{").size(), 1u);
    std::string many = R"({"upstreams":[)";
    for (std::size_t i = 0; i <= kMaxUpstreams; ++i) {
        many += (i ? ",\"" : "\"") + std::string("h") + std::to_string(i) + ":80\"";
    }
    many += "]}";
    EXPECT_NE(problems(many).at(0).find("more than 1024"), std::string::npos);
}

TEST(ApiTest, FindsDuplicateKeysAtAnyDepth) {
    EXPECT_EQ(duplicate_json_key(R"({"a":1,"b":{"c":1,"c":2}})"), "c");
    EXPECT_EQ(duplicate_json_key(R"({"a":{"x":1},"b":{"x":1}})"), std::nullopt);
    EXPECT_EQ(duplicate_json_key(R"([{"k":1},{"k":2}])"), std::nullopt);
    EXPECT_EQ(duplicate_json_key(R"({"\u0061":1,"a":2})"), "a");
    EXPECT_EQ(duplicate_json_key("{nope"), std::nullopt);
}

TEST(ApiTest, OutcomesMapToTheSpecsStatuses) {
    control::SwitchOutcome o;
    o.from = Color::Blue;
    o.to = Color::Green;
    o.version = 7;
    const std::pair<control::Result, unsigned> cases[] = {
        {control::Result::Switched, 200},        {control::Result::AlreadyActive, 200},
        {control::Result::DryRunPassed, 200},    {control::Result::Busy, 409},
        {control::Result::VersionMismatch, 409}, {control::Result::NoPrevious, 409},
        {control::Result::GateFailed, 412},      {control::Result::PersistFailed, 500},
    };
    for (auto [result, status] : cases) {
        o.result = result;
        auto r = outcome_response(o);
        EXPECT_EQ(r.status, status) << control::to_string(result);
        auto body = boost::json::parse(r.body).as_object();
        if (status == 200) {
            EXPECT_EQ(body.at("result"), control::to_string(result));
            EXPECT_EQ(body.at("version").to_number<int>(), 7);
        } else {
            EXPECT_TRUE(body.contains("error"));
        }
    }
}

TEST(ApiTest, TokenComparison) {
    EXPECT_TRUE(token_matches("Bearer s3cret", "s3cret"));
    EXPECT_TRUE(token_matches("bearer s3cret", "s3cret"));
    EXPECT_FALSE(token_matches("Bearer s3cre", "s3cret"));
    EXPECT_FALSE(token_matches("Bearer s3cret2", "s3cret"));
    EXPECT_FALSE(token_matches("s3cret", "s3cret"));
    EXPECT_FALSE(token_matches("", "s3cret"));
    EXPECT_FALSE(token_matches("Basic s3cret", "s3cret"));
}

}  // namespace
}  // namespace bgs::admin
