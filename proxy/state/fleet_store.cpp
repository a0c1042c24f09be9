#include "proxy/state/fleet_store.hpp"

#include "proxy/state/state_store.hpp"

#include <boost/json.hpp>

#include <charconv>

namespace bgs::state {

namespace json = boost::json;

namespace {

// Writes the record when its version is the expected one, and announces the
// new version; answers -1, or the record's version when it differs.
constexpr const char* kCompareAndSet = R"(
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return current end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'state', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return -1
)";

// Writes the record only over none or an older one: 1 when it wrote.
constexpr const char* kSeed = R"(
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'state', ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[1])
return 1
)";

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

const redis::Reply* reply_or_error(const redis::Result& r, std::string& error) {
    if (const auto* err = std::get_if<std::string>(&r)) {
        error = *err;
        return nullptr;
    }
    const auto& reply = std::get<redis::Reply>(r);
    if (reply.is_error()) {
        error = "redis: " + reply.str;
        return nullptr;
    }
    return &reply;
}

}  // namespace

FleetStore::FleetStore(net::asio::any_io_executor ex, redis::Url url, std::string key,
                       Duration timeout)
    : conn_(std::move(ex)), url_(std::move(url)), keys_(std::move(key)), timeout_(timeout) {}

net::Task<std::optional<std::string>> FleetStore::ensure_connected() {
    if (conn_.usable()) {
        co_return std::nullopt;
    }
    co_return co_await conn_.connect(url_, timeout_);
}

net::Task<redis::Result> FleetStore::call(std::vector<std::string> args) {
    if (auto err = co_await ensure_connected()) {
        co_return redis::Result{*err};
    }
    co_return co_await conn_.command(std::move(args), timeout_);
}

net::Task<std::variant<std::optional<std::string>, std::string>> FleetStore::field(
    const char* name) {
    using Out = std::variant<std::optional<std::string>, std::string>;
    const std::vector<std::string> get{"HGET", keys_.record, name};
    const auto r = co_await call(get);
    std::string error;
    const auto* reply = reply_or_error(r, error);
    if (reply == nullptr) {
        co_return Out{error};
    }
    if (reply->type == redis::Reply::Type::Nil) {
        co_return Out{std::optional<std::string>{}};
    }
    co_return Out{std::optional<std::string>{reply->str}};
}

net::Task<std::variant<std::optional<SwitchState>, std::string>> FleetStore::read() {
    using Out = std::variant<std::optional<SwitchState>, std::string>;
    const auto got = co_await field("state");
    if (const auto* err = std::get_if<std::string>(&got)) {
        co_return Out{*err};
    }
    const auto& text = std::get<std::optional<std::string>>(got);
    if (!text) {
        co_return Out{std::optional<SwitchState>{}};
    }
    try {
        co_return Out{std::optional<SwitchState>{StateStore::from_json(*text)}};
    } catch (const std::exception& e) {
        co_return Out{std::string("the fleet record is unreadable: ") + e.what()};
    }
}

net::Task<std::variant<std::uint64_t, std::string>> FleetStore::version() {
    using Out = std::variant<std::uint64_t, std::string>;
    const auto got = co_await field("version");
    if (const auto* err = std::get_if<std::string>(&got)) {
        co_return Out{*err};
    }
    const auto& text = std::get<std::optional<std::string>>(got);
    if (!text) {
        co_return Out{std::uint64_t{0}};
    }
    std::uint64_t v = 0;
    const auto* end = text->data() + text->size();
    if (std::from_chars(text->data(), end, v).ptr != end || text->empty()) {
        co_return Out{"the fleet record's version is not a number: " + text->substr(0, 40)};
    }
    co_return Out{v};
}

net::Task<CasOutcome> FleetStore::commit(std::uint64_t expected, const SwitchState& next) {
    CasOutcome out;
    const std::vector<std::string> eval{"EVAL",
                                        kCompareAndSet,
                                        "2",
                                        keys_.record,
                                        keys_.channel(),
                                        std::to_string(expected),
                                        std::to_string(next.version),
                                        StateStore::to_json(next)};
    const auto r = co_await call(eval);
    const auto* reply = reply_or_error(r, out.error);
    if (reply == nullptr) {
        co_return out;
    }
    if (reply->integer < 0) {
        out.result = CasOutcome::Result::Applied;
    } else {
        out.result = CasOutcome::Result::Conflict;
        out.current_version = static_cast<std::uint64_t>(reply->integer);
    }
    co_return out;
}

net::Task<std::variant<bool, std::string>> FleetStore::seed(const SwitchState& local) {
    using Out = std::variant<bool, std::string>;
    const std::vector<std::string> eval{"EVAL",
                                        kSeed,
                                        "2",
                                        keys_.record,
                                        keys_.channel(),
                                        std::to_string(local.version),
                                        StateStore::to_json(local)};
    const auto r = co_await call(eval);
    std::string error;
    const auto* reply = reply_or_error(r, error);
    if (reply == nullptr) {
        co_return Out{error};
    }
    co_return Out{reply->integer == 1};
}

net::Task<std::optional<std::string>> FleetStore::heartbeat(const std::string& node,
                                                            std::uint64_t applied_version,
                                                            const std::string& active,
                                                            std::chrono::milliseconds ttl) {
    const json::object beat{{"applied_version", applied_version},
                            {"at_ms", unix_ms()},
                            {"backend", "ok"},
                            {"active", active}};
    const std::vector<std::string> set{"SET", keys_.node(node), json::serialize(beat), "PX",
                                       std::to_string(ttl.count())};
    const std::vector<std::string> add{"SADD", keys_.nodes(), node};
    for (const auto* command : {&set, &add}) {
        const auto r = co_await call(*command);
        std::string error;
        if (reply_or_error(r, error) == nullptr) {
            co_return error;
        }
    }
    co_return std::nullopt;
}

net::Task<std::variant<std::vector<NodeReport>, std::string>> FleetStore::nodes() {
    using Out = std::variant<std::vector<NodeReport>, std::string>;
    const std::vector<std::string> members{"SMEMBERS", keys_.nodes()};
    const auto r = co_await call(members);
    std::string error;
    const auto* names = reply_or_error(r, error);
    if (names == nullptr) {
        co_return Out{error};
    }
    std::vector<NodeReport> out;
    if (names->elements.empty()) {
        co_return Out{out};
    }
    std::vector<std::string> mget{"MGET"};
    for (const auto& n : names->elements) {
        mget.push_back(keys_.node(n.str));
    }
    const auto beats_result = co_await call(mget);
    const auto* beats = reply_or_error(beats_result, error);
    if (beats == nullptr) {
        co_return Out{error};
    }
    const auto now = unix_ms();
    std::vector<std::string> expired{"SREM", keys_.nodes()};
    for (std::size_t i = 0; i < names->elements.size() && i < beats->elements.size(); ++i) {
        const auto& beat = beats->elements[i];
        if (beat.type != redis::Reply::Type::String) {
            expired.push_back(names->elements[i].str);  // its heartbeat expired
            continue;
        }
        auto n = decode_heartbeat(beat.str, names->elements[i].str, now);
        if (!n) {
            continue;
        }
        out.push_back(std::move(*n));
    }
    if (expired.size() > 2) {
        co_await call(expired);  // best effort: the next listing tries again
    }
    std::sort(out.begin(), out.end(),
              [](const NodeReport& a, const NodeReport& b) { return a.node < b.node; });
    co_return Out{out};
}

}  // namespace bgs::state
