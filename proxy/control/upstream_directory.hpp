// The upstream lists of both colors as they change at run time: names
// re-resolved every resolver.refresh (each address an upstream of its own),
// lists replaced through the admin API or a reload. It owns the members of
// each color and publishes every change; what a change means for the data
// path (workers' pools, drains, probes) is the publisher's. Control thread
// only; names are resolved on a thread of their own, so a slow DNS server
// stalls neither requests nor the admin API.
#pragma once

#include "proxy/common/name_resolver.hpp"
#include "proxy/config/config.hpp"
#include "proxy/net/http_io.hpp"
#include "proxy/routing/color_state.hpp"
#include "proxy/routing/upstream.hpp"

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class thread_pool;
}

namespace bgs::control {

/// Where a color's list came from.
enum class ListSource { Config, Api };
const char* to_string(ListSource s);

class UpstreamDirectory {
  public:
    struct Hooks {
        /// The members of a color changed (called after every change).
        std::function<void(Color, const routing::Members&)> publish;
        /// An upstream joined: it needs probes (`probe_now`: at once rather
        /// than after an interval).
        std::function<void(Color, const routing::UpstreamPtr&, bool probe_now)> joined;
    };

    /// `cfg` is read at every refresh (a reload may change it in place).
    UpstreamDirectory(const config::Config& cfg, const routing::ColorState& colors,
                      NameResolver resolver, Hooks hooks);
    ~UpstreamDirectory();
    UpstreamDirectory(const UpstreamDirectory&) = delete;
    UpstreamDirectory& operator=(const UpstreamDirectory&) = delete;

    /// Start-up: sets a color's list and resolves its names here and now
    /// (blocking); the addresses found start out healthy, as the probes will
    /// tell within an interval. A name that does not resolve is logged and
    /// tried again at every refresh.
    void load(Color color, std::vector<config::HostPort> list, ListSource source);

    /// Publishes the members loaded and starts the refresh loop on `ex`.
    void start(const net::asio::any_io_executor& ex);
    void stop();

    /// Re-resolves the names of `color` now (a switch's gate) and applies
    /// what changed.
    net::Task<void> refresh(Color color);

    /// Replaces a color's list. Upstreams that stay keep their health; new
    /// ones join after passing probes. On the active color the old upstreams
    /// keep serving until one of the new list is healthy (the color never
    /// goes to zero healthy upstreams because of this call).
    void set_list(Color color, std::vector<config::HostPort> list, ListSource source);

    /// TLS to `color`'s upstreams (null: plain TCP), for its members now and
    /// later; `server_name` empty: each upstream's own host name.
    void set_tls(Color color, std::shared_ptr<const net::tls::ClientContext> context,
                 std::string server_name);

    /// The health checker saw `up` flip; may let a pending list change finish.
    void health_changed(Color color, const routing::UpstreamPtr& up);

    /// The upstreams in rotation: every address of the list, and while a list
    /// change on the active color waits for health, the previous ones too.
    routing::Members members(Color color) const;
    const std::vector<config::HostPort>& list(Color color) const {
        return colors_[index(color)].list_hp;
    }
    ListSource source(Color color) const { return colors_[index(color)].source; }

    /// The addresses each entry of the list resolved to, for status.
    struct Resolved {
        std::string upstream;  // the list entry
        routing::UpstreamPtr up;
    };
    std::vector<Resolved> resolved(Color color) const;

  private:
    struct Entry {
        config::HostPort hp;
        bool literal = false;
        routing::Members ups;
        bool failing = false;    // its last resolution failed (logged once)
        bool truncated = false;  // it resolved to too many addresses (logged once)
    };
    struct ColorLists {
        std::vector<config::HostPort> list_hp;
        std::vector<Entry> entries;
        ListSource source = ListSource::Config;
        routing::Members retiring;   // the previous list, serving until a new member is healthy
        routing::Members published;  // the members as the hooks last heard of them
    };
    using Answers = std::map<std::string, std::vector<std::string>>;
    struct ColorTls {
        std::shared_ptr<const net::tls::ClientContext> context;
        std::string server_name;
    };
    std::array<ColorTls, 2> tls_;
    void give_tls(Color color, routing::Upstream& up) const;

    /// Applies one name's addresses to an entry; true when its upstreams changed.
    bool apply(Color color, Entry& e, const std::vector<std::string>& addresses,
               bool healthy_at_start);
    void apply_answers(const Answers& answers);
    net::Task<Answers> resolve_off_thread(std::vector<std::string> hosts);
    std::vector<std::string> names_of(Color color) const;
    /// Ends a pending list change once it may; true when it did.
    bool settle(Color color);
    /// Tells the hooks the members of `color`; those that left are retired.
    void publish(Color color, bool probe_now = true);
    net::Task<void> refresh_loop();

    const config::Config& cfg_;
    const routing::ColorState& colors_state_;
    NameResolver resolver_;
    Hooks hooks_;
    std::array<ColorLists, 2> colors_;
    std::unique_ptr<boost::asio::thread_pool> resolver_thread_;
    std::unique_ptr<net::asio::steady_timer> timer_;
    bool stopping_ = false;
};

}  // namespace bgs::control
