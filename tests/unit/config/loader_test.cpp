#include "proxy/config/loader.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>

namespace bgs::config {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        if (auto it = vars.find(name); it != vars.end()) {
            return it->second;
        }
        return std::nullopt;
    };
}

const char* kMinimal = R"(
listen:
  - address: 127.0.0.1:8080
colors:
  blue: {upstreams: [127.0.0.1:9001]}
  green: {upstreams: [127.0.0.1:9101]}
)";

// A document without an admin section gets one with a token, which every
// valid configuration needs.
LoadResult load(const std::string& yaml, std::map<std::string, std::string> vars = {}) {
    const bool has_admin = yaml.empty() || yaml.find("\nadmin:") != std::string::npos;
    return load_config_text(has_admin ? yaml : yaml + "admin: {token: t}\n", "test.yaml",
                            env_of(std::move(vars)));
}

// The single error a document produces, or a failure listing what came instead.
std::string only_error(const std::string& yaml, std::map<std::string, std::string> vars = {}) {
    auto r = load(yaml, std::move(vars));
    EXPECT_FALSE(r.config);
    EXPECT_EQ(r.errors.size(), 1u);
    std::string all;
    for (const auto& e : r.errors) {
        all += e + "\n";
    }
    return r.errors.size() == 1 ? r.errors.front() : all;
}

TEST(LoaderTest, MinimalConfigGetsDefaults) {
    auto r = load(kMinimal);
    ASSERT_TRUE(r.config) << r.errors.front();
    const auto& c = *r.config;
    EXPECT_EQ(c.listen.at(0).to_string(), "127.0.0.1:8080");
    EXPECT_EQ(c.active, Color::Blue);
    EXPECT_EQ(c.admin.address.to_string(), "127.0.0.1:9901");
    EXPECT_EQ(c.timeouts.header_read, std::chrono::seconds(10));
    EXPECT_EQ(c.limits.max_header_bytes, 16u * 1024);
    EXPECT_EQ(c.limits.max_body_bytes, 10u * 1024 * 1024);
    EXPECT_EQ(c.switching.drain_timeout, std::chrono::seconds(90));
    EXPECT_FALSE(c.switching.min_healthy);  // all
    EXPECT_EQ(c.admin.allow.size(), 2u);
}

TEST(LoaderTest, FleetModeTakesRedisUrlKeyAndNode) {
    auto file = load(kMinimal);
    ASSERT_TRUE(file.config);
    EXPECT_FALSE(file.config->fleet) << "the file backend is the default";

    auto r = load(std::string(kMinimal) +
                      "state:\n  backend: redis\n  redis:\n"
                      "    url: redis://:${REDIS_PASSWORD}@redis:6379/0\n"
                      "    key: bgswitch:shop\n    node: ${HOSTNAME}\n",
                  {{"REDIS_PASSWORD", "s3cret"}, {"HOSTNAME", "gw-1"}});
    ASSERT_TRUE(r.config) << r.errors.front();
    ASSERT_TRUE(r.config->fleet);
    EXPECT_EQ(r.config->fleet->url, "redis://:s3cret@redis:6379/0");
    EXPECT_EQ(r.config->fleet->key, "bgswitch:shop");
    EXPECT_EQ(r.config->fleet->node, "gw-1");

    // The node defaults to the host name.
    auto unnamed = load(std::string(kMinimal) +
                        "state: {backend: redis, redis: {url: \"redis://r\", key: k}}\n");
    ASSERT_TRUE(unnamed.config) << unnamed.errors.front();
    EXPECT_FALSE(unnamed.config->fleet->node.empty());
}

TEST(LoaderTest, FleetModeProblemsAreNamed) {
    EXPECT_EQ(only_error(std::string(kMinimal) + "state: {backend: etcd}\n"),
              "state.backend: \"etcd\": must be file or redis");
    EXPECT_EQ(only_error(std::string(kMinimal) + "state: {backend: redis}\n"),
              "state.redis: state.backend: redis needs state.redis.url and state.redis.key");
    EXPECT_EQ(only_error(std::string(kMinimal) + "state: {redis: {url: \"redis://r\"}}\n"),
              "state.redis: applies only with state.backend: redis");
    EXPECT_EQ(only_error(std::string(kMinimal) +
                         "state: {backend: redis, redis: {url: \"redis://r\"}}\n"),
              "state.redis.key: is required (the fleet's name, e.g. bgswitch:shop)");
    // The URL's problem, never the URL (it may hold a password).
    const auto bad_url =
        only_error(std::string(kMinimal) +
                   "state: {backend: redis, redis: {url: \"http://:pw@r\", key: k}}\n");
    EXPECT_EQ(bad_url, "state.redis.url: must start with redis:// or rediss://");
    EXPECT_EQ(only_error(std::string(kMinimal) +
                         "state: {backend: redis, redis: {url: \"redis://r\", key: k, node: "
                         "\"a b\"}}\n"),
              "state.redis.node: \"a b\": only printable characters without spaces");
    EXPECT_EQ(only_error(std::string(kMinimal) +
                         "state: {backend: redis, redis: {url: \"redis://r\", key: k, port: 1}}\n"),
              "state.redis.port: unknown key");
}

TEST(LoaderTest, ResolverRefreshHasADefaultAndACheckedRange) {
    auto r = load(kMinimal);
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->resolver.refresh, std::chrono::seconds(5));
    r = load(std::string(kMinimal) + "resolver: {refresh: 30s}\n");
    ASSERT_TRUE(r.config) << r.errors.front();
    EXPECT_EQ(r.config->resolver.refresh, std::chrono::seconds(30));
    r = load(std::string(kMinimal) + "resolver: {refresh: 0s, every: 1}\n");
    ASSERT_EQ(r.errors.size(), 2u);
    EXPECT_NE(r.errors[0].find("resolver.every: unknown key"), std::string::npos) << r.errors[0];
    EXPECT_NE(r.errors[1].find("resolver.refresh"), std::string::npos) << r.errors[1];
}

TEST(LoaderTest, ObservationAndSmokeRetries) {
    auto r = load(std::string(kMinimal) +
                  "switch:\n  observe: 3m\n  auto_rollback: {max_error_ratio: 0.02, max_p99: 1s, "
                  "window: 20s, min_requests: 10}\n"
                  "smoke:\n  - {name: api, path: /api, retries: 3, retry_interval: 250ms}\n");
    ASSERT_TRUE(r.config) << r.errors.front();
    const auto& s = r.config->switching;
    EXPECT_EQ(s.observe, std::chrono::minutes(3));
    EXPECT_DOUBLE_EQ(s.auto_rollback.max_error_ratio, 0.02);
    EXPECT_EQ(s.auto_rollback.max_p99, std::chrono::seconds(1));
    EXPECT_EQ(s.auto_rollback.window, std::chrono::seconds(20));
    EXPECT_EQ(s.auto_rollback.min_requests, 10u);
    EXPECT_EQ(r.config->smoke.at(0).retries, 3u);
    EXPECT_EQ(r.config->smoke.at(0).retry_interval, std::chrono::milliseconds(250));

    r = load(std::string(kMinimal) +
             "switch: {auto_rollback: {max_error_ratio: 2, window: 2h, min_requests: 0}}\n"
             "smoke:\n  - {name: api, path: /api, retries: 99}\n");
    ASSERT_EQ(r.errors.size(), 4u);
    EXPECT_NE(r.errors[0].find("smoke[0].retries"), std::string::npos) << r.errors[0];
    EXPECT_NE(r.errors[1].find("max_error_ratio"), std::string::npos) << r.errors[1];
    EXPECT_NE(r.errors[2].find("window: must be 1s..1h"), std::string::npos) << r.errors[2];
    EXPECT_NE(r.errors[3].find("min_requests"), std::string::npos) << r.errors[3];
}

// What a reload compares: each key that differs, once; `active` never.
TEST(ConfigTest, ChangedKeysNameWhatDiffers) {
    auto a = load(kMinimal).config.value();
    auto b = a;
    EXPECT_TRUE(changed_keys(a, b).empty());
    b.active = other(a.active);
    EXPECT_TRUE(changed_keys(a, b).empty());
    b.timeouts.idle = std::chrono::seconds(5);
    b.colors[index(Color::Green)].upstreams.push_back({"app-green", 8080});
    b.proxy.workers = 7;
    b.log.access = "/tmp/x.log";
    EXPECT_EQ(changed_keys(a, b),
              (std::vector<std::string>{"colors.green.upstreams", "proxy.workers", "timeouts.idle",
                                        "log.access"}));
    EXPECT_TRUE(needs_restart("proxy.workers"));
    EXPECT_TRUE(needs_restart("state.file"));
    EXPECT_TRUE(needs_restart("admin.address"));
    EXPECT_FALSE(needs_restart("timeouts.idle"));
}

TEST(LoaderTest, TheSpecExampleLoadsVerbatim) {
    std::ifstream in(std::string(BGSWITCH_SOURCE_DIR) + "/configs/bgswitch.yaml");
    ASSERT_TRUE(in);
    std::stringstream text;
    text << in.rdbuf();
    auto r = load(text.str(), {{"BGSWITCH_ADMIN_TOKEN", "s3cret"}});
    ASSERT_TRUE(r.config) << r.errors.front();
    const auto& c = *r.config;
    EXPECT_EQ(c.admin.token, "s3cret");
    EXPECT_EQ(c.group(Color::Green).upstreams.size(), 2u);
    EXPECT_EQ(c.preview->to_string(), "127.0.0.1:8081");
    EXPECT_EQ(c.health.interval, std::chrono::seconds(2));
    EXPECT_EQ(c.smoke.at(0).expect.body_contains, "\"status\":\"ok\"");
    EXPECT_EQ(c.smoke.at(0).expect.max_latency, std::chrono::milliseconds(500));
    EXPECT_EQ(c.smoke.at(0).headers.at("Accept"), "application/json");
    EXPECT_EQ(c.log.format, LogFormat::Text);
}

TEST(LoaderTest, PortOutOfRangeNamesKeyAndValue) {
    auto yaml = std::string(kMinimal);
    yaml.replace(yaml.find("127.0.0.1:9101"), 14, "127.0.0.1:99999");
    EXPECT_EQ(only_error(yaml),
              "colors.green.upstreams[0]: \"127.0.0.1:99999\": port out of range");
}

TEST(LoaderTest, UnknownKeysAreErrors) {
    EXPECT_EQ(only_error(std::string(kMinimal) + "timeouts: {conect: 2s}\n"),
              "timeouts.conect: unknown key");
    EXPECT_EQ(only_error(std::string(kMinimal) + "helth: {}\n"), "helth: unknown key");
}

TEST(LoaderTest, SubstitutesEnvironmentVariables) {
    auto r = load(
        std::string(kMinimal) + "admin: {token: \"${TOK}\"}\nstate:\n  file: /x/${NAME}.json\n",
        {{"TOK", "abc"}, {"NAME", "s"}});
    ASSERT_TRUE(r.config) << r.errors.front();
    EXPECT_EQ(r.config->admin.token, "abc");
    EXPECT_EQ(r.config->state_file, "/x/s.json");
}

TEST(LoaderTest, UnsetVariableIsAnError) {
    EXPECT_EQ(only_error(std::string(kMinimal) + "admin: {token: \"${NOPE}\"}\n"),
              "admin.token: environment variable NOPE is not set");
}

TEST(LoaderTest, BadDurationAndSize) {
    EXPECT_EQ(
        only_error(std::string(kMinimal) + "health: {interval: 2x}\n"),
        "health.interval: \"2x\": not a duration (use e.g. 500ms, 2s, 5m, 1h; at most 8760h)");
    EXPECT_EQ(only_error(std::string(kMinimal) + "limits: {max_body_bytes: 10MB}\n"),
              "limits.max_body_bytes: \"10MB\": not a size (use e.g. 512, 16KiB, 10MiB)");
}

// A key written twice must not pass silently (yaml-cpp would keep the first).
TEST(LoaderTest, DuplicateKeysAreProblems) {
    EXPECT_EQ(
        only_error(std::string(kMinimal) + "switch:\n  drain_timeout: 90s\n  drain_timeout: 0s\n"),
        "switch.drain_timeout: duplicate key (only one may be given)");
    EXPECT_EQ(only_error(std::string(kMinimal) + "log: {level: info}\nlog: {level: debug}\n"),
              "log: duplicate key (only one may be given)");
    EXPECT_EQ(only_error(std::string(kMinimal) +
                         "smoke:\n  - name: a\n    path: /\n    headers: {X-A: 1, X-A: 2}\n"),
              "smoke[0].headers.X-A: duplicate key (only one may be given)");
}

TEST(LoaderTest, TrustedProxiesAreCidrNetworks) {
    auto r = load(std::string(kMinimal) + "proxy: {trusted_proxies: [10.0.0.0/8, \"::1/128\"]}\n");
    ASSERT_TRUE(r.config) << r.errors.front();
    EXPECT_EQ(r.config->proxy.trusted_proxies.size(), 2u);
    EXPECT_NE(only_error(std::string(kMinimal) + "proxy: {trusted_proxies: [10.0.0.0/33]}\n")
                  .find("proxy.trusted_proxies[0]: \"10.0.0.0/33\""),
              std::string::npos);
}

// Values past what the proxy can use are refused with the maximum, never
// wrapped: 3000000h overflowed deadline arithmetic, and a 4GiB header limit was
// truncated to 0 so that every request got 431.
TEST(LoaderTest, DurationsAndSizesHaveCheckedRanges) {
    EXPECT_EQ(only_error(std::string(kMinimal) + "switch: {drain_timeout: 3000000h}\n"),
              "switch.drain_timeout: \"3000000h\": not a duration (use e.g. 500ms, 2s, 5m, 1h; "
              "at most 8760h)");
    EXPECT_EQ(only_error(std::string(kMinimal) + "timeouts: {idle: 99999999999999999999s}\n"),
              "timeouts.idle: \"99999999999999999999s\": not a duration (use e.g. 500ms, 2s, 5m, "
              "1h; at most 8760h)");
    EXPECT_EQ(only_error(std::string(kMinimal) + "limits: {max_header_bytes: 4GiB}\n"),
              "limits.max_header_bytes: \"4GiB\": too large (at most 1MiB)");
    EXPECT_EQ(only_error(std::string(kMinimal) + "limits: {max_body_bytes: 2000GiB}\n"),
              "limits.max_body_bytes: \"2000GiB\": too large (at most 1024GiB)");
    auto r = load(std::string(kMinimal) + "switch: {drain_timeout: 8760h}\n");
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->switching.drain_timeout, kMaxDuration);
}

TEST(LoaderTest, ReportsEveryProblemAtOnce) {
    auto r = load(R"(
listen: []
colors:
  blue: {upstreams: ["127.0.0.1:0"]}
active: purple
log: {format: xml, level: loud}
proxy: {workers: -1}
switch: {min_healthy: some}
)");
    ASSERT_FALSE(r.config);
    const std::vector<std::string> expected{
        "listen: must be a list of at least one {address: host:port}",
        "colors.blue.upstreams[0]: \"127.0.0.1:0\": port out of range",
        "colors.green: is required",
        "active: \"purple\": must be blue or green",
        "switch.min_healthy: \"some\": not a whole number",
        "proxy.workers: \"-1\": must be 1..256",
        "log.level: \"loud\": must be trace, debug, info, warn, error, critical or off",
        "log.format: \"xml\": must be text or json",
    };
    EXPECT_EQ(r.errors, expected);
}

// SPEC 2: on loopback too, since in a pod or on a shared host loopback is not
// private.
TEST(LoaderTest, TheAdminEndpointAlwaysNeedsAToken) {
    EXPECT_EQ(only_error(std::string(kMinimal) + "admin: {address: 0.0.0.0:9901}\n"),
              "admin: a token is required (admin.token or admin.token_file)");
    EXPECT_EQ(only_error(std::string(kMinimal) + "admin: {address: 127.0.0.1:9901}\n"),
              "admin: a token is required (admin.token or admin.token_file)");
    auto r = load(std::string(kMinimal) + "admin: {address: 0.0.0.0:9901, token: t}\n");
    EXPECT_TRUE(r.config);
    EXPECT_EQ(
        only_error(std::string(kMinimal) + "admin: {token_file: " + ::testing::TempDir() + "}\n"),
        "admin.token_file: \"" + ::testing::TempDir() + "\": is a directory, not a file");
}

TEST(LoaderTest, TokenFile) {
    const std::string path = ::testing::TempDir() + "/bgswitch_token";
    {
        std::ofstream out(path);
        out << "from-file\n";
    }
    auto r = load(std::string(kMinimal) + "admin: {token_file: " + path + "}\n");
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->admin.token, "from-file");
    std::remove(path.c_str());
    EXPECT_EQ(only_error(std::string(kMinimal) + "admin: {token_file: /nonexistent/t}\n"),
              "admin.token_file: \"/nonexistent/t\": cannot read: No such file or directory");
    EXPECT_EQ(only_error(std::string(kMinimal) + "admin: {token: a, token_file: /x}\n"),
              "admin: set token or token_file, not both");
}

TEST(LoaderTest, AllowListTakesIpv4AndIpv6Networks) {
    auto r = load(std::string(kMinimal) + "admin: {token: t, allow: [10.0.0.0/8, \"fd00::/8\"]}\n");
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->admin.allow.size(), 2u);
    EXPECT_EQ(only_error(std::string(kMinimal) + "admin: {token: t, allow: [10.0.0.0/33]}\n"),
              "admin.allow[0]: \"10.0.0.0/33\": prefix length must be 0..32");
    EXPECT_EQ(only_error(std::string(kMinimal) + "admin: {token: t, allow: [nothing]}\n"),
              "admin.allow[0]: \"nothing\": not an IPv4 or IPv6 address");
}

TEST(LoaderTest, SmokeChecksAreValidated) {
    auto r = load(std::string(kMinimal) + R"(smoke:
  - {name: a, path: /x, expect: {status: 200, headers: {X-A: b}}}
  - {name: a, path: y, method: get, expect: {colour: 1}}
)");
    ASSERT_FALSE(r.config);
    const std::vector<std::string> expected{
        "smoke[1].name: \"a\": used by another check",
        "smoke[1].method: \"get\": not an HTTP method",
        "smoke[1].path: \"y\": must start with /",
        "smoke[1].expect.colour: unknown key",
    };
    EXPECT_EQ(r.errors, expected);
}

TEST(LoaderTest, SyntaxErrorGivesLineAndColumn) {
    auto e = only_error("listen: [\n  - a\n");
    EXPECT_EQ(e.rfind("test.yaml:", 0), 0u) << e;
    EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(LoaderTest, EmptyDocument) {
    EXPECT_EQ(only_error(""), "the configuration is empty");
}

TEST(LoaderTest, Ipv6AddressesAndDuplicateListeners) {
    auto r = load(R"(
listen: [{address: "[::1]:8080"}, {address: "127.0.0.1:8080"}]
colors:
  blue: {upstreams: ["[::1]:9001"]}
  green: {upstreams: [127.0.0.1:9101, 127.0.0.1:9101]}
)");
    ASSERT_FALSE(r.config);
    ASSERT_EQ(r.errors.size(), 1u);
    EXPECT_EQ(r.errors[0], "colors.green.upstreams[1]: \"127.0.0.1:9101\": listed twice");
    EXPECT_EQ(only_error(R"(
listen: [{address: "::1:8080"}]
colors: {blue: {upstreams: [a:1]}, green: {upstreams: [b:2]}}
)"),
              "listen[0].address: \"::1:8080\": IPv6 addresses are written [addr]:port");
}

TEST(LoaderTest, CidrContainsMatchesMappedAddresses) {
    std::string why;
    auto net = Cidr::parse("127.0.0.0/8", &why);
    ASSERT_TRUE(net);
    const unsigned char v4[4] = {127, 1, 2, 3};
    const unsigned char other[4] = {10, 0, 0, 1};
    const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
    EXPECT_TRUE(net->contains(v4, 4));
    EXPECT_FALSE(net->contains(other, 4));
    EXPECT_TRUE(net->contains(mapped, 16));
}

TEST(LoaderTest, CanaryCookieAndStickyHeader) {
    auto r = load(kMinimal);
    ASSERT_TRUE(r.config);
    EXPECT_EQ(r.config->switching.canary.cookie, "bgswitch_color");
    EXPECT_EQ(r.config->switching.canary.sticky_header, "");
    r = load(std::string(kMinimal) + "switch: {canary: {cookie: bg, sticky_header: X-User-Id}}\n");
    ASSERT_TRUE(r.config) << r.errors.front();
    EXPECT_EQ(r.config->switching.canary.cookie, "bg");
    EXPECT_EQ(r.config->switching.canary.sticky_header, "X-User-Id");
    const auto e = only_error(std::string(kMinimal) + "switch: {canary: {cookie: \"a b;\"}}\n");
    EXPECT_NE(e.find("switch.canary.cookie"), std::string::npos) << e;
    const auto h = only_error(std::string(kMinimal) + "switch: {canary: {sticky_header: \"\"}}\n");
    EXPECT_NE(h.find("switch.canary.sticky_header"), std::string::npos) << h;
    const auto k = only_error(std::string(kMinimal) + "switch: {canary: {percent: 5}}\n");
    EXPECT_NE(k.find("switch.canary.percent"), std::string::npos) << k;
}

}  // namespace
}  // namespace bgs::config
