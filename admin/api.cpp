#include "admin/api.hpp"

#include "proxy/metrics/access_log.hpp"

#include <boost/json.hpp>

namespace bgs::admin {
namespace json = boost::json;
namespace {

std::uint64_t micros(double ms) {
    return ms > 0 ? static_cast<std::uint64_t>(ms * 1000.0 + 0.5) : 0;
}

}  // namespace

ApiResponse error_response(unsigned status, std::string_view message, json::object details) {
    json::object o;
    o["error"] = message;
    for (auto& kv : details) {
        o[kv.key()] = std::move(kv.value());
    }
    return {status, json::serialize(o) + "\n"};
}

json::object gates_json(const health::GateReport& g) {
    json::array health;
    for (const auto& h : g.health) {
        json::object o{
            {"upstream", h.upstream}, {"healthy", h.healthy}, {"latency_us", micros(h.latency_ms)}};
        if (h.status != 0) {
            o["status"] = h.status;
        }
        if (!h.error.empty()) {
            o["error"] = h.error;
        }
        health.push_back(std::move(o));
    }
    json::array smoke;
    for (const auto& s : g.smoke) {
        json::object o{{"check", s.check},
                       {"upstream", s.upstream},
                       {"passed", s.passed},
                       {"latency_us", micros(s.latency_ms)}};
        if (s.status != 0) {
            o["status"] = s.status;
        }
        if (!s.error.empty()) {
            o["error"] = s.error;
        }
        if (s.tries > 1) {
            o["tries"] = s.tries;
        }
        smoke.push_back(std::move(o));
    }
    json::object out{
        {"passed", g.passed()},
        {"health", json::object{{"passed", g.health_passed},
                                {"healthy", g.healthy},
                                {"required", g.required},
                                {"duration_us", micros(g.health_ms)},
                                {"upstreams", std::move(health)}}},
        {"smoke", json::object{{"ran", g.smoke_ran},
                               {"passed", g.smoke_ran && g.smoke_passed},
                               {"duration_us", micros(g.smoke_ms)},
                               {"checks", std::move(smoke)}}},
    };
    if (!g.passed()) {
        out["failure"] = health::first_failure(g);
    }
    return out;
}

ApiResponse outcome_response(const control::SwitchOutcome& o, const json::object& extra) {
    using control::Result;
    json::object body{{"from", to_string(o.from)}, {"to", to_string(o.to)}, {"version", o.version}};
    for (const auto& kv : extra) {
        body[kv.key()] = kv.value();
    }
    if (o.gates_ran) {
        body["gates"] = gates_json(o.gates);
    }
    if (o.observe_until) {
        body["observe_until"] = metrics::format_time(*o.observe_until);
    }
    if (o.percent) {
        body["percent"] = *o.percent;
    }
    switch (o.result) {
        case Result::Updated:
        case Result::Switched:
        case Result::AlreadyActive:
        case Result::DryRunPassed:
        case Result::Canary:
        case Result::CanaryEnded:
        case Result::NoCanary: {
            json::object ok{{"result", control::to_string(o.result)}};
            for (auto& kv : body) {
                ok[kv.key()] = std::move(kv.value());
            }
            return {200, json::serialize(ok) + "\n"};
        }
        case Result::Busy:
            return error_response(409, "a switch is running");
        case Result::VersionMismatch:
            return error_response(409, "version mismatch", {{"current_version", o.version}});
        case Result::NoPrevious:
            return error_response(409, "there is no previous color to roll back to");
        case Result::CanaryOnActive:
            return error_response(409, "a canary goes to the idle color",
                                  {{"active", to_string(o.from)}});
        case Result::GateFailed:
            return error_response(412, "gate failed", std::move(body));
        case Result::ShuttingDown:
            return error_response(503, "shutting down; nothing was changed");
        case Result::BackendUnavailable:
            return error_response(
                503, "the fleet's state backend (Redis) is unreachable; nothing was changed",
                {{"detail", o.error}, {"version", o.version}});
        case Result::PersistFailed:
            body["detail"] = o.error;
            return error_response(500, "the state file could not be written; traffic did not move",
                                  std::move(body));
    }
    return error_response(500, "unexpected outcome");
}

ApiResponse upstreams_response(const control::SwitchOutcome& o,
                               const std::vector<config::HostPort>& list,
                               const json::object& extra) {
    using control::Result;
    switch (o.result) {
        case Result::Updated: {
            json::array ups;
            for (const auto& hp : list) {
                ups.emplace_back(hp.to_string());
            }
            json::object body{
                {"color", to_string(o.to)}, {"upstreams", std::move(ups)}, {"version", o.version}};
            for (const auto& kv : extra) {
                body[kv.key()] = kv.value();
            }
            return {200, json::serialize(body) + "\n"};
        }
        case Result::PersistFailed:
            return error_response(500, "the state file could not be written; nothing changed",
                                  {{"detail", o.error}});
        default:
            return outcome_response(o, extra);
    }
}

}  // namespace bgs::admin
