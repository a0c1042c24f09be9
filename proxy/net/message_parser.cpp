#include "proxy/net/message_parser.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstring>

namespace bgs::net {

namespace bh = boost::beast::http;

// Room for a typical header from the start, so that a new connection's first
// message does not grow the storage step by step.
constexpr std::size_t kTextRoom = 1000;
constexpr std::size_t kFieldRoom = 24;

void FlatFields::reserve_first() {
    if (text_.capacity() < kTextRoom) {
        text_.reserve(kTextRoom);
        entries_.reserve(kFieldRoom);
    }
}

void FlatFields::clear() {
    text_.clear();
    entries_.clear();
}

FlatFields::Span FlatFields::keep(std::string_view s) {
    reserve_first();
    const Span span{static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(s.size())};
    text_.append(s);
    return span;
}

void FlatFields::add(bh::field id, std::string_view name, std::string_view value) {
    reserve_first();
    const auto name_at = static_cast<std::uint32_t>(text_.size());
    text_.append(name);
    const auto value_at = static_cast<std::uint32_t>(text_.size());
    text_.append(value);
    entries_.push_back({id, name_at, static_cast<std::uint32_t>(name.size()), value_at,
                        static_cast<std::uint32_t>(value.size())});
}

void FlatFields::insert(std::string_view name, std::string_view value) {
    add(bh::string_to_field({name.data(), name.size()}), name, value);
}

std::size_t FlatFields::count(bh::field id) const {
    return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                  [id](const Entry& e) { return e.id == id; }));
}

std::optional<FlatFields::Field> FlatFields::find(bh::field id) const {
    for (const auto& e : entries_) {
        if (e.id == id) {
            return view(e);
        }
    }
    return std::nullopt;
}

std::optional<FlatFields::Field> FlatFields::find(std::string_view name) const {
    const boost::beast::string_view wanted(name.data(), name.size());
    for (const auto& e : entries_) {
        if (e.name_len == name.size() &&
            boost::beast::iequals({text_.data() + e.name_at, e.name_len}, wanted)) {
            return view(e);
        }
    }
    return std::nullopt;
}

template <bool isRequest>
std::size_t FlatParser<isRequest>::on_body_impl(string_view body, error_code& ec) {
    if (window_ == nullptr) {
        ec = bh::error::need_buffer;
        return 0;
    }
    const auto n = std::min(body.size(), window_left_);
    std::memcpy(window_, body.data(), n);
    window_ += n;
    window_left_ -= n;
    if (n < body.size()) {
        ec = bh::error::need_buffer;
    }
    return n;
}

template class FlatParser<true>;
template class FlatParser<false>;

void RequestParser::on_request_impl(bh::verb method, string_view method_str, string_view target,
                                    int version, error_code&) {
    start_line_done_ = true;
    method_ = method;
    method_text_ = fields_.keep({method_str.data(), method_str.size()});
    target_ = fields_.keep({target.data(), target.size()});
    version_ = static_cast<unsigned>(version);
}

void RequestParser::on_response_impl(int, string_view, int, error_code& ec) {
    ec = bh::error::bad_version;  // a request parser never sees a status line
}

void ResponseParser::on_request_impl(bh::verb, string_view, string_view, int, error_code& ec) {
    ec = bh::error::bad_method;  // a response parser never sees a request line
}

void ResponseParser::on_response_impl(int code, string_view reason, int version, error_code& ec) {
    // RFC 9110 §15: three digits, classes 1 to 5. "034" or 600 would be
    // passed on as something no client can read.
    if (code < 100 || code > 599) {
        ec = bh::error::bad_status;
        return;
    }
    start_line_done_ = true;
    status_ = static_cast<unsigned>(code);
    version_ = static_cast<unsigned>(version);
    reason_ = fields_.keep({reason.data(), reason.size()});
}

}  // namespace bgs::net
