// The deploy kit's manifests, read as Kubernetes and Compose would read them
// (kubectl and docker are not on these machines): every document parses, has
// what its kind requires, refers to what exists, and the bgswitch
// configurations they carry load without a problem.
#include "proxy/config/loader.hpp"

#include <yaml-cpp/yaml.h>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace bgs::test {
namespace {

std::string read(const std::string& relative) {
    std::ifstream in(std::string(BGSWITCH_SOURCE_DIR) + "/" + relative);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// Fields every Kubernetes object must have, and the ones each kind here needs.
void check_object(const YAML::Node& doc, const std::string& where) {
    ASSERT_TRUE(doc.IsMap()) << where;
    ASSERT_TRUE(doc["apiVersion"] && doc["kind"] && doc["metadata"]["name"]) << where;
    const auto kind = doc["kind"].as<std::string>();
    const auto spec = doc["spec"];
    if (kind == "Deployment") {
        EXPECT_EQ(doc["apiVersion"].as<std::string>(), "apps/v1") << where;
        const auto selector = spec["selector"]["matchLabels"];
        const auto labels = spec["template"]["metadata"]["labels"];
        ASSERT_TRUE(selector && labels) << where;
        for (const auto& kv : selector) {  // the selector must match the pods' labels
            EXPECT_EQ(labels[kv.first.as<std::string>()].as<std::string>(),
                      kv.second.as<std::string>())
                << where;
        }
        const auto containers = spec["template"]["spec"]["containers"];
        ASSERT_TRUE(containers && containers.IsSequence() && containers.size() > 0) << where;
        for (const auto& c : containers) {
            EXPECT_TRUE(c["name"] && c["image"]) << where;
        }
    } else if (kind == "Service") {
        EXPECT_EQ(doc["apiVersion"].as<std::string>(), "v1") << where;
        EXPECT_TRUE(spec["selector"] && spec["ports"] && spec["ports"].IsSequence()) << where;
    } else if (kind == "ConfigMap") {
        EXPECT_TRUE(doc["data"].IsMap()) << where;
    } else {
        ADD_FAILURE() << where << ": a kind this test does not know: " << kind;
    }
}

std::vector<YAML::Node> load_all(const std::string& relative) {
    return YAML::LoadAll(read(relative));
}

TEST(DeployKitTest, KubernetesManifestsAreWellFormed) {
    std::map<std::string, YAML::Node> by_name;
    for (const char* file :
         {"deploy/kubernetes/bluegreen.yaml", "deploy/kubernetes/sidecar.yaml"}) {
        const auto docs = load_all(file);
        ASSERT_FALSE(docs.empty()) << file;
        for (std::size_t i = 0; i < docs.size(); ++i) {
            const auto where = std::string(file) + " document " + std::to_string(i);
            check_object(docs[i], where);
            by_name[docs[i]["kind"].as<std::string>() + "/" +
                    docs[i]["metadata"]["name"].as<std::string>()] = docs[i];
        }
    }
    // Two colors, each a Deployment behind a headless Service.
    for (const char* color : {"blue", "green"}) {
        const auto svc = by_name["Service/app-" + std::string(color)];
        ASSERT_TRUE(svc) << color;
        EXPECT_EQ(svc["spec"]["clusterIP"].as<std::string>(), "None");
        EXPECT_EQ(svc["spec"]["selector"]["color"].as<std::string>(), color);
        EXPECT_TRUE(by_name["Deployment/app-" + std::string(color)]);
    }
    // The sidecar: readiness on /healthz, a preStop, a grace period longer
    // than the pause plus the shutdown, the token from a Secret, and the
    // configuration it mounts loads.
    const auto pod = by_name["Deployment/gateway"]["spec"]["template"]["spec"];
    ASSERT_TRUE(pod);
    const auto bgswitch = pod["containers"][0];
    EXPECT_EQ(bgswitch["name"].as<std::string>(), "bgswitch");
    EXPECT_EQ(bgswitch["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/healthz");
    EXPECT_TRUE(bgswitch["lifecycle"]["preStop"]["exec"]["command"]);
    bool secret = false;
    for (const auto& v : pod["volumes"]) {
        secret = secret ||
                 (v["secret"] && v["secret"]["secretName"].as<std::string>() == "bgswitch-admin");
    }
    EXPECT_TRUE(secret);

    const auto cfg_text =
        by_name["ConfigMap/bgswitch-config"]["data"]["bgswitch.yaml"].as<std::string>();
    // token_file names the mounted Secret; here a file of the test stands in.
    const auto token_file = ::testing::TempDir() + "/k8s-token";
    std::ofstream(token_file) << "t0ken\n";
    auto text = cfg_text;
    text.replace(text.find("/etc/bgswitch/secret/token"),
                 std::string("/etc/bgswitch/secret/token").size(), token_file);
    const auto loaded = config::load_config_text(text, "sidecar.yaml ConfigMap");
    ASSERT_TRUE(loaded.config) << loaded.errors.front();
    const auto grace = pod["terminationGracePeriodSeconds"].as<int>();
    const auto shutdown =
        std::chrono::duration_cast<std::chrono::seconds>(loaded.config->timeouts.shutdown).count();
    EXPECT_GT(grace, 10 + shutdown) << "preStop pause + timeouts.shutdown must fit";
    std::remove(token_file.c_str());
}

// A configuration compose.yaml embeds, loaded (compose turns $$ into $).
config::LoadResult compose_config(const YAML::Node& doc, const std::string& name) {
    auto text = doc["configs"][name]["content"].as<std::string>();
    for (std::size_t at; (at = text.find("$$")) != std::string::npos;) {
        text.erase(at, 1);
    }
    return config::load_config_text(
        text, "compose.yaml " + name + " config",
        [](const std::string& var) -> std::optional<std::string> {
            return var == "BGSWITCH_ADMIN_TOKEN" ? std::optional<std::string>("t") : std::nullopt;
        });
}

TEST(DeployKitTest, ComposeFileHasTheColorsBgswitchAndRedis) {
    const auto doc = YAML::Load(read("deploy/compose.yaml"));
    const auto services = doc["services"];
    ASSERT_TRUE(services);
    for (const char* s : {"app-blue", "app-green", "bgswitch", "redis"}) {
        EXPECT_TRUE(services[s]) << s;
    }
    EXPECT_EQ(services["redis"]["profiles"][0].as<std::string>(), "fleet");
    // The colors share their settings through a merge key (<<: *app).
    for (const char* color : {"app-blue", "app-green"}) {
        const auto merged = services[color]["<<"];
        ASSERT_TRUE(merged) << color;
        EXPECT_TRUE(merged["healthcheck"]["test"]) << color;
        EXPECT_EQ(services[color]["command"][0].as<std::string>(), "demo-upstream") << color;
    }
    // The embedded configuration loads.
    const auto loaded = compose_config(doc, "bgswitch");
    ASSERT_TRUE(loaded.config) << loaded.errors.front();
    EXPECT_EQ(loaded.config->group(Color::Green).upstreams.at(0).to_string(), "app-green:8080");
}

TEST(DeployKitTest, ComposeFleetProfileHasThreeGatewaysOnOneRedis) {
    const auto doc = YAML::Load(read("deploy/compose.yaml"));
    const auto services = doc["services"];
    std::set<std::string> hostnames;
    std::set<std::string> ports;
    for (const char* g : {"gateway-1", "gateway-2", "gateway-3"}) {
        const auto gw = services[g];
        ASSERT_TRUE(gw) << g;
        EXPECT_EQ(gw["<<"]["profiles"][0].as<std::string>(), "fleet") << g;
        EXPECT_EQ(gw["<<"]["configs"][0]["source"].as<std::string>(), "bgswitch-fleet") << g;
        hostnames.insert(gw["hostname"].as<std::string>());
        ports.insert(gw["ports"][0].as<std::string>());
    }
    EXPECT_EQ(hostnames.size(), 3u) << "each gateway is its own node";
    EXPECT_EQ(ports.size(), 3u);
    const auto loaded = compose_config(doc, "bgswitch-fleet");
    ASSERT_TRUE(loaded.config) << loaded.errors.front();
    ASSERT_TRUE(loaded.config->fleet);
    EXPECT_EQ(loaded.config->fleet->url, "redis://redis:6379/0");
    EXPECT_EQ(loaded.config->fleet->key, "bgswitch:compose");
}

// hadolint's rules, by reading: a non-root user, a HEALTHCHECK, no `latest`
// base, apt lists removed, a STOPSIGNAL, two stages.
TEST(DeployKitTest, DockerfileFollowsTheUsualRules) {
    const auto text = read("deploy/Dockerfile");
    ASSERT_FALSE(text.empty());
    EXPECT_NE(text.find("FROM debian:12 AS build"), std::string::npos);
    EXPECT_NE(text.find("FROM debian:12-slim"), std::string::npos);
    EXPECT_NE(text.find("USER bgswitch"), std::string::npos);
    EXPECT_NE(text.find("HEALTHCHECK"), std::string::npos);
    EXPECT_NE(text.find("/healthz"), std::string::npos);
    EXPECT_NE(text.find("STOPSIGNAL SIGTERM"), std::string::npos);
    EXPECT_NE(text.find("VOLUME [\"/var/lib/bgswitch\"]"), std::string::npos);
    EXPECT_EQ(text.find(":latest\n"), std::string::npos) << "pin base images";
    std::size_t installs = 0;
    for (std::size_t at = 0; (at = text.find("apt-get install", at)) != std::string::npos; ++at) {
        ++installs;
        EXPECT_NE(text.find("--no-install-recommends", at), std::string::npos);
    }
    EXPECT_EQ(installs, 2u);
    std::size_t cleans = 0;
    for (std::size_t at = 0;
         (at = text.find("rm -rf /var/lib/apt/lists/*", at)) != std::string::npos; ++at) {
        ++cleans;
    }
    EXPECT_EQ(cleans, installs);
}

}  // namespace
}  // namespace bgs::test
