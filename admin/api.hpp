// The admin API's request and response shapes as JSON (Boost.JSON), shared by
// the admin server and the client commands. Pure functions; any thread.
#pragma once

#include "proxy/control/switcher.hpp"

#include <boost/json/object.hpp>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace bgs::admin {

/// An admin request as the routes see it (already read off the wire).
struct ApiRequest {
    std::string method;
    std::string target;
    std::string authorization;
    std::string body;
    std::array<unsigned char, 16> source_bytes{};  // the peer's address
    std::size_t source_len = 0;                    // 4 or 16
    std::string source;                            // printable
};

struct ApiResponse {
    ApiResponse() = default;
    ApiResponse(unsigned s, std::string b, std::string type = "application/json")
        : status(s), body(std::move(b)), content_type(std::move(type)) {}

    unsigned status = 200;
    std::string body;
    std::string content_type = "application/json";
    std::vector<std::pair<std::string, std::string>> headers;
};

/// The first key that appears twice in one object of the JSON `text`, if any
/// (a malformed document has none).
std::optional<std::string> duplicate_json_key(std::string_view text);

/// {"error": message, ...details} with `status`.
ApiResponse error_response(unsigned status, std::string_view message,
                           boost::json::object details = {});

/// Parses the body of POST /v1/switch (rollback = false) or /v1/rollback. Unknown
/// fields and wrong types are errors; returns the message on failure.
std::variant<control::SwitchRequest, std::string> parse_switch_body(std::string_view body,
                                                                    bool rollback);

/// Parses the body of POST /v1/canary: "to" and "percent" (0..100; "to" may
/// be left out with 0), and the switch's "observe", "drain_timeout",
/// "dry_run", "reason", "expect_version" and "wait_fleet".
std::variant<control::SwitchRequest, std::string> parse_canary_body(std::string_view body);

/// Parses the body of PUT /v1/colors/{color}/upstreams for `color`. Returns
/// every problem found (bad address, empty list, unknown field, ...) on failure.
std::variant<control::UpstreamsRequest, std::vector<std::string>> parse_upstreams_body(
    std::string_view body, Color color);

/// The longest a call may wait for the fleet ("wait_fleet").
inline constexpr Duration kMaxWaitFleet = std::chrono::minutes(2);

/// The most upstreams a list may hold.
inline constexpr std::size_t kMaxUpstreams = 1024;

boost::json::object gates_json(const health::GateReport& g);

/// The HTTP answer for a switch or rollback outcome (SPEC section 3), with
/// `extra` fields (the fleet's answer to wait_fleet).
ApiResponse outcome_response(const control::SwitchOutcome& o,
                             const boost::json::object& extra = {});

/// The HTTP answer for PUT /v1/colors/{color}/upstreams (SPEC section 7).
ApiResponse upstreams_response(const control::SwitchOutcome& o,
                               const std::vector<config::HostPort>& list,
                               const boost::json::object& extra = {});

}  // namespace bgs::admin
