#include "proxy/config/loader.hpp"

#include "proxy/common/redis_url.hpp"

#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace bgs::config {
namespace {

// A header is held in memory whole, and parsers count it in 32 bits.
constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{1} << 20;
constexpr std::uint64_t kMaxBodyBytes = std::uint64_t{1} << 40;

std::string child(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string item(const std::string& path, std::size_t i) {
    return path + "[" + std::to_string(i) + "]";
}

// An HTTP token (RFC 9110 §5.6.2): what a field or cookie name may be.
bool is_token(std::string_view s) {
    constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
    return std::all_of(s.begin(), s.end(), [&](char ch) {
        const auto c = static_cast<unsigned char>(ch);
        return std::isalnum(c) != 0 || kSpecials.find(ch) != std::string_view::npos;
    });
}

// One pass over the document. Each read_* method validates one key and records
// a problem instead of stopping, so the user sees every mistake at once.
class Loader {
  public:
    explicit Loader(const EnvLookup& env) : env_(env) {}

    LoadResult load(const YAML::Node& root) {
        if (!root || root.IsNull()) {
            error("", "the configuration is empty");
            return failure();
        }
        if (!root.IsMap()) {
            error("", "the configuration must be a mapping of keys");
            return failure();
        }
        Config cfg;
        check_keys(root, "",
                   {"listen", "preview", "admin", "colors", "active", "resolver", "health", "smoke",
                    "switch", "state", "proxy", "timeouts", "limits", "log"});
        read_listen(root["listen"], cfg);
        if (auto n = root["preview"]; n && !n.IsNull()) {
            if (map(n, "preview", {"address", "tls"})) {
                cfg.preview = read_address(n["address"], "preview.address", true);
                cfg.preview_tls = read_listener_tls(n["tls"], "preview.tls");
            }
        }
        read_admin(root["admin"], cfg.admin);
        read_colors(root["colors"], cfg);
        if (auto n = root["active"]) {
            if (auto s = scalar(n, "active")) {
                if (auto c = parse_color(*s)) {
                    cfg.active = *c;
                } else {
                    error_value("active", *s, "must be blue or green");
                }
            }
        }
        if (auto n = root["resolver"]; map(n, "resolver", {"refresh"})) {
            if (auto v = n["refresh"]) {
                cfg.resolver.refresh =
                    duration(v, "resolver.refresh", false).value_or(cfg.resolver.refresh);
            }
        }
        read_health(root["health"], cfg.health);
        read_smoke(root["smoke"], cfg.smoke);
        read_switch(root["switch"], cfg.switching);
        read_state(root["state"], cfg);
        read_proxy(root["proxy"], cfg.proxy);
        read_timeouts(root["timeouts"], cfg.timeouts);
        read_limits(root["limits"], cfg.limits);
        read_log(root["log"], cfg.log);
        cross_checks(cfg);
        return finish(std::move(cfg));
    }

    void error(const std::string& path, const std::string& msg) {
        errors_.push_back(path.empty() ? msg : path + ": " + msg);
    }

    LoadResult finish(Config cfg) {
        if (!errors_.empty()) {
            return failure();
        }
        LoadResult result;
        result.config = std::move(cfg);
        return result;
    }

    LoadResult failure() {
        LoadResult result;
        result.errors = std::move(errors_);
        return result;
    }

  private:
    void error_value(const std::string& path, const std::string& value, const std::string& msg) {
        errors_.push_back(path + ": \"" + value + "\": " + msg);
    }

    // True when `n` is present and a mapping whose keys are all in `known`.
    // Absent or null nodes give false without an error (the defaults stand).
    bool map(const YAML::Node& n, const std::string& path,
             std::initializer_list<std::string_view> known) {
        if (!n || n.IsNull()) {
            return false;
        }
        if (!n.IsMap()) {
            error(path, "must be a mapping");
            return false;
        }
        check_keys(n, path, known);
        return true;
    }

    void check_keys(const YAML::Node& n, const std::string& path,
                    std::initializer_list<std::string_view> known) {
        for (const auto& kv : n) {
            const auto key = kv.first.as<std::string>("");
            if (std::find(known.begin(), known.end(), key) == known.end()) {
                error(child(path, key), "unknown key");
            }
        }
        check_duplicates(n, path);
    }

    // yaml-cpp keeps both entries of a key written twice and n[key] finds the
    // first: a second "drain_timeout:" further down would be silently ignored.
    void check_duplicates(const YAML::Node& n, const std::string& path) {
        std::set<std::string> seen;
        for (const auto& kv : n) {
            const auto key = kv.first.as<std::string>("");
            if (!seen.insert(key).second) {
                error(child(path, key), "duplicate key (only one may be given)");
            }
        }
    }

    // A scalar with ${NAME} replaced from the environment.
    std::optional<std::string> scalar(const YAML::Node& n, const std::string& path) {
        if (!n.IsScalar()) {
            error(path, "must be a single value");
            return std::nullopt;
        }
        return substitute(n.Scalar(), path);
    }

    std::optional<std::string> substitute(const std::string& in, const std::string& path) {
        std::string out;
        bool ok = true;
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (in[i] != '$' || i + 1 >= in.size() || in[i + 1] != '{') {
                out.push_back(in[i]);
                continue;
            }
            auto close = in.find('}', i + 2);
            if (close == std::string::npos) {
                error_value(path, in, "unterminated ${");
                return std::nullopt;
            }
            std::string name = in.substr(i + 2, close - i - 2);
            const bool valid_name =
                !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])) &&
                std::all_of(name.begin(), name.end(), [](char c) {
                    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                });
            if (!valid_name) {
                error_value(path, in, "invalid variable name \"" + name + "\"");
                ok = false;
            } else if (auto value = env_(name)) {
                out += *value;
            } else {
                error(path, "environment variable " + name + " is not set");
                ok = false;
            }
            i = close;
        }
        if (!ok) {
            return std::nullopt;
        }
        return out;
    }

    std::optional<Duration> duration(const YAML::Node& n, const std::string& path,
                                     bool allow_zero) {
        auto s = scalar(n, path);
        if (!s) {
            return std::nullopt;
        }
        auto d = parse_duration(*s);
        if (!d) {
            error_value(path, *s,
                        "not a duration (use e.g. 500ms, 2s, 5m, 1h; at most " +
                            std::string(kMaxDurationText) + ")");
            return std::nullopt;
        }
        if (!allow_zero && d->count() == 0) {
            error_value(path, *s, "must be greater than 0");
            return std::nullopt;
        }
        return d;
    }

    /// A size in [1, max]; `max_text` spells max for the error.
    std::optional<std::uint64_t> size(const YAML::Node& n, const std::string& path,
                                      std::uint64_t max, std::string_view max_text) {
        auto s = scalar(n, path);
        if (!s) {
            return std::nullopt;
        }
        auto v = parse_size(*s);
        if (!v) {
            error_value(path, *s, "not a size (use e.g. 512, 16KiB, 10MiB)");
            return std::nullopt;
        }
        if (*v > max) {
            error_value(path, *s, "too large (at most " + std::string(max_text) + ")");
            return std::nullopt;
        }
        if (*v == 0) {
            error_value(path, *s, "must be greater than 0");
            return std::nullopt;
        }
        return v;
    }

    std::optional<unsigned> number(const YAML::Node& n, const std::string& path, unsigned min,
                                   unsigned max) {
        auto s = scalar(n, path);
        if (!s) {
            return std::nullopt;
        }
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(s->c_str(), &end, 10);
        if (s->empty() || *end != '\0' || errno != 0) {
            error_value(path, *s, "not a whole number");
            return std::nullopt;
        }
        if (v < min || v > max) {
            error_value(path, *s, "must be " + std::to_string(min) + ".." + std::to_string(max));
            return std::nullopt;
        }
        return static_cast<unsigned>(v);
    }

    std::optional<bool> boolean(const YAML::Node& n, const std::string& path) {
        auto s = scalar(n, path);
        if (!s) {
            return std::nullopt;
        }
        if (*s == "true" || *s == "yes" || *s == "on") {
            return true;
        }
        if (*s == "false" || *s == "no" || *s == "off") {
            return false;
        }
        error_value(path, *s, "must be true or false");
        return std::nullopt;
    }

    std::optional<HostPort> read_address(const YAML::Node& n, const std::string& path,
                                         bool allow_port_zero) {
        if (!n) {
            error(path, "is required");
            return std::nullopt;
        }
        auto s = scalar(n, path);
        if (!s) {
            return std::nullopt;
        }
        std::string why;
        auto hp = HostPort::parse(*s, &why);
        if (!hp) {
            error_value(path, *s, why);
            return std::nullopt;
        }
        if (hp->port == 0 && !allow_port_zero) {
            error_value(path, *s, "port out of range");
            return std::nullopt;
        }
        return hp;
    }

    void read_listen(const YAML::Node& n, Config& cfg) {
        if (!n || n.IsNull()) {
            error("listen", "is required (at least one address)");
            return;
        }
        if (!n.IsSequence() || n.size() == 0) {
            error("listen", "must be a list of at least one {address: host:port}");
            return;
        }
        for (std::size_t i = 0; i < n.size(); ++i) {
            const auto path = item("listen", i);
            const auto& entry = n[i];
            std::optional<HostPort> hp;
            std::optional<ListenerTls> tls;
            if (entry.IsScalar()) {
                hp = read_address(entry, path, true);
            } else if (map(entry, path, {"address", "tls"})) {
                hp = read_address(entry["address"], path + ".address", true);
                tls = read_listener_tls(entry["tls"], path + ".tls");
            } else {
                error(path, "must be {address: host:port}");
            }
            if (hp) {
                cfg.listen.push_back(*hp);
                cfg.listen_tls.push_back(std::move(tls));
            }
        }
    }

    // {certificates: [{cert, key}, ...], min_version: "1.2" | "1.3"}. The
    // files are read when the listener opens (and by check-config).
    std::optional<ListenerTls> read_listener_tls(const YAML::Node& n, const std::string& path) {
        if (!map(n, path, {"certificates", "min_version"})) {
            return std::nullopt;
        }
        ListenerTls tls;
        const auto certs = n["certificates"];
        if (!certs || !certs.IsSequence() || certs.size() == 0) {
            error(path + ".certificates", "must list at least one {cert, key}");
        } else {
            for (std::size_t i = 0; i < certs.size(); ++i) {
                const auto at = item(path + ".certificates", i);
                if (!map(certs[i], at, {"cert", "key"})) {
                    error(at, "must be {cert: file, key: file}");
                    continue;
                }
                ListenerTls::Certificate c;
                for (auto [field, out] : {std::pair{"cert", &c.cert}, std::pair{"key", &c.key}}) {
                    if (auto v = certs[i][field]; !v) {
                        error(at + "." + field, "is required");
                    } else if (auto s = scalar(v, at + "." + field)) {
                        *out = *s;
                    }
                }
                tls.certificates.push_back(std::move(c));
            }
        }
        if (auto v = n["min_version"]) {
            if (auto s = scalar(v, path + ".min_version")) {
                if (*s == "1.3") {
                    tls.tls13_only = true;
                } else if (*s != "1.2") {
                    error_value(path + ".min_version", *s, "must be \"1.2\" or \"1.3\"");
                }
            }
        }
        return tls;
    }

    std::optional<UpstreamTls> read_upstream_tls(const YAML::Node& n, const std::string& path) {
        if (!map(n, path, {"ca", "server_name", "verify", "cert", "key"})) {
            return std::nullopt;
        }
        UpstreamTls tls;
        for (auto [field, out] :
             {std::pair{"ca", &tls.ca}, std::pair{"server_name", &tls.server_name},
              std::pair{"cert", &tls.cert}, std::pair{"key", &tls.key}}) {
            if (auto v = n[field]) {
                if (auto s = scalar(v, path + "." + field)) {
                    *out = *s;
                }
            }
        }
        if (auto v = n["verify"]) {
            if (auto s = scalar(v, path + ".verify")) {
                if (*s == "true") {
                    tls.verify = true;
                } else if (*s == "false") {
                    tls.verify = false;
                } else {
                    error_value(path + ".verify", *s, "must be true or false");
                }
            }
        }
        if (tls.cert.empty() != tls.key.empty()) {
            error(path, "cert and key go together");
        }
        return tls;
    }

    void read_state(const YAML::Node& n, Config& cfg) {
        if (!map(n, "state", {"file", "backend", "redis"})) {
            return;
        }
        if (auto f = n["file"]) {
            if (auto s = scalar(f, "state.file")) {
                if (s->empty()) {
                    error("state.file", "must not be empty");
                }
                cfg.state_file = *s;
            }
        }
        bool redis = false;
        if (auto b = n["backend"]) {
            if (auto s = scalar(b, "state.backend")) {
                if (*s == "redis") {
                    redis = true;
                } else if (*s != "file") {
                    error_value("state.backend", *s, "must be file or redis");
                }
            }
        }
        const auto r = n["redis"];
        if (!redis) {
            if (r && !r.IsNull()) {
                error("state.redis", "applies only with state.backend: redis");
            }
            return;
        }
        if (!r || r.IsNull()) {
            error("state.redis", "state.backend: redis needs state.redis.url and state.redis.key");
            return;
        }
        if (!map(r, "state.redis", {"url", "key", "node"})) {
            return;
        }
        Fleet fleet;
        if (auto u = r["url"]; !u) {
            error("state.redis.url", "is required");
        } else if (auto s = scalar(u, "state.redis.url")) {
            std::string why;
            const auto url = redis::Url::parse(*s, &why);
            if (!url) {
                // The URL may hold a password: only the reason is shown.
                error("state.redis.url", why);
            } else {
                fleet.url = *s;
            }
        }
        if (auto k = r["key"]; !k) {
            error("state.redis.key", "is required (the fleet's name, e.g. bgswitch:shop)");
        } else if (auto s = scalar(k, "state.redis.key")) {
            if (auto why = fleet_name_problem(*s, 200)) {
                error_value("state.redis.key", *s, *why);
            } else {
                fleet.key = *s;
            }
        }
        if (auto nd = r["node"]) {
            if (auto s = scalar(nd, "state.redis.node")) {
                fleet.node = *s;
            }
        } else {
            char host[256] = {};
            ::gethostname(host, sizeof host - 1);
            fleet.node = host;
        }
        if (auto why = fleet_name_problem(fleet.node, 128)) {
            error_value("state.redis.node", fleet.node, *why);
        }
        cfg.fleet = std::move(fleet);
    }

    // Keys and node names go into Redis key names and the fleet's listing.
    static std::optional<std::string> fleet_name_problem(const std::string& s, std::size_t max) {
        if (s.empty()) {
            return "must not be empty";
        }
        if (s.size() > max) {
            return "longer than " + std::to_string(max) + " characters";
        }
        const bool printable = std::all_of(s.begin(), s.end(), [](char c) {
            return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
        });
        if (!printable) {
            return "only printable characters without spaces";
        }
        return std::nullopt;
    }

    void read_admin(const YAML::Node& n, Admin& admin) {
        if (!map(n, "admin", {"address", "token", "token_file", "allow"})) {
            return;
        }
        if (n["address"]) {
            if (auto hp = read_address(n["address"], "admin.address", true)) {
                admin.address = *hp;
            }
        }
        token_given_ = n["token"] || n["token_file"];
        if (n["token"] && n["token_file"]) {
            error("admin", "set token or token_file, not both");
        } else if (auto t = n["token"]) {
            if (auto s = scalar(t, "admin.token")) {
                if (s->empty()) {
                    error("admin.token", "must not be empty");
                }
                admin.token = *s;
            }
        } else if (auto f = n["token_file"]) {
            if (auto s = scalar(f, "admin.token_file")) {
                std::error_code dir_ec;
                if (std::filesystem::is_directory(*s, dir_ec)) {
                    error_value("admin.token_file", *s, "is a directory, not a file");
                    return;
                }
                std::ifstream in(*s);
                std::stringstream content;
                if (in) {
                    content << in.rdbuf();
                }
                if (!in) {
                    error_value("admin.token_file", *s,
                                std::string("cannot read: ") + std::strerror(errno));
                } else {
                    std::string token = content.str();
                    while (!token.empty() &&
                           std::isspace(static_cast<unsigned char>(token.back()))) {
                        token.pop_back();
                    }
                    if (token.empty()) {
                        error_value("admin.token_file", *s, "the file is empty");
                    }
                    admin.token = token;
                }
            }
        }
        if (auto a = n["allow"]) {
            admin.allow = networks(a, "admin.allow");
        }
    }

    std::vector<Cidr> networks(const YAML::Node& n, const std::string& path) {
        std::vector<Cidr> out;
        if (!n.IsSequence()) {
            error(path, "must be a list of CIDR networks");
            return out;
        }
        for (std::size_t i = 0; i < n.size(); ++i) {
            const auto at = item(path, i);
            if (auto s = scalar(n[i], at)) {
                std::string why;
                if (auto c = Cidr::parse(*s, &why)) {
                    out.push_back(*c);
                } else {
                    error_value(at, *s, why);
                }
            }
        }
        return out;
    }

    void read_colors(const YAML::Node& n, Config& cfg) {
        if (!n || n.IsNull()) {
            error("colors", "is required (blue and green, each with upstreams)");
            return;
        }
        if (!map(n, "colors", {"blue", "green"})) {
            return;
        }
        for (Color c : kColors) {
            const auto path = child("colors", to_string(c));
            const auto group = n[std::string(to_string(c))];
            if (!group || group.IsNull()) {
                error(path, "is required");
                continue;
            }
            if (!map(group, path, {"upstreams", "tls"})) {
                continue;
            }
            if (const auto t = group["tls"]; t && !t.IsNull()) {
                cfg.colors[index(c)].tls = read_upstream_tls(t, path + ".tls");
            }
            const auto ups = group["upstreams"];
            const auto ups_path = path + ".upstreams";
            if (!ups || !ups.IsSequence() || ups.size() == 0) {
                error(ups_path, "must be a list of at least one host:port");
                continue;
            }
            std::set<std::string> seen;
            for (std::size_t i = 0; i < ups.size(); ++i) {
                if (auto hp = read_address(ups[i], item(ups_path, i), false)) {
                    if (!seen.insert(hp->to_string()).second) {
                        error_value(item(ups_path, i), hp->to_string(), "listed twice");
                    }
                    cfg.colors[index(c)].upstreams.push_back(*hp);
                }
            }
        }
    }

    void read_health(const YAML::Node& n, Health& h) {
        if (!map(n, "health",
                 {"path", "interval", "timeout", "healthy_threshold", "unhealthy_threshold",
                  "expect_status"})) {
            return;
        }
        if (auto p = n["path"]) {
            if (auto s = scalar(p, "health.path")) {
                if (s->empty() || s->front() != '/') {
                    error_value("health.path", *s, "must start with /");
                }
                h.path = *s;
            }
        }
        if (auto v = n["interval"]) {
            h.interval = duration(v, "health.interval", false).value_or(h.interval);
        }
        if (auto v = n["timeout"]) {
            h.timeout = duration(v, "health.timeout", false).value_or(h.timeout);
        }
        if (auto v = n["healthy_threshold"]) {
            h.healthy_threshold =
                number(v, "health.healthy_threshold", 1, 100).value_or(h.healthy_threshold);
        }
        if (auto v = n["unhealthy_threshold"]) {
            h.unhealthy_threshold =
                number(v, "health.unhealthy_threshold", 1, 100).value_or(h.unhealthy_threshold);
        }
        if (auto v = n["expect_status"]) {
            h.expect_status = statuses(v, "health.expect_status");
        }
    }

    std::vector<unsigned> statuses(const YAML::Node& n, const std::string& path) {
        std::vector<unsigned> out;
        if (n.IsScalar()) {
            if (auto s = number(n, path, 100, 599)) {
                out.push_back(*s);
            }
            return out;
        }
        if (!n.IsSequence() || n.size() == 0) {
            error(path, "must be a status code or a list of them");
            return out;
        }
        for (std::size_t i = 0; i < n.size(); ++i) {
            if (auto s = number(n[i], item(path, i), 100, 599)) {
                out.push_back(*s);
            }
        }
        return out;
    }

    std::map<std::string, std::string> string_map(const YAML::Node& n, const std::string& path) {
        std::map<std::string, std::string> out;
        if (!n.IsMap()) {
            error(path, "must be a mapping of names to values");
            return out;
        }
        check_duplicates(n, path);
        for (const auto& kv : n) {
            const auto key = kv.first.as<std::string>("");
            if (auto v = scalar(kv.second, child(path, key))) {
                out[key] = *v;
            }
        }
        return out;
    }

    void read_smoke(const YAML::Node& n, std::vector<SmokeCheck>& out) {
        if (!n || n.IsNull()) {
            return;
        }
        if (!n.IsSequence()) {
            error("smoke", "must be a list of checks");
            return;
        }
        std::set<std::string> names;
        for (std::size_t i = 0; i < n.size(); ++i) {
            const auto path = item("smoke", i);
            const auto& e = n[i];
            if (!map(e, path,
                     {"name", "method", "path", "headers", "body", "expect", "retries",
                      "retry_interval"})) {
                if (!e || e.IsNull()) {
                    error(path, "must be a mapping");
                }
                continue;
            }
            SmokeCheck check;
            if (auto v = e["name"]; v) {
                check.name = scalar(v, path + ".name").value_or("");
            }
            if (check.name.empty()) {
                error(path + ".name", "is required");
            } else if (!names.insert(check.name).second) {
                error_value(path + ".name", check.name, "used by another check");
            }
            if (auto v = e["method"]) {
                check.method = scalar(v, path + ".method").value_or("GET");
                const bool token =
                    !check.method.empty() &&
                    std::all_of(check.method.begin(), check.method.end(),
                                [](char c) { return std::isupper(static_cast<unsigned char>(c)); });
                if (!token) {
                    error_value(path + ".method", check.method, "not an HTTP method");
                }
            }
            if (auto v = e["path"]) {
                check.path = scalar(v, path + ".path").value_or("");
                if (check.path.empty() || check.path.front() != '/') {
                    error_value(path + ".path", check.path, "must start with /");
                }
            } else {
                error(path + ".path", "is required");
            }
            if (auto v = e["headers"]) {
                check.headers = string_map(v, path + ".headers");
            }
            if (auto v = e["body"]) {
                check.body = scalar(v, path + ".body").value_or("");
            }
            if (auto v = e["retries"]) {
                check.retries = number(v, path + ".retries", 0, 10).value_or(0);
            }
            if (auto v = e["retry_interval"]) {
                check.retry_interval =
                    duration(v, path + ".retry_interval", true).value_or(check.retry_interval);
                if (check.retry_interval > std::chrono::minutes(1)) {
                    error(path + ".retry_interval", "must be at most 1m");
                }
            }
            if (auto x = e["expect"];
                map(x, path + ".expect", {"status", "body_contains", "headers", "max_latency"})) {
                const auto xp = path + ".expect";
                if (auto v = x["status"]) {
                    check.expect.status = number(v, xp + ".status", 100, 599).value_or(200);
                }
                if (auto v = x["body_contains"]) {
                    check.expect.body_contains = scalar(v, xp + ".body_contains");
                }
                if (auto v = x["headers"]) {
                    check.expect.headers = string_map(v, xp + ".headers");
                }
                if (auto v = x["max_latency"]) {
                    check.expect.max_latency = duration(v, xp + ".max_latency", false);
                }
            }
            out.push_back(std::move(check));
        }
    }

    void read_switch(const YAML::Node& n, Switch& s) {
        if (!map(n, "switch",
                 {"min_healthy", "drain_timeout", "close_spread", "observe", "auto_rollback",
                  "canary"})) {
            return;
        }
        read_canary(n["canary"], s.canary);
        if (auto v = n["observe"]) {
            s.observe = duration(v, "switch.observe", true).value_or(s.observe);
        }
        read_auto_rollback(n["auto_rollback"], s.auto_rollback);
        if (auto v = n["min_healthy"]) {
            if (v.IsScalar() && v.Scalar() == "all") {
                s.min_healthy.reset();
            } else {
                s.min_healthy = number(v, "switch.min_healthy", 1, 100000);
            }
        }
        if (auto v = n["drain_timeout"]) {
            s.drain_timeout = duration(v, "switch.drain_timeout", true).value_or(s.drain_timeout);
        }
        if (auto v = n["close_spread"]) {
            s.close_spread = duration(v, "switch.close_spread", true).value_or(s.close_spread);
        }
    }

    void read_canary(const YAML::Node& n, Canary& c) {
        if (!map(n, "switch.canary", {"cookie", "sticky_header"})) {
            return;
        }
        // Both are written into and matched against HTTP fields: a token
        // (RFC 9110 §5.6.2) is all they may be.
        auto token = [&](const char* key, std::string& field) {
            const auto path = child("switch.canary", key);
            if (auto v = n[key]) {
                if (auto text = scalar(v, path)) {
                    if (text->empty() || text->size() > 64 || !is_token(*text)) {
                        error_value(path, *text, "must be an HTTP token of 1 to 64 characters");
                    } else {
                        field = *text;
                    }
                }
            }
        };
        token("cookie", c.cookie);
        token("sticky_header", c.sticky_header);
    }

    void read_auto_rollback(const YAML::Node& n, AutoRollback& a) {
        const std::string path = "switch.auto_rollback";
        if (!map(n, path, {"max_error_ratio", "max_p99", "window", "min_requests"})) {
            return;
        }
        if (auto v = n["max_error_ratio"]) {
            if (auto text = scalar(v, path + ".max_error_ratio")) {
                char* end = nullptr;
                const double r = std::strtod(text->c_str(), &end);
                if (text->empty() || *end != '\0' || !(r >= 0.0 && r <= 1.0)) {
                    error_value(path + ".max_error_ratio", *text, "must be a ratio from 0 to 1");
                } else {
                    a.max_error_ratio = r;
                }
            }
        }
        if (auto v = n["max_p99"]) {
            a.max_p99 = duration(v, path + ".max_p99", false).value_or(a.max_p99);
        }
        if (auto v = n["window"]) {
            a.window = duration(v, path + ".window", false).value_or(a.window);
            if (a.window > std::chrono::hours(1) || a.window < std::chrono::seconds(1)) {
                error(path + ".window", "must be 1s..1h");
            }
        }
        if (auto v = n["min_requests"]) {
            a.min_requests =
                number(v, path + ".min_requests", 1, 100000000).value_or(a.min_requests);
        }
    }

    void read_proxy(const YAML::Node& n, Proxy& p) {
        if (!map(n, "proxy", {"workers", "expose_color_header", "trusted_proxies"})) {
            return;
        }
        if (auto v = n["workers"]) {
            if (v.IsScalar() && v.Scalar() == "auto") {
                p.workers = 0;
            } else {
                p.workers = number(v, "proxy.workers", 1, 256).value_or(0);
            }
        }
        if (auto v = n["expose_color_header"]) {
            p.expose_color_header = boolean(v, "proxy.expose_color_header").value_or(false);
        }
        if (auto v = n["trusted_proxies"]) {
            p.trusted_proxies = networks(v, "proxy.trusted_proxies");
        }
    }

    void read_timeouts(const YAML::Node& n, Timeouts& t) {
        if (!map(n, "timeouts",
                 {"connect", "header_read", "idle", "upstream_response", "shutdown"})) {
            return;
        }
        auto set = [&](const char* key, Duration& field, bool allow_zero) {
            if (auto v = n[key]) {
                field = duration(v, child("timeouts", key), allow_zero).value_or(field);
            }
        };
        set("connect", t.connect, false);
        set("header_read", t.header_read, false);
        set("idle", t.idle, false);
        set("upstream_response", t.upstream_response, false);
        set("shutdown", t.shutdown, true);
    }

    void read_limits(const YAML::Node& n, Limits& l) {
        if (!map(n, "limits", {"max_header_bytes", "max_body_bytes", "max_connections"})) {
            return;
        }
        if (auto v = n["max_header_bytes"]) {
            l.max_header_bytes = size(v, "limits.max_header_bytes", kMaxHeaderBytes, "1MiB")
                                     .value_or(l.max_header_bytes);
            if (l.max_header_bytes < 1024) {
                error("limits.max_header_bytes", "must be at least 1KiB");
            }
        }
        if (auto v = n["max_body_bytes"]) {
            l.max_body_bytes = size(v, "limits.max_body_bytes", kMaxBodyBytes, "1024GiB")
                                   .value_or(l.max_body_bytes);
        }
        if (auto v = n["max_connections"]) {
            l.max_connections =
                number(v, "limits.max_connections", 1, 10'000'000).value_or(l.max_connections);
        }
    }

    void read_log(const YAML::Node& n, Log& l) {
        if (!map(n, "log", {"level", "access", "format"})) {
            return;
        }
        if (auto v = n["level"]) {
            l.level = scalar(v, "log.level").value_or("info");
            static const std::set<std::string> kLevels{"trace", "debug",    "info", "warn",
                                                       "error", "critical", "off"};
            if (!kLevels.contains(l.level)) {
                error_value("log.level", l.level,
                            "must be trace, debug, info, warn, error, critical or off");
            }
        }
        if (auto v = n["access"]) {
            l.access = scalar(v, "log.access").value_or("stdout");
            if (l.access.empty()) {
                error("log.access", "must be stdout, stderr, off or a file path");
            }
        }
        if (auto v = n["format"]) {
            auto s = scalar(v, "log.format");
            if (s == "text") {
                l.format = LogFormat::Text;
            } else if (s == "json") {
                l.format = LogFormat::Json;
            } else if (s) {
                error_value("log.format", *s, "must be text or json");
            }
        }
    }

    void cross_checks(const Config& cfg) {
        // Loopback too: in a pod or on a shared host, loopback is not private.
        if (cfg.admin.token.empty() && !token_given_) {
            error("admin", "a token is required (admin.token or admin.token_file)");
        }
        std::set<std::string> bound;
        auto claim = [&](const HostPort& hp, const std::string& path) {
            if (hp.port != 0 && !bound.insert(hp.to_string()).second) {
                error_value(path, hp.to_string(), "address used by another listener");
            }
        };
        for (std::size_t i = 0; i < cfg.listen.size(); ++i) {
            claim(cfg.listen[i], item("listen", i) + ".address");
        }
        if (cfg.preview) {
            claim(*cfg.preview, "preview.address");
        }
        claim(cfg.admin.address, "admin.address");
        if (cfg.switching.min_healthy) {
            for (Color c : kColors) {
                const auto n = cfg.group(c).upstreams.size();
                if (n > 0 && *cfg.switching.min_healthy > n) {
                    error_value("switch.min_healthy", std::to_string(*cfg.switching.min_healthy),
                                "more than the " + std::to_string(n) + " upstream(s) of " +
                                    std::string(to_string(c)));
                }
            }
        }
        if (cfg.switching.close_spread > cfg.switching.drain_timeout) {
            error_value("switch.close_spread", format_duration(cfg.switching.close_spread),
                        "must not exceed switch.drain_timeout");
        }
    }

    const EnvLookup& env_;
    std::vector<std::string> errors_;
    bool token_given_ = false;  // admin.token or admin.token_file is present
};

}  // namespace

std::optional<std::string> process_env(const std::string& name) {
    if (const char* v = std::getenv(name.c_str())) {
        return std::string(v);
    }
    return std::nullopt;
}

LoadResult load_config_text(std::string_view yaml, const std::string& source,
                            const EnvLookup& env) {
    Loader loader(env);
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::Exception& e) {
        // yaml-cpp's marks are 0-based.
        loader.error("", source + ":" + std::to_string(e.mark.line + 1) + ":" +
                             std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
        return loader.failure();
    }
    return loader.load(root);
}

LoadResult load_config_file(const std::string& path, const EnvLookup& env) {
    std::ifstream in(path);
    if (!in) {
        LoadResult r;
        r.errors.push_back(path + ": cannot open: " + std::strerror(errno));
        return r;
    }
    std::stringstream text;
    text << in.rdbuf();
    return load_config_text(text.str(), path, env);
}

}  // namespace bgs::config
