#include "proxy/state/state_store.hpp"
#include "proxy/state/heartbeat.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>

namespace bgs::state {
namespace {

std::string temp_path(const std::string& name) {
    auto p = ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
    std::filesystem::remove_all(p);
    return p;
}

TEST(StateStoreTest, MissingFileIsNoState) {
    StateStore store(temp_path("missing.json"));
    EXPECT_FALSE(store.load());
}

TEST(StateStoreTest, SaveThenLoadRoundTrips) {
    const auto dir = temp_path("state-dir");
    StateStore store(dir + "/nested/state.json");  // directories are created
    SwitchState s;
    s.active = Color::Green;
    s.previous = Color::Blue;
    s.version = 42;
    HistoryEvent e;
    e.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795435200123));
    e.action = "rollback";
    e.from = Color::Blue;
    e.to = Color::Green;
    e.result = "switched";
    e.source = "::1";
    e.reason = "quote \" and newline \n";
    e.version = 42;
    e.dry_run = true;
    e.failure = "smoke check api on 127.0.0.1:9101: status 503, expected 200";
    e.health_us = 1500;
    e.smoke_us = 2250;
    s.record(e);
    ASSERT_FALSE(store.save(s));
    auto loaded = store.load();
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->active, Color::Green);
    EXPECT_EQ(loaded->previous, Color::Blue);
    EXPECT_EQ(loaded->version, 42u);
    ASSERT_EQ(loaded->history.size(), 1u);
    const auto& h = loaded->history.front();
    EXPECT_EQ(h.time, e.time);
    EXPECT_EQ(h.reason, e.reason);
    EXPECT_EQ(h.source, "::1");
    EXPECT_EQ(h.smoke_us, 2250u);
    EXPECT_TRUE(h.dry_run);
    EXPECT_EQ(h.failure, e.failure);
    EXPECT_FALSE(std::filesystem::exists(store.path() + ".tmp"));
    std::filesystem::remove_all(dir);
}

// The lists set through the API and the history of such changes and of
// reloads survive a restart; a file written before lists existed still loads.
TEST(StateStoreTest, UpstreamListsAndTheirHistoryRoundTrip) {
    const auto path = temp_path("state-lists.json");
    StateStore store(path);
    SwitchState s;
    s.upstreams[index(Color::Green)] = std::vector<std::string>{"app-green:8080", "10.0.0.7:80"};
    HistoryEvent set;
    set.action = "set_upstreams";
    set.from = set.to = Color::Green;
    set.result = "updated";
    set.old_upstreams = {"127.0.0.1:9101"};
    set.new_upstreams = {"app-green:8080", "10.0.0.7:80"};
    s.record(set);
    HistoryEvent reload;
    reload.action = "reload";
    reload.result = "reloaded";
    reload.changed = {"timeouts.idle", "log.level"};
    s.record(reload);
    ASSERT_FALSE(store.save(s));
    auto loaded = store.load();
    ASSERT_TRUE(loaded);
    EXPECT_FALSE(loaded->upstreams[index(Color::Blue)]);
    EXPECT_EQ(loaded->upstreams[index(Color::Green)], s.upstreams[index(Color::Green)]);
    ASSERT_EQ(loaded->history.size(), 2u);
    EXPECT_EQ(loaded->history[0].changed, reload.changed);
    EXPECT_EQ(loaded->history[1].old_upstreams, set.old_upstreams);
    EXPECT_EQ(loaded->history[1].new_upstreams, set.new_upstreams);

    std::ofstream(path) << R"({"format":1,"active":"green","previous":"blue","version":3,)"
                        << R"("history":[]})";
    loaded = store.load();
    ASSERT_TRUE(loaded);
    EXPECT_EQ(loaded->version, 3u);
    EXPECT_FALSE(loaded->upstreams[0]);
    EXPECT_FALSE(loaded->upstreams[1]);
    std::filesystem::remove(path);
}

TEST(StateStoreTest, TheCanaryAndItsEventsRoundTrip) {
    SwitchState s;
    s.version = 5;
    s.canary = Canary{Color::Green, 25, 4,
                      std::chrono::system_clock::time_point(std::chrono::seconds(1800000000))};
    HistoryEvent e;
    e.time = std::chrono::system_clock::time_point(std::chrono::seconds(1800000000));
    e.action = "canary";
    e.from = Color::Blue;
    e.to = Color::Green;
    e.result = "canary";
    e.version = 5;
    e.percent = 25;
    s.record(e);
    const auto back = StateStore::from_json(StateStore::to_json(s));
    ASSERT_TRUE(back.canary);
    EXPECT_EQ(back.canary->to, Color::Green);
    EXPECT_EQ(back.canary->percent, 25u);
    EXPECT_EQ(back.canary->epoch, 4u);
    EXPECT_EQ(back.canary->since, s.canary->since);
    EXPECT_EQ(back.history.front().percent, 25u);
    s.canary.reset();
    EXPECT_FALSE(StateStore::from_json(StateStore::to_json(s)).canary);

    // A canary to the active color, or out of range, is a corrupt file.
    for (
        const char* bad :
        {R"({"active":"blue","version":2,"canary":{"to":"blue","percent":5,"epoch":1,"since":"2027-01-15T08:00:00Z"}})",
         R"({"active":"blue","version":2,"canary":{"to":"green","percent":101,"epoch":1,"since":"2027-01-15T08:00:00Z"}})",
         R"({"active":"blue","version":2,"canary":{"to":"green","percent":0,"epoch":1,"since":"2027-01-15T08:00:00Z"}})"}) {
        EXPECT_THROW(StateStore::from_json(bad), std::runtime_error) << bad;
    }
}

// Found by tests/fuzz/state_fuzz.cpp: a year or a microsecond count past what
// the clock's 64-bit nanoseconds hold overflowed (undefined behaviour).
TEST(StateStoreTest, TimesBeyondTheClocksRangeAreErrors) {
    for (
        const char* bad :
        {R"({"active":"blue","version":1,"committed_unix_us":65729880000000000})",
         R"({"active":"blue","version":1,"committed_unix_us":-1})",
         R"({"active":"blue","version":1,"history":[{"time":"4052-01-01T00:00:00.000Z","action":"switch","from":"blue","to":"green","result":"switched","source":"","reason":"","version":1,"gates":{}}]})",
         R"({"active":"blue","version":1,"history":[{"time":"1900-01-01T00:00:00.000Z","action":"switch","from":"blue","to":"green","result":"switched","source":"","reason":"","version":1,"gates":{}}]})"}) {
        EXPECT_THROW(StateStore::from_json(bad), std::runtime_error) << bad;
    }
    EXPECT_NO_THROW(StateStore::from_json(
        R"({"active":"blue","version":1,"committed_unix_us":4102444800000000})"));
    // Found by the same target: a legacy gate timing in milliseconds too large
    // for the microseconds it is read into.
    EXPECT_THROW(
        StateStore::from_json(
            R"({"active":"blue","version":1,"history":[{"time":"2026-01-01T00:00:00.000Z","action":"switch","from":"blue","to":"green","result":"switched","source":"","reason":"","version":1,"gates":{"health_ms":7.7e111}}]})"),
        std::runtime_error);
}

// A lying Redis: a heartbeat of any shape gives a report or none, never a throw.
TEST(HeartbeatTest, AnyJsonDecodesOrIsNone) {
    EXPECT_FALSE(decode_heartbeat("not json", "a", 1000));
    EXPECT_FALSE(decode_heartbeat("[1]", "a", 1000));
    const auto odd = decode_heartbeat(
        R"({"applied_version":-5,"at_ms":-9223372036854775807,"backend":7,"active":"blue"})", "a",
        9223372036854775807);
    ASSERT_TRUE(odd);
    EXPECT_EQ(odd->applied_version, 0u);
    EXPECT_GT(odd->age.count(), 0);
    EXPECT_EQ(odd->backend, "");
    EXPECT_EQ(odd->active, "blue");
    const auto future = decode_heartbeat(R"({"applied_version":1e300,"at_ms":5000})", "b", 1000);
    ASSERT_TRUE(future);
    EXPECT_EQ(future->applied_version, 0u);
    EXPECT_EQ(future->age.count(), 0);
    const auto good = decode_heartbeat(R"({"applied_version":7,"at_ms":900})", "c", 1000);
    EXPECT_EQ(good->applied_version, 7u);
    EXPECT_EQ(good->age.count(), 100);
}

TEST(StateStoreTest, HistoryIsBounded) {
    SwitchState s;
    for (int i = 0; i < 500; ++i) {
        HistoryEvent e;
        e.version = static_cast<std::uint64_t>(i);
        s.record(e);
    }
    EXPECT_EQ(s.history.size(), SwitchState::kHistoryLimit);
    EXPECT_EQ(s.history.front().version, 499u);
}

TEST(StateStoreTest, CorruptFilesAreErrorsThatNameTheFile) {
    const auto path = temp_path("corrupt.json");
    const char* bad[] = {"",
                         "{",
                         "[]",
                         R"({"active":"red","version":1})",
                         R"({"active":"blue"})",
                         R"({"active":"blue","version":"x"})",
                         R"({"active":"blue","version":1,"history":[{"time":"yesterday"}]})"};
    for (const char* text : bad) {
        std::ofstream(path) << text;
        StateStore store(path);
        try {
            store.load();
            ADD_FAILURE() << "accepted: " << text;
        } catch (const StateError& e) {
            EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        }
    }
    std::filesystem::remove(path);
}

TEST(StateStoreTest, ADirectoryOrAVersionOutOfRangeIsNamedAsSuch) {
    const auto dir = temp_path("state-is-dir");
    std::filesystem::create_directories(dir);
    StateStore store(dir);
    try {
        store.load();
        FAIL() << "a directory loaded";
    } catch (const StateError& e) {
        EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
    }
    const auto file = temp_path("state-version.json");
    std::ofstream(file) << R"({"format":1,"active":"blue","previous":null,)"
                        << R"("version":18446744073709551615,"history":[]})";
    try {
        StateStore(file).load();
        FAIL() << "a version at 2^64-1 loaded";
    } catch (const StateError& e) {
        EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
    }
    std::filesystem::remove_all(dir);
    std::filesystem::remove(file);
}

// Two processes on one state file would diverge; the second one is refused
// with the first one's PID (flock conflicts between open files in one process
// too, which is what lets this test show it).
TEST(StateStoreTest, OneOwnerAtATime) {
    const auto path = temp_path("locked.json");
    {
        StateStore first(path);
        first.lock();
        StateStore second(path);
        try {
            second.lock();
            FAIL() << "locked twice";
        } catch (const StateError& e) {
            EXPECT_NE(std::string(e.what()).find("in use by another bgswitch (pid " +
                                                 std::to_string(::getpid()) + ")"),
                      std::string::npos)
                << e.what();
        }
    }
    StateStore after(path);
    EXPECT_NO_THROW(after.lock());  // released with its owner
    std::filesystem::remove(path + ".lock");
}

TEST(StateStoreTest, UnwritableLocationIsReportedNotThrown) {
    const auto blocker = temp_path("blocker");
    std::ofstream(blocker) << "a file where a directory should be";
    StateStore store(blocker + "/state.json");
    auto err = store.save(SwitchState{});
    ASSERT_TRUE(err);
    EXPECT_NE(err->find(blocker), std::string::npos) << *err;
    std::filesystem::remove(blocker);
}

}  // namespace
}  // namespace bgs::state
