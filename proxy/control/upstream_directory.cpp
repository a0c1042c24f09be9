#include "proxy/control/upstream_directory.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/common/random.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace bgs::control {

namespace asio = net::asio;
using routing::Members;
using routing::UpstreamPtr;

const char* to_string(ListSource s) {
    return s == ListSource::Api ? "api" : "config";
}

namespace {

// The whole batch runs on the resolver thread; the answer comes back to the
// control thread through the awaiting coroutine's executor.
net::Task<std::map<std::string, std::vector<std::string>>> resolve_batch(
    NameResolver resolver, std::vector<std::string> hosts) {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& h : hosts) {
        out[h] = resolver(h);
    }
    co_return out;
}

// A name with more addresses than this (a misconfigured zone, a hosts file
// gone wrong) keeps the first ones: each address costs a probe loop and pool
// slots on every worker.
constexpr std::size_t kMaxAddressesPerName = 64;

bool is_ip_literal(const std::string& host) {
    net::error_code ec;
    asio::ip::make_address(host, ec);
    return !ec;
}

}  // namespace

// A color takes live traffic: it is active, or a canary's share goes to it.
static bool serving(const routing::ColorState::Snapshot& s, Color color) {
    return s.active == color || (s.canary_percent > 0 && s.canary() == color);
}

UpstreamDirectory::UpstreamDirectory(const config::Config& cfg, const routing::ColorState& colors,
                                     NameResolver resolver, Hooks hooks)
    : cfg_(cfg),
      colors_state_(colors),
      resolver_(std::move(resolver)),
      hooks_(std::move(hooks)),
      resolver_thread_(std::make_unique<asio::thread_pool>(1)) {}

UpstreamDirectory::~UpstreamDirectory() {
    resolver_thread_->stop();
    resolver_thread_->join();
}

void UpstreamDirectory::load(Color color, std::vector<config::HostPort> list, ListSource source) {
    auto& cl = colors_[index(color)];
    cl.source = source;
    cl.list_hp = std::move(list);
    cl.entries.clear();
    for (const auto& hp : cl.list_hp) {
        Entry e{hp, is_ip_literal(hp.host), {}, false, false};
        apply(color, e, e.literal ? std::vector<std::string>{hp.host} : resolver_(hp.host),
              /*healthy_at_start=*/true);
        cl.entries.push_back(std::move(e));
    }
}

bool UpstreamDirectory::apply(Color color, Entry& e, const std::vector<std::string>& addresses,
                              bool healthy_at_start) {
    Members next;
    if (addresses.size() > kMaxAddressesPerName && !e.truncated) {
        e.truncated = true;
        log().warn("upstream {} of {} resolves to {} addresses; the first {} are used",
                   e.hp.to_string(), to_string(color), addresses.size(), kMaxAddressesPerName);
    }
    for (const auto& text : addresses) {
        if (next.size() == kMaxAddressesPerName) {
            break;
        }
        net::error_code ec;
        const auto ip = asio::ip::make_address(text, ec);
        if (ec) {
            continue;
        }
        const net::tcp::endpoint ep(ip, e.hp.port);
        const auto same = std::find_if(e.ups.begin(), e.ups.end(),
                                       [&](const UpstreamPtr& u) { return u->endpoint == ep; });
        if (same != e.ups.end()) {
            next.push_back(*same);
        } else if (std::none_of(next.begin(), next.end(),
                                [&](const UpstreamPtr& u) { return u->endpoint == ep; })) {
            next.push_back(std::make_shared<routing::Upstream>(e.hp, ep, healthy_at_start));
            give_tls(color, *next.back());
        }
    }
    if (next.empty()) {
        // A failed re-resolution keeps the last good addresses.
        if (!e.failing) {
            e.failing = true;
            log().warn(
                "upstream {} of {} does not resolve now; {}tried again every "
                "resolver.refresh",
                e.hp.to_string(), to_string(color),
                e.ups.empty() ? "" : "its last addresses stay in use and it is ");
        }
        return false;
    }
    if (e.failing) {
        e.failing = false;
        log().info("upstream {} of {} resolves again", e.hp.to_string(), to_string(color));
    }
    bool changed = next.size() != e.ups.size();
    for (const auto& u : next) {
        if (std::find(e.ups.begin(), e.ups.end(), u) == e.ups.end()) {
            changed = true;
            if (!healthy_at_start) {
                log().info("upstream {} of {} joins after {} passing probes", u->name,
                           to_string(color), cfg_.health.healthy_threshold);
            }
        }
    }
    for (const auto& u : e.ups) {
        if (std::find(next.begin(), next.end(), u) == next.end()) {
            changed = true;
            log().info("upstream {} of {} left its name's addresses: drained", u->name,
                       to_string(color));
        }
    }
    e.ups = std::move(next);
    return changed;
}

Members UpstreamDirectory::members(Color color) const {
    const auto& cl = colors_[index(color)];
    Members out;
    auto add = [&](const UpstreamPtr& u) {
        if (std::find(out.begin(), out.end(), u) == out.end()) {
            out.push_back(u);
        }
    };
    for (const auto& e : cl.entries) {
        std::for_each(e.ups.begin(), e.ups.end(), add);
    }
    std::for_each(cl.retiring.begin(), cl.retiring.end(), add);
    return out;
}

std::vector<UpstreamDirectory::Resolved> UpstreamDirectory::resolved(Color color) const {
    std::vector<Resolved> out;
    for (const auto& e : colors_[index(color)].entries) {
        for (const auto& u : e.ups) {
            out.push_back({e.hp.to_string(), u});
        }
    }
    return out;
}

void UpstreamDirectory::publish(Color color, bool probe_now) {
    auto now = members(color);
    auto& last = colors_[index(color)].published;
    for (const auto& u : last) {
        if (std::find(now.begin(), now.end(), u) == now.end()) {
            u->retired.store(true);  // its probes end
        }
    }
    if (hooks_.publish) {
        hooks_.publish(color, now);
    }
    for (const auto& u : now) {
        if (std::find(last.begin(), last.end(), u) == last.end() && hooks_.joined) {
            hooks_.joined(color, u, probe_now);
        }
    }
    last = std::move(now);
}

void UpstreamDirectory::set_list(Color color, std::vector<config::HostPort> list,
                                 ListSource source) {
    auto& cl = colors_[index(color)];
    const auto before = members(color);
    std::vector<Entry> entries;
    for (const auto& hp : list) {
        Entry e{hp, is_ip_literal(hp.host), {}, false, false};
        // An entry that stays keeps its addresses (and their health) until
        // its name is resolved again.
        const auto same = std::find_if(cl.entries.begin(), cl.entries.end(), [&](const Entry& o) {
            return o.hp.host == hp.host && o.hp.port == hp.port;
        });
        if (same != cl.entries.end()) {
            e.ups = same->ups;
        } else if (e.literal) {
            apply(color, e, {hp.host}, /*healthy_at_start=*/false);
        }
        entries.push_back(std::move(e));
    }
    cl.entries = std::move(entries);
    cl.list_hp = std::move(list);
    cl.source = source;
    if (serving(colors_state_.load(), color)) {
        for (const auto& u : before) {
            cl.retiring.push_back(u);  // deduplicated in members()
        }
    }
    settle(color);
    publish(color);
    // Names of the new list resolve on the resolver thread; they join when
    // they answer.
    if (!stopping_ && timer_) {
        asio::co_spawn(timer_->get_executor(), refresh(color), [](std::exception_ptr e) {
            if (e) {
                log().error("a name refresh ended by an exception");
            }
        });
    }
}

bool UpstreamDirectory::settle(Color color) {
    auto& cl = colors_[index(color)];
    if (cl.retiring.empty()) {
        return false;
    }
    bool new_one_healthy = false;
    for (const auto& e : cl.entries) {
        for (const auto& u : e.ups) {
            new_one_healthy = new_one_healthy || u->healthy.load();
        }
    }
    if (!new_one_healthy && serving(colors_state_.load(), color)) {
        return false;
    }
    if (new_one_healthy) {
        log().info(
            "{}: an upstream of its new list is healthy; the previous ones leave the "
            "rotation",
            to_string(color));
    }
    cl.retiring.clear();
    return true;
}

void UpstreamDirectory::health_changed(Color color, const UpstreamPtr& up) {
    if (up->healthy.load() && settle(color)) {
        publish(color);
    }
}

std::vector<std::string> UpstreamDirectory::names_of(Color color) const {
    std::vector<std::string> out;
    for (const auto& e : colors_[index(color)].entries) {
        if (!e.literal && std::find(out.begin(), out.end(), e.hp.host) == out.end()) {
            out.push_back(e.hp.host);
        }
    }
    return out;
}

net::Task<UpstreamDirectory::Answers> UpstreamDirectory::resolve_off_thread(
    std::vector<std::string> hosts) {
    if (hosts.empty()) {
        co_return Answers{};
    }
    co_return co_await asio::co_spawn(resolver_thread_->get_executor(),
                                      resolve_batch(resolver_, std::move(hosts)),
                                      asio::use_awaitable);
}

void UpstreamDirectory::apply_answers(const Answers& answers) {
    for (Color c : kColors) {
        bool changed = false;
        for (auto& e : colors_[index(c)].entries) {
            const auto it = answers.find(e.hp.host);
            if (!e.literal && it != answers.end()) {
                changed = apply(c, e, it->second, /*healthy_at_start=*/false) || changed;
            }
        }
        if (changed) {
            publish(c);
        }
    }
}

net::Task<void> UpstreamDirectory::refresh(Color color) {
    auto answers = co_await resolve_off_thread(names_of(color));
    if (!stopping_) {
        apply_answers(answers);
    }
}

void UpstreamDirectory::start(const asio::any_io_executor& ex) {
    timer_ = std::make_unique<asio::steady_timer>(ex);
    for (Color c : kColors) {
        publish(c, /*probe_now=*/false);
    }
    asio::co_spawn(ex, refresh_loop(), [](std::exception_ptr e) {
        if (e) {
            log().error("the name refresh loop ended by an exception");
        }
    });
}

void UpstreamDirectory::stop() {
    stopping_ = true;
    if (timer_) {
        timer_->cancel();
    }
}

net::Task<void> UpstreamDirectory::refresh_loop() {
    while (!stopping_) {
        // Spread +-10 % so that a fleet of proxies does not ask its DNS server
        // in step.
        const auto base = cfg_.resolver.refresh;
        const auto jitter = base / 5 * static_cast<std::int64_t>(random_u32() % 1001) / 1000;
        timer_->expires_after(base - base / 10 + jitter);
        co_await timer_->async_wait(asio::as_tuple(asio::use_awaitable));
        if (stopping_) {
            co_return;
        }
        auto hosts = names_of(Color::Blue);
        for (auto& h : names_of(Color::Green)) {
            if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) {
                hosts.push_back(std::move(h));
            }
        }
        auto answers = co_await resolve_off_thread(std::move(hosts));
        if (stopping_) {
            co_return;
        }
        apply_answers(answers);
        for (Color c : kColors) {
            if (settle(c)) {  // a switch may have made a color with a pending list idle
                publish(c);
            }
        }
    }
}

void UpstreamDirectory::give_tls(Color color, routing::Upstream& up) const {
    const auto& t = tls_[index(color)];
    up.tls.store(t.context
                     ? std::make_shared<const routing::TlsTarget>(routing::TlsTarget{
                           t.context, t.server_name.empty() ? up.configured.host : t.server_name})
                     : nullptr);
}

void UpstreamDirectory::set_tls(Color color, std::shared_ptr<const net::tls::ClientContext> context,
                                std::string server_name) {
    tls_[index(color)] = {std::move(context), std::move(server_name)};
    auto& lists = colors_[index(color)];
    for (auto& e : lists.entries) {
        for (auto& up : e.ups) {
            give_tls(color, *up);
        }
    }
    for (auto& up : lists.retiring) {
        give_tls(color, *up);
    }
}

}  // namespace bgs::control
