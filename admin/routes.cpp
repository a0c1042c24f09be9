#include "admin/routes.hpp"

#include "admin/page/assets.hpp"
#include "proxy/common/logging.hpp"
#include "proxy/metrics/access_log.hpp"
#include "proxy/state/state_store.hpp"
#include "proxy/worker/worker.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <boost/json.hpp>

#include <cmath>

#include <unistd.h>

namespace bgs::admin {
namespace json = boost::json;
namespace {

std::array<unsigned char, 32> sha256(std::string_view s) {
    std::array<unsigned char, 32> out{};
    unsigned int len = 0;
    EVP_Digest(s.data(), s.size(), out.data(), &len, EVP_sha256(), nullptr);
    return out;
}

ApiResponse json_response(const json::value& v) {
    return {200, json::serialize(v) + "\n"};
}

ApiResponse method_not_allowed(const char* allow) {
    auto r = error_response(405, "method not allowed", {{"allow", allow}});
    r.headers.emplace_back("Allow", allow);
    return r;
}

// An observation as the status shows it (SPEC section 10).
json::object observation_json(const control::ObservationView& o) {
    json::object out{
        {"color", to_string(o.color)},
        {"canary", o.canary},
        {"verdict", control::to_string(o.verdict)},
        {"ends_at", metrics::format_time(o.ends_at)},
        {"requests", o.figures.requests},
        {"errors", o.figures.errors},
        {"error_ratio", o.figures.error_ratio},
        {"p99_ms", o.figures.p99_ms ? json::value(std::round(*o.figures.p99_ms * 10) / 10)
                                    : json::value(nullptr)},
        {"window_ms",
         std::chrono::duration_cast<std::chrono::milliseconds>(o.figures.span).count()},
    };
    if (!o.result.empty()) {
        out["result"] = o.result;
    }
    if (!o.note.empty()) {
        out["note"] = o.note;
    }
    return out;
}

}  // namespace

bool token_matches(std::string_view authorization, const std::string& token) {
    constexpr std::string_view kBearer = "Bearer ";
    if (authorization.size() < kBearer.size() ||
        !std::equal(kBearer.begin(), kBearer.end(), authorization.begin(), [](char a, char b) {
            return std::tolower(static_cast<unsigned char>(a)) ==
                   std::tolower(static_cast<unsigned char>(b));
        })) {
        return false;
    }
    // Hashing first makes the comparison independent of both lengths.
    const auto presented = sha256(authorization.substr(kBearer.size()));
    const auto expected = sha256(token);
    return CRYPTO_memcmp(presented.data(), expected.data(), presented.size()) == 0;
}

Routes::Routes(const config::Config& cfg, control::Switcher& switcher, routing::Router& router,
               worker::Shared& shared, control::UpstreamDirectory& upstreams,
               control::Observer& observer, control::ReloadHook reload, control::Fleet* fleet,
               control::UpgradeHook upgrade)
    : cfg_(cfg),
      switcher_(switcher),
      router_(router),
      shared_(shared),
      upstreams_(upstreams),
      observer_(observer),
      reload_(std::move(reload)),
      fleet_(fleet),
      upgrade_(std::move(upgrade)) {}

std::optional<ApiResponse> Routes::check_access(const ApiRequest& req) const {
    const auto& allow = cfg_.admin.allow;
    const bool allowed = std::any_of(allow.begin(), allow.end(), [&](const config::Cidr& c) {
        return c.contains(req.source_bytes.data(), req.source_len);
    });
    if (!allowed) {
        log().warn("admin: {} {} from {} refused: source not in admin.allow", req.method,
                   req.target, req.source);
        return error_response(403, "source address not allowed");
    }
    // No token configured (only a config made in code can lack one) means no
    // access, never open access.
    if (cfg_.admin.token.empty() || !token_matches(req.authorization, cfg_.admin.token)) {
        log().warn("admin: {} {} from {} refused: {}", req.method, req.target, req.source,
                   req.authorization.empty() ? "no token" : "wrong token");
        auto r = error_response(
            401, req.authorization.empty() ? "missing bearer token" : "invalid bearer token");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return r;
    }
    return std::nullopt;
}

net::Task<ApiResponse> Routes::handle(ApiRequest req) {
    std::string path = req.target.substr(0, req.target.find('?'));
    if (path == "/healthz") {
        if (req.method != "GET" && req.method != "HEAD") {
            co_return method_not_allowed("GET");
        }
        co_return json_response(json::object{{"status", "ok"}});
    }
    if (const auto page = page_file(path)) {
        // The on-call page: static, no secret in it; it asks for the token and
        // sends it with each API call. admin.allow still applies.
        if (req.method != "GET" && req.method != "HEAD") {
            co_return method_not_allowed("GET");
        }
        co_return ApiResponse{200, std::string(page->body), std::string(page->content_type)};
    }
    if (path == "/metrics") {
        if (req.method != "GET" && req.method != "HEAD") {
            co_return method_not_allowed("GET");
        }
        co_return ApiResponse{200, metrics_text(), "text/plain; version=0.0.4; charset=utf-8"};
    }
    // /v1/colors/{color}/upstreams
    constexpr std::string_view kColorsPrefix = "/v1/colors/";
    constexpr std::string_view kUpstreamsSuffix = "/upstreams";
    std::optional<std::string> color_name;
    if (path.starts_with(kColorsPrefix) && path.ends_with(kUpstreamsSuffix) &&
        path.size() > kColorsPrefix.size() + kUpstreamsSuffix.size()) {
        color_name = path.substr(kColorsPrefix.size(),
                                 path.size() - kColorsPrefix.size() - kUpstreamsSuffix.size());
    }
    const bool known = path == "/v1/status" || path == "/v1/history" || path == "/v1/switch" ||
                       path == "/v1/rollback" || path == "/v1/reload" ||
                       path == "/v1/observe/stop" || path == "/v1/fleet" || path == "/v1/upgrade" ||
                       path == "/v1/canary" || color_name;
    if (!known) {
        co_return error_response(404, "no such endpoint", {{"path", path}});
    }
    if (auto refused = check_access(req)) {
        co_return *refused;
    }
    if (color_name) {
        co_return co_await upstreams(req, *color_name);
    }
    if (path == "/v1/fleet") {
        co_return co_await fleet(req);
    }
    if (path == "/v1/upgrade") {
        if (req.method != "POST") {
            co_return method_not_allowed("POST");
        }
        if (!upgrade_) {
            co_return error_response(409, "this process cannot upgrade itself");
        }
        const auto started = upgrade_(req.source);
        if (const auto* why = std::get_if<std::string>(&started)) {
            co_return error_response(409, "upgrade not started", {{"detail", *why}});
        }
        // 202: started; this process hands over once the new one serves.
        co_return ApiResponse{202, json::serialize(json::object{{"result", "upgrading"},
                                                                {"pid", std::get<int>(started)},
                                                                {"from_pid", ::getpid()}}) +
                                       "\n"};
    }
    if (path == "/v1/reload") {
        co_return reload(req);
    }
    if (path == "/v1/observe/stop") {
        if (req.method != "POST") {
            co_return method_not_allowed("POST");
        }
        if (!observer_.end("stopped")) {
            co_return error_response(409, "no observation is running");
        }
        co_return json_response(json::object{{"result", "stopped"},
                                             {"observation", observation_json(*observer_.last())}});
    }
    if (path == "/v1/status") {
        if (req.method != "GET") {
            co_return method_not_allowed("GET");
        }
        co_return ApiResponse{200, status_json()};
    }
    if (path == "/v1/history") {
        if (req.method != "GET") {
            co_return method_not_allowed("GET");
        }
        co_return ApiResponse{200, history_json()};
    }
    // /v1/switch, /v1/rollback and /v1/canary
    if (req.method != "POST") {
        co_return method_not_allowed("POST");
    }
    const bool rollback = path == "/v1/rollback";
    auto parsed =
        path == "/v1/canary" ? parse_canary_body(req.body) : parse_switch_body(req.body, rollback);
    if (auto* why = std::get_if<std::string>(&parsed)) {
        co_return error_response(400, *why);
    }
    auto sw = std::get<control::SwitchRequest>(std::move(parsed));
    if (sw.wait_fleet && fleet_ == nullptr) {
        co_return error_response(400, "\"wait_fleet\" needs fleet mode (state.backend: redis)");
    }
    sw.source = req.source;
    const auto wait = sw.wait_fleet;
    const bool dry_run = sw.dry_run;
    const auto outcome = co_await switcher_.run(std::move(sw));
    json::object extra;
    if (!dry_run) {
        extra = co_await wait_for_fleet(outcome, wait);
    }
    co_return outcome_response(outcome, extra);
}

net::Task<json::object> Routes::wait_for_fleet(const control::SwitchOutcome& o,
                                               std::optional<Duration> wait) {
    using control::Result;
    if (!wait || fleet_ == nullptr ||
        (o.result != Result::Switched && o.result != Result::Updated &&
         o.result != Result::AlreadyActive && o.result != Result::Canary &&
         o.result != Result::CanaryEnded)) {
        co_return json::object{};
    }
    const auto waited = co_await fleet_->wait(o.version, *wait);
    auto names = [](const std::vector<std::string>& v) {
        json::array a;
        for (const auto& s : v) {
            a.emplace_back(s);
        }
        return a;
    };
    json::object fleet{{"applied", names(waited.applied)}, {"lagging", names(waited.lagging)}};
    if (!waited.error.empty()) {
        fleet["error"] = waited.error;
    }
    co_return json::object{{"fleet", std::move(fleet)}};
}

net::Task<ApiResponse> Routes::fleet(const ApiRequest& req) {
    if (req.method != "GET") {
        co_return method_not_allowed("GET");
    }
    if (fleet_ == nullptr) {
        co_return error_response(404, "not in fleet mode (state.backend is file)");
    }
    const auto view = co_await fleet_->view();
    if (const auto* err = std::get_if<std::string>(&view)) {
        co_return error_response(503, "the fleet's state backend (Redis) is unreachable",
                                 {{"detail", *err}, {"key", fleet_->settings().key}});
    }
    const auto& v = std::get<control::FleetView>(view);
    json::array nodes;
    for (const auto& n : v.nodes) {
        nodes.push_back(json::object{
            {"node", n.node},
            {"applied_version", n.applied_version},
            {"heartbeat_age_ms", n.age.count()},
            {"live", n.age < control::kLiveFor},
            {"backend", n.age < control::kLiveFor ? n.backend : std::string("unknown")},
            {"active", n.active},
        });
    }
    co_return json_response(json::object{{"key", fleet_->settings().key},
                                         {"node", fleet_->settings().node},
                                         {"version", v.version},
                                         {"nodes", std::move(nodes)}});
}

net::Task<ApiResponse> Routes::upstreams(const ApiRequest& req, std::string_view color_name) {
    if (req.method != "GET" && req.method != "PUT") {
        co_return method_not_allowed("GET, PUT");
    }
    const auto color = parse_color(color_name);
    if (!color && req.method == "GET") {
        co_return error_response(400, "unknown color", {{"color", color_name}});
    }
    if (req.method == "GET") {
        json::array list;
        for (const auto& hp : upstreams_.list(*color)) {
            list.emplace_back(hp.to_string());
        }
        json::array resolved;
        for (const auto& r : upstreams_.resolved(*color)) {
            resolved.push_back(json::object{{"upstream", r.upstream},
                                            {"address", r.up->address},
                                            {"healthy", r.up->healthy.load()}});
        }
        co_return json_response(
            json::object{{"color", to_string(*color)},
                         {"upstreams", std::move(list)},
                         {"source", control::to_string(upstreams_.source(*color))},
                         {"resolved", std::move(resolved)}});
    }
    // Every problem at once: the color's and the body's.
    auto parsed = parse_upstreams_body(req.body, color.value_or(Color::Blue));
    json::array problems;
    if (!color) {
        problems.emplace_back("unknown color \"" + std::string(color_name) + "\" (blue or green)");
    }
    if (auto* found = std::get_if<std::vector<std::string>>(&parsed)) {
        for (auto& p : *found) {
            problems.emplace_back(p);
        }
    }
    if (!problems.empty()) {
        co_return error_response(400, "invalid upstreams", {{"problems", std::move(problems)}});
    }
    auto change = std::get<control::UpstreamsRequest>(std::move(parsed));
    if (change.wait_fleet && fleet_ == nullptr) {
        co_return error_response(400, "\"wait_fleet\" needs fleet mode (state.backend: redis)");
    }
    change.source = req.source;
    const auto list = change.upstreams;
    const auto wait = change.wait_fleet;
    const auto outcome = co_await switcher_.set_upstreams(std::move(change));
    const auto extra = co_await wait_for_fleet(outcome, wait);
    co_return upstreams_response(outcome, list, extra);
}

ApiResponse Routes::reload(const ApiRequest& req) {
    if (req.method != "POST") {
        return method_not_allowed("POST");
    }
    using R = control::ReloadOutcome::Result;
    const auto out = reload_(req.source);
    auto strings = [](const std::vector<std::string>& v) {
        json::array a;
        for (const auto& s : v) {
            a.emplace_back(s);
        }
        return a;
    };
    switch (out.result) {
        case R::Reloaded:
            return json_response(json::object{{"result", "reloaded"},
                                              {"changed", strings(out.changed)},
                                              {"restart_required", strings(out.restart_required)}});
        case R::Invalid:
            return error_response(400, "config invalid", {{"problems", strings(out.problems)}});
        case R::Busy:
            return error_response(409, "a switch is running");
        case R::ShuttingDown:
            break;
    }
    return error_response(503, "shutting down; nothing was changed");
}

std::string Routes::status_json() const {
    const auto& st = switcher_.state();
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    json::object colors;
    for (Color c : kColors) {
        json::array ups;
        for (const auto& u : upstreams_.members(c)) {
            const auto at = u->probed_at_ms.load(std::memory_order_relaxed);
            ups.push_back(json::object{
                {"address", u->name},
                {"healthy", u->healthy.load()},
                {"probe_age_ms", at == 0 ? json::value(nullptr) : json::value(now_ms - at)}});
        }
        json::object o{
            {"upstreams", std::move(ups)},
            {"in_flight", shared_.activity.get(c, drain::Activity::Request)},
            {"upgraded", shared_.activity.get(c, drain::Activity::Upgraded)},
            {"streams", shared_.activity.get(c, drain::Activity::Stream)},
        };
        if (auto d = switcher_.drain_deadline(c)) {
            o["draining"] = json::object{{"deadline", metrics::format_time(*d)}};
        }
        colors[to_string(c)] = std::move(o);
    }
    static constexpr const char* kPhases[] = {"steady", "switching", "draining"};
    const auto phase = switcher_.phase();
    const bool observing = phase != control::Switcher::Phase::Switching && observer_.running();
    json::object doc{
        {"active", to_string(st.active)},
        {"previous", st.previous ? json::value(to_string(*st.previous)) : json::value(nullptr)},
        {"version", st.version},
        {"pid", ::getpid()},
        {"state", observing ? "observing" : kPhases[static_cast<int>(phase)]},
        {"colors", std::move(colors)},
        {"observation", observer_.current() ? json::value(observation_json(*observer_.current()))
                                            : json::value(nullptr)},
        {"last_observation", observer_.last() ? json::value(observation_json(*observer_.last()))
                                              : json::value(nullptr)},
    };
    // What a switch made now would do: the page's confirmations say it.
    auto ms = [](Duration d) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    doc["switch"] = json::object{{"drain_timeout_ms", ms(cfg_.switching.drain_timeout)},
                                 {"close_spread_ms", ms(cfg_.switching.close_spread)},
                                 {"observe_ms", ms(cfg_.switching.observe)}};
    if (st.canary) {
        doc["canary"] = json::object{{"to", to_string(st.canary->to)},
                                     {"percent", st.canary->percent},
                                     {"since", metrics::format_time(st.canary->since)},
                                     {"epoch", st.canary->epoch}};
    } else {
        doc["canary"] = nullptr;
    }
    if (fleet_ != nullptr) {
        doc["backend"] = fleet_->up() ? "ok" : "unreachable";
        json::object fleet{{"key", fleet_->settings().key},
                           {"node", fleet_->settings().node},
                           {"redis", fleet_->where()}};
        if (!fleet_->up()) {
            fleet["error"] = fleet_->error();
        }
        doc["fleet"] = std::move(fleet);
    } else {
        doc["backend"] = "file";
    }
    if (!st.history.empty()) {
        const auto& e = st.history.front();
        doc["last_switch"] = json::object{{"at", metrics::format_time(e.time)},
                                          {"action", e.action},
                                          {"from", to_string(e.from)},
                                          {"to", to_string(e.to)},
                                          {"result", e.result}};
    } else {
        doc["last_switch"] = nullptr;
    }
    return json::serialize(doc) + "\n";
}

std::string Routes::history_json() const {
    std::string out = "{\"events\":[";
    bool first = true;
    for (const auto& e : switcher_.state().history) {
        out += first ? "" : ",";
        out += state::StateStore::event_json(e);
        first = false;
    }
    return out + "]}\n";
}

std::string Routes::metrics_text() const {
    metrics::Metrics::Gauges g;
    const auto snap = router_.state().load();
    g.active = snap.active;
    g.version = snap.version;
    g.canary_percent = snap.canary_percent;
    for (Color c : kColors) {
        g.connections[index(c)] = {shared_.activity.get(c, drain::Activity::Request),
                                   shared_.activity.get(c, drain::Activity::Upgraded),
                                   shared_.activity.get(c, drain::Activity::Stream)};
        for (const auto& u : upstreams_.members(c)) {
            g.upstreams.push_back({c, u->name, u->healthy.load()});
        }
    }
    g.switches = switcher_.counts();
    g.observe_state = observer_.state_number();
    g.auto_rollbacks = observer_.auto_rollbacks();
    g.access_log_dropped = access_log_dropped();
    g.backend_up = fleet_ == nullptr || fleet_->up();
    g.idle_connections = shared_.parked_connections.load(std::memory_order_relaxed);
    g.idle_tunnels = shared_.parked_tunnels.load(std::memory_order_relaxed);
    {
        std::lock_guard lock(shared_.tls_mutex);
        for (const auto& [key, ctx] : shared_.tls_listeners) {
            metrics::Metrics::Gauges::TlsListener t;
            t.listener = key.substr(key.find(' ') + 1);
            t.handshakes_ok = ctx->handshakes_ok.load(std::memory_order_relaxed);
            t.handshakes_failed = ctx->handshakes_failed.load(std::memory_order_relaxed);
            for (const auto& c : ctx->certificates()) {
                std::string name = c.name;  // a label value: no quote or backslash
                std::replace_if(
                    name.begin(), name.end(), [](char ch) { return ch == '"' || ch == '\\'; }, '_');
                t.expiry.emplace_back(name, std::chrono::duration_cast<std::chrono::seconds>(
                                                c.not_after.time_since_epoch())
                                                .count());
            }
            g.tls.push_back(std::move(t));
        }
    }
    return shared_.metrics.render(g);
}

}  // namespace bgs::admin
