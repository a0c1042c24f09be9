#include "proxy/control/fleet.hpp"

#include "proxy/common/logging.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <charconv>

namespace bgs::control {

namespace asio = net::asio;
using namespace std::chrono_literals;

namespace {

// Every Redis call's deadline: a store that does not answer within it counts
// as unreachable.
constexpr Duration kCallTimeout = 2s;
// The safety net: the record is read at least this often.
constexpr Duration kReadEvery = 1s;
// Heartbeats: sent about every second, kept by Redis for this long (an
// instance gone for good drops out of the listing then).
constexpr auto kBeatEvery = 900ms;
constexpr auto kBeatTtl = std::chrono::milliseconds(30s);
constexpr Duration kFirstRetry = 100ms;
constexpr Duration kMaxRetry = 1s;

using ReadResult = std::variant<std::optional<state::SwitchState>, std::string>;

net::Task<void> read_into(state::FleetStore* store, ReadResult* out, bool* done) {
    *out = co_await store->read();
    *done = true;
}

redis::Url parse_url(const std::string& text) {
    std::string why;
    auto url = redis::Url::parse(text, &why);
    if (!url) {
        throw std::invalid_argument("state.redis.url: " + why);  // the loader checked it
    }
    return *url;
}

}  // namespace

Fleet::Fleet(config::Fleet settings, Hooks hooks)
    : settings_(std::move(settings)), url_(parse_url(settings_.url)), hooks_(std::move(hooks)) {}

Fleet::~Fleet() = default;

std::string Fleet::where() const {
    return url_.redacted();
}

ReadResult Fleet::read_once(const config::Fleet& settings, Duration timeout) {
    std::string why;
    const auto url = redis::Url::parse(settings.url, &why);
    if (!url) {
        return why;
    }
    asio::io_context ctx(1);
    ReadResult out = std::string("no answer within " + format_duration(timeout));
    bool done = false;
    {
        state::FleetStore store(ctx.get_executor(), *url, settings.key, timeout);
        asio::co_spawn(ctx, read_into(&store, &out, &done), asio::detached);
        const auto deadline = std::chrono::steady_clock::now() + timeout + 500ms;
        while (!done && std::chrono::steady_clock::now() < deadline &&
               ctx.run_one_until(deadline) > 0) {
        }
    }
    return out;
}

void Fleet::start(const asio::any_io_executor& ex) {
    follower_ = std::make_unique<state::FleetStore>(ex, url_, settings_.key, kCallTimeout);
    calls_ = std::make_unique<state::FleetStore>(ex, url_, settings_.key, kCallTimeout);
    subscription_ = std::make_unique<redis::Connection>(ex);
    timer_ = std::make_unique<asio::steady_timer>(ex);
    log().info("fleet {}: node {}, following the record in Redis at {}", settings_.key,
               settings_.node, where());
    asio::co_spawn(ex, follow(), [](std::exception_ptr e) {
        if (e) {
            log().error("fleet: the follower ended by an exception");
        }
    });
}

void Fleet::stop() {
    stopping_ = true;
    if (timer_) {
        timer_->cancel();
        subscription_->cancel();
        follower_->connection().cancel();
        calls_->connection().cancel();
    }
}

void Fleet::set_up(bool up, const std::string& error) {
    if (up == up_ && (up || error == error_)) {
        return;
    }
    up_ = up;
    error_ = up ? "" : error;
    const auto& local = hooks_.local();
    if (up) {
        log().info("fleet {}: Redis at {} answers; version {} applied here", settings_.key, where(),
                   local.version);
    } else {
        log().error(
            "fleet {}: Redis at {} unreachable: {}; serving {} (version {}) as last applied, "
            "switches refused until it is back",
            settings_.key, where(), error, to_string(local.active), local.version);
    }
}

net::Task<void> Fleet::pause(Duration d) {
    timer_->expires_after(d);
    co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
}

net::Task<bool> Fleet::subscribe() {
    if (auto err = co_await subscription_->connect(url_, kCallTimeout)) {
        set_up(false, *err);
        co_return false;
    }
    const std::vector<std::string> sub{"SUBSCRIBE", follower_->keys().channel()};
    const auto r = co_await subscription_->command(sub, kCallTimeout);
    std::string error;
    if (const auto* err = std::get_if<std::string>(&r)) {
        error = *err;
    } else if (std::get<redis::Reply>(r).is_error()) {
        error = "SUBSCRIBE refused: " + std::get<redis::Reply>(r).str;
    }
    if (!error.empty()) {
        subscription_->close();
        set_up(false, error);
        co_return false;
    }
    co_return true;
}

net::Task<void> Fleet::follow() {
    Duration retry = kFirstRetry;
    std::uint64_t announced = 0;  // the version the last message named
    while (!stopping_) {
        const bool ok =
            (subscription_->connected() || co_await subscribe()) && co_await sync(announced);
        announced = 0;
        if (stopping_) {
            break;
        }
        if (!ok) {
            subscription_->close();
            co_await pause(retry);
            retry = std::min(retry * 2, kMaxRetry);
            continue;
        }
        retry = kFirstRetry;
        // A message (a commit anywhere in the fleet) or a second of silence:
        // either way the record is looked at again. A lost subscription is
        // made again on the next turn.
        const auto message = co_await subscription_->poll(kReadEvery);
        if (message && std::holds_alternative<std::string>(*message) && !stopping_) {
            log().warn("fleet {}: subscription lost: {}; subscribing again", settings_.key,
                       std::get<std::string>(*message));
        } else if (message) {
            // ["message", channel, version]
            const auto& m = std::get<redis::Reply>(*message);
            if (m.elements.size() == 3) {
                const auto& v = m.elements[2].str;
                std::from_chars(v.data(), v.data() + v.size(), announced);
            }
        }
    }
}

net::Task<bool> Fleet::sync(std::uint64_t announced) {
    for (int turn = 0; turn < 3; ++turn) {
        // A message named a newer version: the record is read at once;
        // otherwise its version first, and the record only when it moved.
        std::variant<std::uint64_t, std::string> version = announced;
        if (turn > 0 || announced <= hooks_.local().version) {
            version = co_await follower_->version();
        }
        if (const auto* err = std::get_if<std::string>(&version)) {
            set_up(false, *err);
            co_return false;
        }
        const auto record_version = std::get<std::uint64_t>(version);
        const auto local = hooks_.local();  // a copy: the awaits below may change it
        if (record_version < local.version) {
            // Redis lost the record (or was restored from an older copy): the
            // highest version any instance applied wins, so nobody goes back.
            const auto seeded = co_await follower_->seed(local);
            if (const auto* err = std::get_if<std::string>(&seeded)) {
                set_up(false, *err);
                co_return false;
            }
            if (std::get<bool>(seeded)) {
                log().warn("fleet {}: {}; seeded it with this instance's version {} ({})",
                           settings_.key,
                           record_version == 0
                               ? std::string("Redis holds no record (a new fleet, or Redis lost "
                                             "its data)")
                               : "Redis holds version " + std::to_string(record_version) +
                                     ", older than this instance's",
                           local.version, to_string(local.active));
                break;
            }
            continue;  // another instance seeded a newer one meanwhile: read it
        }
        if (record_version > local.version) {
            auto record = co_await follower_->read();
            if (const auto* err = std::get_if<std::string>(&record)) {
                set_up(false, *err);
                co_return false;
            }
            auto& newer = std::get<std::optional<state::SwitchState>>(record);
            if (newer && newer->version > hooks_.local().version) {
                hooks_.apply(std::move(*newer));
            }
        }
        break;
    }
    set_up(true, "");

    const auto& local = hooks_.local();
    const auto now = std::chrono::steady_clock::now();
    if (local.version != beaten_version_ || now - beaten_at_ >= kBeatEvery) {
        const auto version = local.version;
        const std::string active(to_string(local.active));
        if (auto err = co_await follower_->heartbeat(settings_.node, version, active, kBeatTtl)) {
            set_up(false, *err);
            co_return false;
        }
        beaten_version_ = version;
        beaten_at_ = now;
    }
    co_return true;
}

net::Task<state::CasOutcome> Fleet::commit(std::uint64_t expected, const state::SwitchState& next) {
    auto guard = co_await calls_lock_.lock();
    auto out = co_await calls_->commit(expected, next);
    if (out.result == state::CasOutcome::Result::Unavailable) {
        set_up(false, out.error);
    }
    co_return out;
}

net::Task<std::variant<FleetView, std::string>> Fleet::view() {
    using Out = std::variant<FleetView, std::string>;
    auto guard = co_await calls_lock_.lock();
    FleetView v;
    const auto version = co_await calls_->version();
    if (const auto* err = std::get_if<std::string>(&version)) {
        co_return Out{*err};
    }
    v.version = std::get<std::uint64_t>(version);
    auto nodes = co_await calls_->nodes();
    if (const auto* err = std::get_if<std::string>(&nodes)) {
        co_return Out{*err};
    }
    v.nodes = std::move(std::get<std::vector<state::NodeReport>>(nodes));
    co_return Out{std::move(v)};
}

net::Task<FleetWait> Fleet::wait(std::uint64_t version, Duration timeout) {
    FleetWait out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto first = co_await view();
    if (const auto* err = std::get_if<std::string>(&first)) {
        out.error = *err;
        co_return out;
    }
    std::vector<std::string> expected;
    for (const auto& n : std::get<FleetView>(first).nodes) {
        if (n.age < kLiveFor) {
            expected.push_back(n.node);
        }
    }
    asio::steady_timer tick(co_await asio::this_coro::executor);
    auto nodes = std::get<FleetView>(std::move(first)).nodes;
    for (;;) {
        out.applied.clear();
        out.lagging.clear();
        for (const auto& name : expected) {
            const auto it = std::find_if(nodes.begin(), nodes.end(),
                                         [&](const auto& n) { return n.node == name; });
            (it != nodes.end() && it->applied_version >= version ? out.applied : out.lagging)
                .push_back(name);
        }
        if (out.lagging.empty() || std::chrono::steady_clock::now() >= deadline || stopping_) {
            co_return out;
        }
        tick.expires_after(20ms);
        co_await tick.async_wait(asio::as_tuple(asio::use_awaitable));
        auto again = co_await view();
        if (const auto* err = std::get_if<std::string>(&again)) {
            out.error = *err;
            co_return out;
        }
        nodes = std::get<FleetView>(std::move(again)).nodes;
    }
}

}  // namespace bgs::control
