// A client's request as the session reads it: the head through the parser
// with the session's limits, the framing checks, target resolution and the
// rewrite for the upstream, then the body in small windows. Checked on every
// input:
//   - differential: a request the proxy accepts is one RFC 9112 accepts too
//     (framing_model.cpp), with the same body framing and length;
//   - the rewritten head parses again with the same method, target and body
//     framing (nothing the client sent can split it into two requests);
//   - the body delivered never exceeds the declared length.
#include "proxy/http/headers.hpp"
#include "tests/fuzz/framing_model.hpp"

#include <boost/asio/buffer.hpp>

#include <cstdio>
#include <cstdlib>

namespace {

using namespace bgs;

void fail(const char* what, std::string_view input) {
    std::fprintf(stderr, "request_fuzz: %s\ninput: %.*s\n", what, static_cast<int>(input.size()),
                 input.data());
    std::abort();
}

constexpr std::size_t kHeaderLimit = 16 * 1024;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    net::FlatFields fields;
    net::RequestParser parser(fields);
    parser.header_limit(kHeaderLimit);
    parser.body_limit(1 << 20);
    parser.framing_limit(kHeaderLimit);
    boost::system::error_code ec;
    const auto used = parser.put(boost::asio::buffer(input.data(), input.size()), ec);
    if (ec || !parser.is_header_done()) {
        return 0;  // refused, or not a whole head yet
    }
    const auto head = input.substr(0, used);

    // --- the proxy's decision ------------------------------------------------
    const bool framing_ok = !http::request_framing_error(fields, parser.version());
    const auto where = http::resolve_target(fields, parser.method_string(), parser.target());
    const bool accepted =
        framing_ok && !where.error && parser.method() != boost::beast::http::verb::connect;
    if (!accepted) {
        return 0;
    }

    // --- differential: RFC 9112 must agree -------------------------------------
    const auto model = fuzz::model_request_framing(head);
    if (model.reject) {
        fail(("accepted a request RFC 9112 refuses: " + model.why).c_str(), input);
    }
    const bool chunked = parser.chunked();
    const auto length = parser.content_length();
    if (chunked != (model.body == fuzz::ModelFraming::Body::Chunked)) {
        fail("chunked framing differs from RFC 9112", input);
    }
    if (!chunked && length.value_or(0) != model.length) {
        fail("body length differs from RFC 9112", input);
    }

    // --- the rewrite parses back to the same request ---------------------------
    http::UpstreamRequestHead rh;
    rh.method = parser.method_string();
    rh.target = where.target;
    rh.host = where.host.empty() ? std::string_view("upstream:8080") : where.host;
    rh.client_ip = "192.0.2.7";
    rh.request_id = "0123456789abcdef0123456789abcdef";
    rh.upgrade = http::is_upgrade_request(fields, parser.version());
    if (chunked) {
        rh.framing = http::Framing::Chunked;
    } else if (length) {
        rh.framing = http::Framing::Length;
        rh.content_length = *length;
    }
    std::string out;
    http::write_upstream_request_head(out, fields, rh);
    net::FlatFields again_fields;
    net::RequestParser again(again_fields);
    again.header_limit(static_cast<std::uint32_t>(out.size() + 1));
    const auto again_used = again.put(boost::asio::buffer(out.data(), out.size()), ec);
    if (ec || !again.is_header_done() || again_used != out.size()) {
        fail(("the rewritten head does not parse as one head: " + out).c_str(), input);
    }
    // An absolute-form target without a path gets origin-form's "/".
    std::string target(where.target);
    if (target.empty() || target.front() == '?') {
        target.insert(0, "/");
    }
    if (again.method_string() != parser.method_string() || again.target() != target ||
        again.chunked() != chunked || again.content_length() != length) {
        fail(("the rewritten head says something else: " + out).c_str(), input);
    }
    if (http::request_framing_error(again_fields, again.version())) {
        fail(("the rewritten head is refused by our own checks: " + out).c_str(), input);
    }

    // --- the body, in small windows ----------------------------------------------
    auto rest = input.substr(used);
    char window[64];
    std::uint64_t body = 0;
    while (!parser.is_done() && !rest.empty()) {
        parser.set_window(window, sizeof window);
        const auto n = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
        body += sizeof window - parser.window_left();
        if (ec == boost::beast::http::error::need_buffer) {
            ec = {};
        } else if (ec) {
            break;
        }
        if (n == 0 && parser.window_left() == sizeof window) {
            break;  // needs more than the input holds
        }
        rest.remove_prefix(n);
    }
    if (length && body > *length) {
        fail("more body than Content-Length declared", input);
    }
    if (length && parser.is_done() && body != *length) {
        fail("a done body of another length than declared", input);
    }
    return 0;
}
