#include "proxy/net/response_parser.hpp"

#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstring>

namespace bgs::net {

namespace bh = boost::beast::http;

void ResponseFields::clear() {
    text_.clear();
    entries_.clear();
    fields_.clear();
}

void ResponseFields::add(bh::field id, std::string_view name, std::string_view value) {
    const auto name_at = static_cast<std::uint32_t>(text_.size());
    text_.append(name);
    const auto value_at = static_cast<std::uint32_t>(text_.size());
    text_.append(value);
    entries_.push_back({id, name_at, static_cast<std::uint32_t>(name.size()), value_at,
                        static_cast<std::uint32_t>(value.size())});
}

void ResponseFields::seal() {
    fields_.clear();
    const std::string_view text = text_;
    for (const auto& e : entries_) {
        fields_.push_back(
            {e.id, text.substr(e.name_at, e.name_len), text.substr(e.value_at, e.value_len)});
    }
}

std::size_t ResponseFields::count(bh::field id) const {
    return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                  [id](const Entry& e) { return e.id == id; }));
}

ResponseParser::ResponseParser(ResponseFields& fields) : fields_(fields) {
    fields_.clear();
}

void ResponseParser::on_request_impl(bh::verb, string_view, string_view, int, error_code& ec) {
    ec = bh::error::bad_method;  // a response parser never sees a request line
}

void ResponseParser::on_response_impl(int code, string_view reason, int version, error_code&) {
    status_ = static_cast<unsigned>(code);
    version_ = static_cast<unsigned>(version);
    reason_.assign(reason.data(), reason.size());
}

void ResponseParser::on_field_impl(bh::field name, string_view name_string, string_view value,
                                   error_code&) {
    fields_.add(name, {name_string.data(), name_string.size()}, {value.data(), value.size()});
}

void ResponseParser::on_header_impl(error_code&) {
    fields_.seal();
}

std::size_t ResponseParser::on_body_impl(string_view body, error_code& ec) {
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

std::size_t ResponseParser::on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) {
    return on_body_impl(body, ec);
}

}  // namespace bgs::net
