// An upstream's response as the session reads it (a lying upstream is
// outside input too): the head, the client's head written from it, then the
// body (chunked or by length) in small windows. The head written for the
// client must parse back to the same status and framing.
#include "proxy/http/headers.hpp"

#include <boost/asio/buffer.hpp>

#include <cstdio>
#include <cstdlib>

namespace {

using namespace bgs;

void fail(const char* what, std::string_view input) {
    std::fprintf(stderr, "response_fuzz: %s\ninput: %.*s\n", what, static_cast<int>(input.size()),
                 input.data());
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) {
        return 0;
    }
    // The first byte says how the request went: HEAD or not, HTTP/1.0 client or not.
    const bool head_request = (data[0] & 1) != 0;
    const bool client_v10 = (data[0] & 2) != 0;
    const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
    net::FlatFields fields;
    net::ResponseParser rp(fields);
    rp.header_limit(16 * 1024);
    rp.body_limit(boost::none);
    rp.framing_limit(16 * 1024);
    if (head_request) {
        rp.skip(true);
    }
    boost::system::error_code ec;
    const auto used = rp.put(boost::asio::buffer(input.data(), input.size()), ec);
    if (ec || !rp.is_header_done()) {
        return 0;
    }

    // The session's decisions (prepare_response_head), then the head.
    const unsigned code = rp.status();
    const bool body_expected = !head_request && code != 204 && code != 304 && code >= 200;
    http::ClientResponseHead h;
    h.version = client_v10 ? 10 : 11;
    h.status = code;
    h.reason = rp.reason();
    h.request_id = "0123456789abcdef0123456789abcdef";
    if (auto len = rp.content_length(); len && (body_expected || head_request || code == 304)) {
        h.framing = http::Framing::Length;
        h.content_length = *len;
    } else if (body_expected) {
        h.framing = client_v10 ? http::Framing::UntilClose : http::Framing::Chunked;
    }
    h.keep_alive = h.framing != http::Framing::UntilClose;
    std::string out;
    http::write_client_response_head(out, fields, h);
    net::FlatFields again_fields;
    net::ResponseParser again(again_fields);
    again.body_limit(boost::none);  // as the proxy reads responses
    again.header_limit(static_cast<std::uint32_t>(out.size() + 1));
    if (head_request) {
        again.skip(true);
    }
    const auto again_used = again.put(boost::asio::buffer(out.data(), out.size()), ec);
    if (ec || !again.is_header_done() || again_used != out.size()) {
        fail(("the client's head does not parse as one head: " + out).c_str(), input);
    }
    if (again.status() != code || (h.framing == http::Framing::Chunked) != again.chunked() ||
        (h.framing == http::Framing::Length && again.content_length() != h.content_length)) {
        fail(("the client's head says something else: " + out).c_str(), input);
    }

    // The body in small windows; never more than the length said.
    auto rest = input.substr(used);
    char window[64];
    std::uint64_t body = 0;
    while (!rp.is_done() && !rest.empty()) {
        rp.set_window(window, sizeof window);
        const auto n = rp.put(boost::asio::buffer(rest.data(), rest.size()), ec);
        body += sizeof window - rp.window_left();
        if (ec == boost::beast::http::error::need_buffer) {
            ec = {};
        } else if (ec) {
            break;
        }
        if (n == 0 && rp.window_left() == sizeof window) {
            break;
        }
        rest.remove_prefix(n);
    }
    if (auto len = rp.content_length(); len && body > *len) {
        fail("more body than Content-Length declared", input);
    }
    return 0;
}
