#include "admin/routes.hpp"

#include "proxy/common/logging.hpp"
#include "proxy/metrics/access_log.hpp"
#include "proxy/state/state_store.hpp"
#include "proxy/worker/worker.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <boost/json.hpp>

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
               worker::Shared& shared)
    : cfg_(cfg), switcher_(switcher), router_(router), shared_(shared) {}

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
    if (path == "/metrics") {
        if (req.method != "GET" && req.method != "HEAD") {
            co_return method_not_allowed("GET");
        }
        co_return ApiResponse{200, metrics_text(), "text/plain; version=0.0.4; charset=utf-8"};
    }
    const bool known = path == "/v1/status" || path == "/v1/history" || path == "/v1/switch" ||
                       path == "/v1/rollback";
    if (!known) {
        co_return error_response(404, "no such endpoint", {{"path", path}});
    }
    if (auto refused = check_access(req)) {
        co_return *refused;
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
    // /v1/switch and /v1/rollback
    if (req.method != "POST") {
        co_return method_not_allowed("POST");
    }
    const bool rollback = path == "/v1/rollback";
    auto parsed = parse_switch_body(req.body, rollback);
    if (auto* why = std::get_if<std::string>(&parsed)) {
        co_return error_response(400, *why);
    }
    auto sw = std::get<control::SwitchRequest>(std::move(parsed));
    sw.source = req.source;
    auto outcome = co_await switcher_.run(std::move(sw));
    co_return outcome_response(outcome);
}

std::string Routes::status_json() const {
    const auto& st = switcher_.state();
    json::object colors;
    for (Color c : kColors) {
        json::array ups;
        for (std::size_t i = 0; i < router_.size(c); ++i) {
            const auto& u = router_.upstream(c, i);
            ups.push_back(json::object{{"address", u.address}, {"healthy", u.healthy.load()}});
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
    json::object doc{
        {"active", to_string(st.active)},
        {"previous", st.previous ? json::value(to_string(*st.previous)) : json::value(nullptr)},
        {"version", st.version},
        {"state", kPhases[static_cast<int>(switcher_.phase())]},
        {"colors", std::move(colors)},
    };
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
    for (Color c : kColors) {
        g.connections[index(c)] = {shared_.activity.get(c, drain::Activity::Request),
                                   shared_.activity.get(c, drain::Activity::Upgraded),
                                   shared_.activity.get(c, drain::Activity::Stream)};
        for (std::size_t i = 0; i < router_.size(c); ++i) {
            const auto& u = router_.upstream(c, i);
            g.upstreams.push_back({c, u.address, u.healthy.load()});
        }
    }
    g.switches = switcher_.counts();
    g.access_log_dropped = access_log_dropped();
    return shared_.metrics.render(g);
}

}  // namespace bgs::admin
