#include "admin/cli/client_commands.hpp"

#include "admin/cli/admin_client.hpp"

#include "proxy/common/utf8.hpp"

#include <boost/json.hpp>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string_view>
#include <thread>

namespace bgs::admin::cli {
namespace json = boost::json;
namespace {

std::string joined(const boost::json::value* v);

HttpResult call(const ClientOptions& opt, const std::string& method, const std::string& path,
                const std::string& body = "") {
    return call_admin(opt.admin_url, opt.token, method, path, body);
}

std::string fmt_ms(double ms) {
    char b[32];
    std::snprintf(b, sizeof b, ms < 10 ? "%.1fms" : "%.0fms", ms);
    return b;
}

// Text from the API made safe for a terminal: control characters (C0, DEL,
// and C1 as UTF-8 encodes them) and bytes that are not UTF-8 are shown as \xNN,
// so a reason or an error message cannot move the cursor or recolor the screen.
std::string terminal_safe(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    auto escape = [&](unsigned char c) {
        char b[5];
        std::snprintf(b, sizeof b, "\\x%02x", c);
        out += b;
    };
    for (std::size_t i = 0; i < in.size();) {
        const auto c = static_cast<unsigned char>(in[i]);
        if (c < 0x20 || c == 0x7f) {
            escape(c);
            ++i;
            continue;
        }
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        const std::size_t len = utf8_sequence_at(in, i);
        const bool c1 = len == 2 && c == 0xc2 && static_cast<unsigned char>(in[i + 1]) < 0xa0;
        if (len == 0 || c1) {
            escape(c);
            ++i;
            continue;
        }
        out.append(in.substr(i, len));
        i += len;
    }
    return out;
}

std::string fmt_us(const json::value& us) {
    return fmt_ms(us.to_number<double>() / 1000.0);
}

std::string str(const json::value* v) {
    if (v == nullptr || v->is_null()) {
        return "-";
    }
    if (v->is_string()) {
        return terminal_safe(v->as_string());
    }
    return json::serialize(*v);
}

// Common handling of a failed call or an error status; nullopt to go on.
std::optional<int> failure(const HttpResult& r, json::value& doc) {
    if (!r.error.empty()) {
        std::cerr << "bgswitch: " << r.error << "\n";
        return kExitUsage;
    }
    json::error_code ec;
    doc = json::parse(r.body, ec);
    if (ec) {
        std::cerr << "bgswitch: unexpected answer (HTTP " << r.status << "): " << r.body << "\n";
        return kExitUsage;
    }
    if (r.status == 401 || r.status == 403) {
        std::cerr << "bgswitch: " << str(doc.as_object().if_contains("error"))
                  << (r.status == 401 ? " (pass --token or set BGSWITCH_ADMIN_TOKEN)" : "") << "\n";
        return kExitUsage;
    }
    return std::nullopt;
}

void print_gates(const json::object& gates) {
    const auto& h = gates.at("health").as_object();
    std::cout << "health gate: " << str(h.if_contains("healthy")) << " healthy, need "
              << str(h.if_contains("required")) << " (" << fmt_us(h.at("duration_us")) << ")\n";
    for (const auto& u : h.at("upstreams").as_array()) {
        const auto& o = u.as_object();
        std::cout << "  " << (o.at("healthy").as_bool() ? "ok    " : "FAIL  ")
                  << str(o.if_contains("upstream")) << "  "
                  << (o.contains("status") ? str(o.if_contains("status")) : "---") << "  "
                  << fmt_us(o.at("latency_us"));
        if (o.contains("error")) {
            std::cout << "  " << str(o.if_contains("error"));
        }
        std::cout << "\n";
    }
    const auto& s = gates.at("smoke").as_object();
    if (!s.at("ran").as_bool()) {
        std::cout << "smoke gate: not run\n";
        return;
    }
    std::cout << "smoke gate: " << (s.at("passed").as_bool() ? "passed" : "FAILED") << " ("
              << fmt_us(s.at("duration_us")) << ")\n";
    for (const auto& c : s.at("checks").as_array()) {
        const auto& o = c.as_object();
        std::cout << "  " << (o.at("passed").as_bool() ? "ok    " : "FAIL  ")
                  << str(o.if_contains("check")) << " @ " << str(o.if_contains("upstream")) << "  "
                  << (o.contains("status") ? str(o.if_contains("status")) : "---") << "  "
                  << fmt_us(o.at("latency_us"));
        if (o.contains("error")) {
            std::cout << "  " << str(o.if_contains("error"));
        }
        std::cout << "\n";
    }
}

// A JSON number in few digits ("0.0035", "41.2"), or "-".
std::string number(const json::value* v) {
    if (v == nullptr || !v->is_number()) {
        return "-";
    }
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v->to_number<double>());
    return b;
}

std::string observation_line(const json::object& ob) {
    std::string line = str(ob.if_contains("color")) + ": " + str(ob.if_contains("verdict")) + " (" +
                       str(ob.if_contains("requests")) + " requests, 5xx ratio " +
                       number(ob.if_contains("error_ratio")) + ", p99 " +
                       number(ob.if_contains("p99_ms")) + " ms)";
    if (const auto* note = ob.if_contains("note")) {
        line += "; " + str(note);
    }
    return line;
}

// The fleet's answer to --wait-fleet: kExitOk when every live instance
// applied the change, kExitRefused when one lagged (or Redis could not say).
int fleet_answer(const ClientOptions& opt, const json::object& o) {
    const auto* f = o.if_contains("fleet");
    if (f == nullptr || !f->is_object()) {
        return kExitOk;
    }
    const auto& fleet = f->as_object();
    const auto* lagging = fleet.if_contains("lagging");
    const bool lagged = lagging != nullptr && lagging->is_array() && !lagging->as_array().empty();
    const bool error = fleet.contains("error");
    if (!opt.json) {
        std::cout << "fleet: applied by " << joined(fleet.if_contains("applied"));
        if (lagged) {
            std::cout << "; LAGGING: " << joined(lagging);
        }
        std::cout << "\n";
        if (error) {
            std::cerr << "bgswitch: the fleet could not be asked: "
                      << str(fleet.if_contains("error")) << "\n";
        }
    }
    return lagged || error ? kExitRefused : kExitOk;
}

// Follows the observation that ends at `until` to its end; its result
// ("ok", "rolled_back", ...), or empty when it could not be followed (`code`
// then says why).
std::string observation_result(const ClientOptions& opt, const std::string& until, int& code) {
    std::string last_state;
    for (;;) {
        auto r = call(opt, "GET", "/v1/status");
        json::value doc;
        if (auto failed = failure(r, doc)) {
            code = *failed;
            return {};
        }
        const auto& o = doc.as_object();
        const auto* ob = o.if_contains("observation");
        if (ob == nullptr || !ob->is_object() ||
            str(ob->as_object().if_contains("ends_at")) != until) {
            const auto* last = o.if_contains("last_observation");
            if (last == nullptr || !last->is_object() ||
                str(last->as_object().if_contains("ends_at")) != until) {
                std::cout << "the observation is gone (the proxy restarted?)\n";
                code = kExitRefused;
                return {};
            }
            const auto result = str(last->as_object().if_contains("result"));
            std::cout << "observation ended: " << result << ": "
                      << observation_line(last->as_object()) << "\n";
            return result;
        }
        const auto& now = ob->as_object();
        const auto state = str(now.if_contains("verdict")) + str(now.if_contains("note"));
        if (state != last_state) {
            std::cout << "observing " << observation_line(now) << ", until "
                      << str(now.if_contains("ends_at")) << "\n"
                      << std::flush;
            last_state = state;
        }
        std::this_thread::sleep_for(std::chrono::seconds(1));
    }
}

// `switch --wait`: follows the observation that ends at `until` until it
// ends. 0 when it ended ok, inconclusive or was stopped; 1 when it rolled
// back or ended otherwise.
int wait_for_observation(const ClientOptions& opt, const std::string& until) {
    int code = kExitOk;
    const auto result = observation_result(opt, until, code);
    if (result.empty()) {
        return code;
    }
    return result == "ok" || result == "inconclusive" || result == "stopped" ? kExitOk
                                                                             : kExitRefused;
}

// POSTs a change whose answer may carry gate results, and prints the raw
// answer (--json) or the gates. nullopt when a JSON answer arrived (`r` and
// `doc` hold it); the exit code otherwise.
std::optional<int> post_change(const ClientOptions& opt, const char* path, const json::object& body,
                               HttpResult& r, json::value& doc) {
    r = call(opt, "POST", path, json::serialize(body));
    if (auto code = failure(r, doc)) {
        return code;
    }
    if (opt.json) {
        std::cout << r.body;
    }
    const auto& o = doc.as_object();
    if (!opt.json && o.contains("gates")) {
        print_gates(o.at("gates").as_object());
    }
    return std::nullopt;
}

int run_switch(const ClientOptions& opt, const SwitchOptions& sw, bool rollback) {
    json::object body;
    if (!rollback) {
        body["to"] = sw.color;
    }
    if (sw.drain_timeout) {
        body["drain_timeout"] = *sw.drain_timeout;
    }
    if (sw.dry_run) {
        body["dry_run"] = true;
    }
    if (rollback && sw.skip_smoke) {
        body["skip_smoke"] = true;
    }
    if (!sw.reason.empty()) {
        body["reason"] = sw.reason;
    }
    if (sw.expect_version) {
        body["expect_version"] = *sw.expect_version;
    }
    if (!rollback && sw.observe) {
        body["observe"] = *sw.observe;
    }
    if (sw.wait_fleet) {
        body["wait_fleet"] = *sw.wait_fleet;
    }
    HttpResult r;
    json::value doc;
    if (auto code = post_change(opt, rollback ? "/v1/rollback" : "/v1/switch", body, r, doc)) {
        return *code;
    }
    const auto& o = doc.as_object();
    const auto result = str(o.if_contains("result"));
    if (r.status == 200) {
        if (!opt.json) {
            if (result == "already_active") {
                std::cout << str(o.if_contains("to")) << " is already active (version "
                          << str(o.if_contains("version")) << ")\n";
            } else if (result == "dry_run_passed") {
                std::cout << "dry run passed: " << str(o.if_contains("from")) << " -> "
                          << str(o.if_contains("to")) << " would switch\n";
            } else if (result == "canary_ended") {
                std::cout << "canary ended: every session back on " << str(o.if_contains("to"))
                          << " (version " << str(o.if_contains("version")) << ")\n";
            } else {
                std::cout << "switched: " << str(o.if_contains("from")) << " -> "
                          << str(o.if_contains("to")) << " (version "
                          << str(o.if_contains("version")) << ")\n";
            }
        }
        const int fleet_code = fleet_answer(opt, o);
        if (!rollback && sw.wait && result == "switched") {
            const auto* until = o.if_contains("observe_until");
            if (until == nullptr) {
                std::cout << "no observation (switch.observe is 0)\n";
                return fleet_code;
            }
            return std::max(fleet_code, wait_for_observation(opt, str(until)));
        }
        return fleet_code;
    }
    if (!opt.json) {
        std::cerr << "bgswitch: refused: " << str(o.if_contains("error"));
        if (o.contains("detail")) {
            std::cerr << ": " << str(o.if_contains("detail"));
        }
        if (const auto* g = o.if_contains("gates"); g && g->is_object()) {
            if (const auto* f = g->as_object().if_contains("failure")) {
                std::cerr << ": " << str(f);
            }
        }
        std::cerr << "\n";
    }
    return r.status == 400 ? kExitUsage : kExitRefused;
}

// GETs `path` into `doc`. Returns an exit code when the command is done
// already (an error, or --json printed the raw answer).
std::optional<int> get_document(const ClientOptions& opt, const std::string& path,
                                json::value& doc) {
    auto r = call(opt, "GET", path);
    if (auto code = failure(r, doc)) {
        return code;
    }
    if (r.status != 200) {
        std::cerr << "bgswitch: " << r.body;
        return kExitUsage;
    }
    if (opt.json) {
        std::cout << r.body;
        return kExitOk;
    }
    return std::nullopt;
}

// A JSON list of strings as "a, b, c" (safe for a terminal).
std::string joined(const json::value* v) {
    if (v == nullptr || !v->is_array()) {
        return "-";
    }
    std::string out;
    for (const auto& item : v->as_array()) {
        out += (out.empty() ? "" : ", ") + str(&item);
    }
    return out.empty() ? "(none)" : out;
}

// The answer to a call that changes something: the exit code when the call
// itself failed, else the document (printed raw with --json).
std::optional<int> change_answer(const ClientOptions& opt, const HttpResult& r, json::value& doc) {
    if (auto code = failure(r, doc)) {
        return code;
    }
    if (opt.json) {
        std::cout << r.body;
    }
    return std::nullopt;
}

// A refused change: its error and each of its problems, on stderr.
void print_refusal(const ClientOptions& opt, const char* what, const json::object& o) {
    if (opt.json) {
        return;
    }
    std::cerr << "bgswitch: " << what << ": " << str(o.if_contains("error")) << "\n";
    if (const auto* p = o.if_contains("problems"); p && p->is_array()) {
        for (const auto& item : p->as_array()) {
            std::cerr << "  " << str(&item) << "\n";
        }
    }
}

void print_upstreams(const json::object& o) {
    std::cout << str(o.if_contains("color")) << " (" << str(o.if_contains("source"))
              << "): " << joined(o.if_contains("upstreams")) << "\n";
    const auto* resolved = o.if_contains("resolved");
    if (resolved == nullptr || !resolved->is_array() || resolved->as_array().empty()) {
        std::cout << "  no address yet\n";
        return;
    }
    for (const auto& r : resolved->as_array()) {
        const auto& u = r.as_object();
        const auto* healthy = u.if_contains("healthy");
        std::printf("  %-28s %-28s %s\n", str(u.if_contains("upstream")).c_str(),
                    str(u.if_contains("address")).c_str(),
                    healthy && healthy->is_bool() && healthy->as_bool() ? "healthy" : "DOWN");
    }
}

}  // namespace

int show_upstreams(const ClientOptions& opt, const UpstreamsOptions& up) {
    std::vector<std::string> colors;
    if (up.color.empty()) {
        colors = {"blue", "green"};
    } else {
        colors = {up.color};
    }
    for (const auto& c : colors) {
        json::value doc;
        if (auto code = get_document(opt, "/v1/colors/" + c + "/upstreams", doc)) {
            if (*code != kExitOk) {
                return *code;
            }
            continue;  // --json printed it
        }
        print_upstreams(doc.as_object());
    }
    std::fflush(stdout);
    return kExitOk;
}

int set_upstreams(const ClientOptions& opt, const UpstreamsOptions& up) {
    json::array list;
    for (const auto& a : up.upstreams) {
        list.emplace_back(a);
    }
    json::object body{{"upstreams", std::move(list)}};
    if (!up.reason.empty()) {
        body["reason"] = up.reason;
    }
    if (up.expect_version) {
        body["expect_version"] = *up.expect_version;
    }
    if (up.wait_fleet) {
        body["wait_fleet"] = *up.wait_fleet;
    }
    auto r = call(opt, "PUT", "/v1/colors/" + up.color + "/upstreams", json::serialize(body));
    json::value doc;
    if (auto code = change_answer(opt, r, doc)) {
        return *code;
    }
    const auto& o = doc.as_object();
    if (r.status == 200) {
        if (!opt.json) {
            std::cout << "upstreams of " << str(o.if_contains("color"))
                      << " set: " << joined(o.if_contains("upstreams")) << " (version "
                      << str(o.if_contains("version")) << ")\n";
        }
        return fleet_answer(opt, o);
    }
    print_refusal(opt, "refused", o);
    return r.status == 400 ? kExitUsage : kExitRefused;
}

int reload(const ClientOptions& opt) {
    auto r = call(opt, "POST", "/v1/reload");
    json::value doc;
    if (auto code = change_answer(opt, r, doc)) {
        return *code;
    }
    const auto& o = doc.as_object();
    if (r.status == 200) {
        if (!opt.json) {
            std::cout << "reloaded; changed: " << joined(o.if_contains("changed")) << "\n";
            const auto* restart = o.if_contains("restart_required");
            if (restart && restart->is_array() && !restart->as_array().empty()) {
                std::cout << "needs a restart to apply: " << joined(restart) << "\n";
            }
        }
        return kExitOk;
    }
    print_refusal(opt, "reload refused", o);
    return kExitRefused;  // a broken file or a running switch: nothing changed
}

int status(const ClientOptions& opt) {
    json::value doc;
    if (auto code = get_document(opt, "/v1/status", doc)) {
        return *code;
    }
    const auto& o = doc.as_object();
    const auto active = str(o.if_contains("active"));
    std::cout << "active   " << active << " (version " << str(o.if_contains("version"))
              << ", previous " << str(o.if_contains("previous")) << ")\n"
              << "state    " << str(o.if_contains("state")) << "\n\n";
    std::printf("%-7s %-32s %-9s %9s %9s %8s  %s\n", "COLOR", "UPSTREAM", "HEALTH", "IN_FLIGHT",
                "UPGRADED", "STREAMS", "DRAIN");
    for (const char* name : {"blue", "green"}) {
        const auto& c = o.at("colors").as_object().at(name).as_object();
        const auto& ups = c.at("upstreams").as_array();
        std::string drain;
        if (const auto* d = c.if_contains("draining")) {
            drain = "until " + str(d->as_object().if_contains("deadline"));
        }
        for (std::size_t i = 0; i < ups.size(); ++i) {
            const auto& u = ups[i].as_object();
            const std::string color = i > 0 ? "" : std::string(name) + (active == name ? "*" : "");
            if (i == 0) {
                std::printf("%-7s %-32s %-9s %9s %9s %8s  %s\n", color.c_str(),
                            str(u.if_contains("address")).c_str(),
                            u.at("healthy").as_bool() ? "healthy" : "DOWN",
                            str(c.if_contains("in_flight")).c_str(),
                            str(c.if_contains("upgraded")).c_str(),
                            str(c.if_contains("streams")).c_str(), drain.c_str());
            } else {
                std::printf("%-7s %-32s %-9s\n", "", str(u.if_contains("address")).c_str(),
                            u.at("healthy").as_bool() ? "healthy" : "DOWN");
            }
        }
    }
    if (const auto* c = o.if_contains("canary"); c && c->is_object()) {
        std::cout << "\ncanary   " << str(c->as_object().if_contains("percent"))
                  << "% of new sessions to " << str(c->as_object().if_contains("to")) << " since "
                  << str(c->as_object().if_contains("since")) << "\n";
    }
    if (const auto* last = o.if_contains("last_switch"); last && last->is_object()) {
        const auto& l = last->as_object();
        std::cout << "\nlast switch: " << str(l.if_contains("at")) << " "
                  << str(l.if_contains("action")) << " " << str(l.if_contains("from")) << " -> "
                  << str(l.if_contains("to")) << " (" << str(l.if_contains("result")) << ")\n";
    }
    std::fflush(stdout);
    return kExitOk;
}

int switch_color(const ClientOptions& opt, const SwitchOptions& sw) {
    return run_switch(opt, sw, false);
}

int rollback(const ClientOptions& opt, const SwitchOptions& sw) {
    return run_switch(opt, sw, true);
}

namespace {

// One POST /v1/canary; 0 when it was taken (`doc` holds the answer).
int canary_step(const ClientOptions& opt, const CanaryOptions& c, unsigned percent,
                const std::optional<std::string>& observe, json::value& doc) {
    json::object body{{"percent", percent}};
    if (!c.color.empty()) {
        body["to"] = c.color;
    }
    if (observe) {
        body["observe"] = *observe;
    }
    if (c.drain_timeout) {
        body["drain_timeout"] = *c.drain_timeout;
    }
    if (c.dry_run) {
        body["dry_run"] = true;
    }
    if (!c.reason.empty()) {
        body["reason"] = c.reason;
    }
    if (c.expect_version) {
        body["expect_version"] = *c.expect_version;
    }
    if (c.wait_fleet) {
        body["wait_fleet"] = *c.wait_fleet;
    }
    HttpResult r;
    if (auto code = post_change(opt, "/v1/canary", body, r, doc)) {
        return *code;
    }
    const auto& o = doc.as_object();
    if (r.status != 200) {
        print_refusal(opt, "canary", o);
        return r.status == 400 ? kExitUsage : kExitRefused;
    }
    if (!opt.json) {
        const auto result = str(o.if_contains("result"));
        if (result == "dry_run_passed") {
            std::cout << "dry run passed: a canary to " << str(o.if_contains("to"))
                      << " would start\n";
        } else if (result == "canary_ended") {
            std::cout << "canary ended: every session on " << str(o.if_contains("to"))
                      << " (version " << str(o.if_contains("version")) << ")\n";
        } else if (result == "no_canary") {
            std::cout << "no canary was running\n";
        } else {
            std::cout << "canary: " << str(o.if_contains("percent")) << "% of new sessions to "
                      << str(o.if_contains("to")) << " (version " << str(o.if_contains("version"))
                      << ")\n";
        }
    }
    return fleet_answer(opt, o);
}

// The color that is not live, from /v1/status; an exit code when the
// question failed.
std::optional<int> idle_color(const ClientOptions& opt, std::string& out) {
    ClientOptions quiet = opt;
    quiet.json = false;  // the answer is read here, not printed
    json::value doc;
    if (auto code = get_document(quiet, "/v1/status", doc)) {
        return code;
    }
    const auto active = str(doc.as_object().if_contains("active"));
    if (active != "blue" && active != "green") {
        std::cerr << "bgswitch: /v1/status names no active color\n";
        return kExitUsage;
    }
    out = active == "blue" ? "green" : "blue";
    return std::nullopt;
}

}  // namespace

std::optional<std::string> take_canary_args(const std::vector<std::string>& args,
                                            CanaryOptions& c) {
    if (args.size() > 2) {
        return "at most COLOR and PERCENT";
    }
    for (const auto& a : args) {
        if (a == "blue" || a == "green") {
            if (!c.color.empty()) {
                return "one COLOR at most";
            }
            c.color = a;
            continue;
        }
        unsigned p = 0;
        const auto [end, ec] = std::from_chars(a.data(), a.data() + a.size(), p);
        if (a.empty() || ec != std::errc{} || end != a.data() + a.size() || p > 100) {
            return "\"" + a + "\" is neither a color (blue, green) nor a percent (0 to 100)";
        }
        if (c.percent) {
            return "one PERCENT at most";
        }
        c.percent = p;
    }
    if (c.percent && !c.steps.empty()) {
        return "give PERCENT or --steps, not both";
    }
    if (!c.percent && c.steps.empty()) {
        return "give PERCENT or --steps";
    }
    return std::nullopt;
}

int canary(const ClientOptions& opt, const CanaryOptions& given) {
    CanaryOptions c = given;
    // Ending a canary needs no color; anything else goes to the idle one.
    if (c.color.empty() && (!c.steps.empty() || c.percent.value_or(0) > 0)) {
        if (auto code = idle_color(opt, c.color)) {
            return *code;
        }
    }
    json::value doc;
    if (c.steps.empty()) {
        return canary_step(opt, c, c.percent.value_or(0), c.observe, doc);
    }
    for (std::size_t i = 0; i < c.steps.size(); ++i) {
        const unsigned p = c.steps[i];
        if (p >= 100) {
            std::cout << "step " << i + 1 << ": 100% — switching to " << c.color << "\n";
            SwitchOptions sw;
            sw.color = c.color;
            sw.reason = c.reason.empty() ? "canary complete" : c.reason;
            sw.drain_timeout = c.drain_timeout;
            sw.wait_fleet = c.wait_fleet;
            return run_switch(opt, sw, false);
        }
        std::cout << "step " << i + 1 << ": " << p << "%\n";
        if (const int code = canary_step(opt, c, p, c.interval, doc); code != kExitOk) {
            return code;
        }
        const auto* until = doc.as_object().if_contains("observe_until");
        if (until == nullptr || c.dry_run) {
            continue;  // an interval of 0: no observation to wait for
        }
        int code = kExitOk;
        const auto result = observation_result(opt, str(until), code);
        if (result == "ok" || result == "inconclusive") {
            continue;
        }
        if (result == "rolled_back") {
            std::cerr << "bgswitch: the canary failed its observation and was ended\n";
            return kExitRefused;
        }
        if (!result.empty()) {
            // Failing short of a full window, stopped or overtaken: the canary
            // does not go on.
            std::cerr << "bgswitch: step " << i + 1 << " ended " << result
                      << "; ending the canary\n";
            CanaryOptions end = c;
            end.reason = "canary step " + std::to_string(p) + "% ended " + result;
            end.expect_version.reset();
            canary_step(opt, end, 0, std::nullopt, doc);
        }
        return code == kExitOk ? kExitRefused : code;
    }
    return kExitOk;
}

int history(const ClientOptions& opt) {
    json::value doc;
    if (auto code = get_document(opt, "/v1/history", doc)) {
        return *code;
    }
    const auto& events = doc.as_object().at("events").as_array();
    if (events.empty()) {
        std::cout << "no switches yet\n";
        return kExitOk;
    }
    std::printf("%-24s %-13s %-6s %-6s %-15s %7s %9s  %-15s %s\n", "TIME", "ACTION", "FROM", "TO",
                "RESULT", "VERSION", "GATES", "SOURCE", "REASON");
    for (const auto& e : events) {
        const auto& o = e.as_object();
        const auto& g = o.at("gates").as_object();
        const double gate_ms =
            (g.at("health_us").to_number<double>() + g.at("smoke_us").to_number<double>()) / 1000.0;
        std::string result = str(o.if_contains("result"));
        if (const auto* d = o.if_contains("dry_run");
            d != nullptr && d->is_bool() && d->as_bool() && result != "dry_run_passed") {
            result = "dry_run_failed";  // a dry run's gate_failed: nothing was meant to move
        }
        std::string reason = str(o.if_contains("reason"));
        if (const auto* f = o.if_contains("failure")) {
            reason += (reason.empty() ? "" : "; ") + str(f);
        }
        if (const auto* u = o.if_contains("upstreams"); u && u->is_object()) {
            reason += (reason.empty() ? "" : "; ") + joined(u->as_object().if_contains("old")) +
                      " -> " + joined(u->as_object().if_contains("new"));
        }
        if (const auto* c = o.if_contains("changed")) {
            reason += (reason.empty() ? "" : "; ") + std::string("changed: ") + joined(c);
        }
        if (const auto* p = o.if_contains("percent")) {
            reason += (reason.empty() ? "" : "; ") + std::string("canary ") + str(p) + "%";
        }
        std::printf("%-24s %-13s %-6s %-6s %-15s %7s %9s  %-15s %s\n",
                    str(o.if_contains("time")).c_str(), str(o.if_contains("action")).c_str(),
                    str(o.if_contains("from")).c_str(), str(o.if_contains("to")).c_str(),
                    result.c_str(), str(o.if_contains("version")).c_str(), fmt_ms(gate_ms).c_str(),
                    str(o.if_contains("source")).c_str(), reason.c_str());
    }
    std::fflush(stdout);
    return kExitOk;
}

int upgrade(const ClientOptions& opt) {
    auto r = call(opt, "POST", "/v1/upgrade");
    json::value doc;
    if (auto code = change_answer(opt, r, doc)) {
        return *code;
    }
    const auto& o = doc.as_object();
    if (r.status == 202) {
        if (!opt.json) {
            std::cout << "upgrading: pid " << str(o.if_contains("pid"))
                      << " started; it takes over from pid " << str(o.if_contains("from_pid"))
                      << " once it serves (see the proxy's log)\n";
        }
        return kExitOk;
    }
    if (!opt.json) {
        std::cerr << "bgswitch: " << str(o.if_contains("error")) << ": "
                  << str(o.if_contains("detail")) << "\n";
    }
    return kExitRefused;
}

int fleet(const ClientOptions& opt) {
    json::value doc;
    if (auto code = get_document(opt, "/v1/fleet", doc)) {
        return *code;
    }
    const auto& o = doc.as_object();
    const auto version = o.at("version").to_number<std::uint64_t>();
    std::cout << "fleet    " << str(o.if_contains("key")) << " (version " << version << "; this is "
              << str(o.if_contains("node")) << ")\n\n";
    std::printf("%-24s %-7s %8s %-8s %10s  %-5s %s\n", "NODE", "ACTIVE", "APPLIED", "", "HEARTBEAT",
                "LIVE", "BACKEND");
    bool all_current = true;
    for (const auto& item : o.at("nodes").as_array()) {
        const auto& n = item.as_object();
        const auto applied = n.at("applied_version").to_number<std::uint64_t>();
        const bool live = n.at("live").as_bool();
        const bool behind = applied < version;
        all_current = all_current && (!live || !behind);
        char age[32];
        std::snprintf(age, sizeof age, "%.1fs ago",
                      n.at("heartbeat_age_ms").to_number<double>() / 1000.0);
        std::printf("%-24s %-7s %8llu %-8s %10s  %-5s %s\n", str(n.if_contains("node")).c_str(),
                    str(n.if_contains("active")).c_str(), static_cast<unsigned long long>(applied),
                    behind ? "BEHIND" : "", age, live ? "yes" : "NO",
                    str(n.if_contains("backend")).c_str());
    }
    std::fflush(stdout);
    return kExitOk;
}

}  // namespace bgs::admin::cli
