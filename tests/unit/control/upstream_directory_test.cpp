// The upstream directory with names answered by the test: what each change
// publishes, what stays, what is retired. No sockets; refreshes run on a
// local io_context.
#include "proxy/control/upstream_directory.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <map>
#include <mutex>

namespace bgs::control {
namespace {

using namespace std::chrono_literals;

// Names the test sets; thread-safe (the directory asks from its resolver thread).
struct FakeDns {
    std::mutex mutex;
    std::map<std::string, std::vector<std::string>> answers;

    void set(const std::string& name, std::vector<std::string> addresses) {
        std::lock_guard lock(mutex);
        answers[name] = std::move(addresses);
    }
    NameResolver resolver() {
        return [this](const std::string& host) {
            std::lock_guard lock(mutex);
            auto it = answers.find(host);
            return it == answers.end() ? std::vector<std::string>{} : it->second;
        };
    }
};

struct Fixture {
    boost::asio::io_context ioc;  // outlives the directory's timer
    config::Config cfg;
    routing::ColorState colors{Color::Blue, 1};
    FakeDns dns;
    std::array<routing::Members, 2> published;
    std::vector<std::string> joined;
    std::unique_ptr<UpstreamDirectory> dir;

    Fixture() {
        UpstreamDirectory::Hooks hooks;
        hooks.publish = [this](Color c, const routing::Members& m) { published[index(c)] = m; };
        hooks.joined = [this](Color, const routing::UpstreamPtr& u, bool) {
            joined.push_back(u->name);
        };
        dir = std::make_unique<UpstreamDirectory>(cfg, colors, dns.resolver(), std::move(hooks));
    }

    void refresh(Color c) {
        boost::asio::io_context here;
        boost::asio::co_spawn(here, dir->refresh(c), boost::asio::detached);
        here.run();
    }

    std::vector<std::string> names(Color c) const {
        std::vector<std::string> out;
        for (const auto& u : published[index(c)]) {
            out.push_back(u->name);
        }
        return out;
    }
};

config::HostPort hp(const std::string& host, std::uint16_t port) {
    return {host, port};
}

TEST(UpstreamDirectoryTest, EveryAddressOfANameIsAnUpstream) {
    Fixture f;
    f.dns.set("app-green", {"10.0.0.5", "10.0.0.6", "fd00::5"});
    f.dir->load(Color::Green, {hp("app-green", 8080), hp("10.0.0.9", 8080)}, ListSource::Config);
    f.dir->start(f.ioc.get_executor());
    EXPECT_EQ(f.names(Color::Green),
              (std::vector<std::string>{"app-green:8080 (10.0.0.5)", "app-green:8080 (10.0.0.6)",
                                        "app-green:8080 (fd00::5)", "10.0.0.9:8080"}));
    // Addresses found at start start out healthy (the probes tell within an interval).
    EXPECT_TRUE(f.published[1].front()->healthy.load());
    const auto resolved = f.dir->resolved(Color::Green);
    ASSERT_EQ(resolved.size(), 4u);
    EXPECT_EQ(resolved[2].upstream, "app-green:8080");
    EXPECT_EQ(resolved[2].up->address, "[fd00::5]:8080");
    f.dir->stop();
}

TEST(UpstreamDirectoryTest, ANameWithTooManyAddressesKeepsTheFirst64) {
    Fixture f;
    std::vector<std::string> many;
    for (int i = 0; i < 300; ++i) {
        many.push_back("10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250));
    }
    f.dns.set("huge", many);
    f.dir->load(Color::Blue, {hp("huge", 80)}, ListSource::Config);
    EXPECT_EQ(f.dir->members(Color::Blue).size(), 64u);
}

TEST(UpstreamDirectoryTest, AChangedAddressJoinsUnprovenAndTheOldOneIsRetired) {
    Fixture f;
    f.dns.set("app", {"10.0.0.5", "10.0.0.6"});
    f.dir->load(Color::Blue, {hp("app", 80)}, ListSource::Config);
    f.dir->start(f.ioc.get_executor());
    const auto kept = f.published[0][0];
    const auto leaving = f.published[0][1];

    f.dns.set("app", {"10.0.0.5", "10.0.0.7"});
    f.refresh(Color::Blue);
    EXPECT_EQ(f.names(Color::Blue),
              (std::vector<std::string>{"app:80 (10.0.0.5)", "app:80 (10.0.0.7)"}));
    EXPECT_EQ(f.published[0][0], kept);  // the same upstream, with its health
    EXPECT_TRUE(leaving->retired.load());
    EXPECT_FALSE(f.published[0][1]->healthy.load());  // joins after its probes
    EXPECT_EQ(f.joined.back(), "app:80 (10.0.0.7)");
    f.dir->stop();
}

TEST(UpstreamDirectoryTest, AFailedResolutionKeepsTheLastAddresses) {
    Fixture f;
    f.dns.set("app", {"10.0.0.5"});
    f.dir->load(Color::Blue, {hp("app", 80)}, ListSource::Config);
    f.dir->start(f.ioc.get_executor());
    f.dns.set("app", {});
    f.refresh(Color::Blue);
    f.refresh(Color::Blue);
    ASSERT_EQ(f.dir->members(Color::Blue).size(), 1u);
    EXPECT_EQ(f.dir->members(Color::Blue)[0]->name, "app:80 (10.0.0.5)");
    EXPECT_FALSE(f.dir->members(Color::Blue)[0]->retired.load());
    f.dir->stop();
}

TEST(UpstreamDirectoryTest, ANameUnresolvableAtStartJoinsWhenItResolves) {
    Fixture f;
    f.dir->load(Color::Green, {hp("later", 80)}, ListSource::Config);
    f.dir->start(f.ioc.get_executor());
    EXPECT_TRUE(f.published[1].empty());
    f.dns.set("later", {"10.0.0.8"});
    f.refresh(Color::Green);
    EXPECT_EQ(f.names(Color::Green), (std::vector<std::string>{"later:80 (10.0.0.8)"}));
    f.dir->stop();
}

// The active color never goes to zero healthy upstreams because of a new
// list: the old ones serve until one of the new list is healthy.
TEST(UpstreamDirectoryTest, ANewListOnTheActiveColorWaitsForAHealthyMember) {
    Fixture f;
    f.dir->load(Color::Blue, {hp("10.0.0.1", 80)}, ListSource::Config);
    f.dir->start(f.ioc.get_executor());
    const auto old = f.published[0][0];
    f.dir->set_list(Color::Blue, {hp("10.0.0.2", 80)}, ListSource::Api);
    EXPECT_EQ(f.names(Color::Blue), (std::vector<std::string>{"10.0.0.2:80", "10.0.0.1:80"}));
    EXPECT_FALSE(old->retired.load());
    EXPECT_EQ(f.dir->source(Color::Blue), ListSource::Api);
    ASSERT_EQ(f.dir->list(Color::Blue).size(), 1u);

    const auto fresh = f.published[0][0];
    fresh->healthy = true;  // its probes passed
    f.dir->health_changed(Color::Blue, fresh);
    EXPECT_EQ(f.names(Color::Blue), (std::vector<std::string>{"10.0.0.2:80"}));
    EXPECT_TRUE(old->retired.load());
    f.dir->stop();
}

TEST(UpstreamDirectoryTest, ANewListOnTheIdleColorAppliesAtOnceAndKeptEntriesKeepTheirHealth) {
    Fixture f;
    f.dir->load(Color::Green, {hp("10.0.0.1", 80), hp("10.0.0.2", 80)}, ListSource::Config);
    f.dir->start(f.ioc.get_executor());
    const auto kept = f.published[1][1];
    f.dir->set_list(Color::Green, {hp("10.0.0.2", 80), hp("10.0.0.3", 80)}, ListSource::Api);
    EXPECT_EQ(f.names(Color::Green), (std::vector<std::string>{"10.0.0.2:80", "10.0.0.3:80"}));
    EXPECT_EQ(f.published[1][0], kept);
    EXPECT_TRUE(kept->healthy.load());
    EXPECT_FALSE(f.published[1][1]->healthy.load());
    f.dir->stop();
}

}  // namespace
}  // namespace bgs::control
