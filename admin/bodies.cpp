// The admin API's request bodies: strict JSON parsing (unknown fields, wrong
// types, duplicate keys and out-of-range numbers are errors with a message).
// Pure functions; any thread. (Fuzzed by tests/fuzz/admin_json_fuzz.cpp.)
#include "admin/api.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>

#include <set>

namespace bgs::admin {
namespace json = boost::json;
namespace {

// Builds a message by appending (GCC 12 warns falsely on "literal" + std::string).
// A JSON number that is a whole number at or above zero.
std::optional<std::uint64_t> whole_number(const json::value& v) {
    if (v.is_int64() && v.as_int64() >= 0) {
        return static_cast<std::uint64_t>(v.as_int64());
    }
    if (v.is_uint64()) {
        return v.as_uint64();
    }
    return std::nullopt;
}

std::string msg(std::initializer_list<std::string_view> parts) {
    std::string out;
    for (auto p : parts) {
        out.append(p.data(), p.size());
    }
    return out;
}

// Walks a document and stops at the first key that appears twice in one
// object. json::parse keeps one of them silently, so {"dry_run":true,
// "dry_run":false} would mean whatever the parser chose.
class DuplicateKeyFinder {
  public:
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    std::optional<std::string> duplicate;

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_object_begin(json::error_code&) {
        objects_.emplace_back();
        return true;
    }
    bool on_object_end(std::size_t, json::error_code&) {
        objects_.pop_back();
        return true;
    }
    bool on_array_begin(json::error_code&) { return true; }
    bool on_array_end(std::size_t, json::error_code&) { return true; }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
        key_.append(s.data(), s.size());
        if (!objects_.back().insert(key_).second) {
            duplicate = key_;
            ec = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
            return false;
        }
        key_.clear();
        return true;
    }
    bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
    bool on_double(double, json::string_view, json::error_code&) { return true; }
    bool on_bool(bool, json::error_code&) { return true; }
    bool on_null(json::error_code&) { return true; }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }

  private:
    std::vector<std::set<std::string>> objects_;
    std::string key_;
};

}  // namespace

std::optional<std::string> duplicate_json_key(std::string_view text) {
    json::basic_parser<DuplicateKeyFinder> p{json::parse_options{}};
    json::error_code ec;
    p.write_some(false, text.data(), text.size(), ec);
    return p.handler().duplicate;
}

namespace {

enum class BodyKind { Switch, Rollback, Canary };

// The switch family's bodies share their fields; each kind takes its own.
std::variant<control::SwitchRequest, std::string> parse_body(std::string_view body, BodyKind kind) {
    const bool rollback = kind == BodyKind::Rollback;
    const bool canary = kind == BodyKind::Canary;
    control::SwitchRequest req;
    req.rollback = rollback;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        if (rollback) {
            return req;
        }
        return std::string(canary ? "the body must be a JSON object with \"to\" and \"percent\""
                                  : "the body must be a JSON object with \"to\"");
    }
    json::error_code ec;
    auto v = json::parse(body, ec);
    if (ec) {
        return msg({"malformed JSON: ", ec.message()});
    }
    if (auto dup = duplicate_json_key(body)) {
        return msg({"duplicate key \"", *dup, "\""});
    }
    if (!v.is_object()) {
        return std::string("the body must be a JSON object");
    }
    for (const auto& kv : v.as_object()) {
        const auto key = kv.key();
        const auto& val = kv.value();
        auto type_error = [&](const char* want) { return msg({"\"", key, "\" must be ", want}); };
        if (key == "to" && !rollback) {
            if (!val.is_string()) {
                return type_error("\"blue\" or \"green\"");
            }
            auto c = parse_color(std::string_view(val.as_string()));
            if (!c) {
                return msg({"unknown color \"", val.as_string(), "\""});
            }
            req.to = c;
        } else if (key == "drain_timeout") {
            if (!val.is_string()) {
                return type_error("a duration such as \"30s\"");
            }
            auto d = parse_duration(std::string_view(val.as_string()));
            if (!d) {
                return msg({"\"drain_timeout\": \"", val.as_string(),
                            "\" is not a duration (e.g. 30s, 5m; at most ", kMaxDurationText, ")"});
            }
            req.drain_timeout = d;
        } else if (key == "observe" && !rollback) {
            if (!val.is_string()) {
                return type_error("a duration such as \"3m\"");
            }
            auto d = parse_duration(std::string_view(val.as_string()));
            if (!d) {
                return msg({"\"observe\": \"", val.as_string(),
                            "\" is not a duration (e.g. 3m, 0s for none; at most ",
                            kMaxDurationText, ")"});
            }
            req.observe = d;
        } else if (key == "wait_fleet") {
            if (!val.is_string()) {
                return type_error("a duration such as \"5s\"");
            }
            auto d = parse_duration(std::string_view(val.as_string()));
            if (!d || *d > kMaxWaitFleet) {
                return msg({"\"wait_fleet\": \"", val.as_string(),
                            "\" is not a duration of at most 2m (e.g. 5s)"});
            }
            req.wait_fleet = d;
        } else if (key == "dry_run") {
            if (!val.is_bool()) {
                return type_error("true or false");
            }
            req.dry_run = val.as_bool();
        } else if (key == "percent" && canary) {
            const auto p = whole_number(val);
            if (!p || *p > 100) {
                return type_error("a whole number from 0 to 100");
            }
            req.canary = static_cast<unsigned>(*p);
        } else if (key == "skip_smoke" && rollback) {
            if (!val.is_bool()) {
                return type_error("true or false");
            }
            req.skip_smoke = val.as_bool();
        } else if (key == "reason") {
            if (!val.is_string() || val.as_string().size() > 1024) {
                return type_error("a string of at most 1024 characters");
            }
            req.reason = val.as_string();
        } else if (key == "expect_version") {
            req.expect_version = whole_number(val);
            if (!req.expect_version) {
                return type_error("a whole number");
            }
        } else {
            return msg({"unknown field \"", key, "\""});
        }
    }
    if (canary && !req.canary) {
        return std::string("\"percent\" is required (0 ends the canary)");
    }
    if (!rollback && !req.to && !(canary && req.canary == 0u)) {
        return std::string("\"to\" is required");
    }
    return req;
}

}  // namespace

std::variant<control::SwitchRequest, std::string> parse_switch_body(std::string_view body,
                                                                    bool rollback) {
    return parse_body(body, rollback ? BodyKind::Rollback : BodyKind::Switch);
}

std::variant<control::SwitchRequest, std::string> parse_canary_body(std::string_view body) {
    return parse_body(body, BodyKind::Canary);
}

std::variant<control::UpstreamsRequest, std::vector<std::string>> parse_upstreams_body(
    std::string_view body, Color color) {
    control::UpstreamsRequest req;
    req.color = color;
    std::vector<std::string> problems;
    json::error_code ec;
    auto v = json::parse(body, ec);
    if (ec) {
        return std::vector<std::string>{msg({"malformed JSON: ", ec.message()})};
    }
    if (auto dup = duplicate_json_key(body)) {
        return std::vector<std::string>{msg({"duplicate key \"", *dup, "\""})};
    }
    if (!v.is_object()) {
        return std::vector<std::string>{"the body must be a JSON object with \"upstreams\""};
    }
    bool have_list = false;
    for (const auto& kv : v.as_object()) {
        const auto key = kv.key();
        const auto& val = kv.value();
        if (key == "upstreams") {
            have_list = true;
            if (!val.is_array()) {
                problems.push_back("\"upstreams\" must be a list of \"host:port\" strings");
                continue;
            }
            const auto& list = val.as_array();
            if (list.empty()) {
                problems.push_back("\"upstreams\" must not be empty");
            }
            if (list.size() > kMaxUpstreams) {
                problems.push_back(msg(
                    {"\"upstreams\" holds more than ", std::to_string(kMaxUpstreams), " entries"}));
                continue;
            }
            for (std::size_t i = 0; i < list.size(); ++i) {
                const auto where = "upstreams[" + std::to_string(i) + "]";
                if (!list[i].is_string()) {
                    problems.push_back(where + ": must be a \"host:port\" string");
                    continue;
                }
                std::string why;
                const std::string_view text = list[i].as_string();
                auto hp = config::HostPort::parse(text, &why);
                if (!hp) {
                    problems.push_back(msg({where, ": \"", text, "\": ", why}));
                } else if (hp->port == 0) {
                    problems.push_back(msg({where, ": \"", text, "\": port must be 1..65535"}));
                } else if (std::find(req.upstreams.begin(), req.upstreams.end(), *hp) !=
                           req.upstreams.end()) {
                    problems.push_back(msg({where, ": \"", text, "\" appears twice"}));
                } else {
                    req.upstreams.push_back(*hp);
                }
            }
        } else if (key == "reason") {
            if (!val.is_string() || val.as_string().size() > 1024) {
                problems.push_back("\"reason\" must be a string of at most 1024 characters");
            } else {
                req.reason = val.as_string();
            }
        } else if (key == "expect_version") {
            req.expect_version = whole_number(val);
            if (!req.expect_version) {
                problems.push_back("\"expect_version\" must be a whole number");
            }
        } else if (key == "wait_fleet") {
            auto d =
                val.is_string() ? parse_duration(std::string_view(val.as_string())) : std::nullopt;
            if (!d || *d > kMaxWaitFleet) {
                problems.push_back("\"wait_fleet\" must be a duration of at most 2m (e.g. 5s)");
            } else {
                req.wait_fleet = d;
            }
        } else {
            problems.push_back(msg({"unknown field \"", key, "\""}));
        }
    }
    if (!have_list) {
        problems.push_back("\"upstreams\" is required");
    }
    if (!problems.empty()) {
        return problems;
    }
    return req;
}

}  // namespace bgs::admin
