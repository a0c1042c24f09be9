#include "proxy/net/message_parser.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <cstring>

namespace bgs::net {

namespace bh = boost::beast::http;

void FlatFields::clear() {
    text_.clear();
    entries_.clear();
    fields_.clear();
}

FlatFields::Span FlatFields::keep(std::string_view s) {
    const Span span{static_cast<std::uint32_t>(text_.size()), static_cast<std::uint32_t>(s.size())};
    text_.append(s);
    return span;
}

void FlatFields::add(bh::field id, std::string_view name, std::string_view value) {
    const auto name_at = static_cast<std::uint32_t>(text_.size());
    text_.append(name);
    const auto value_at = static_cast<std::uint32_t>(text_.size());
    text_.append(value);
    entries_.push_back({id, name_at, static_cast<std::uint32_t>(name.size()), value_at,
                        static_cast<std::uint32_t>(value.size())});
}

void FlatFields::seal() {
    fields_.clear();
    const std::string_view text = text_;
    for (const auto& e : entries_) {
        fields_.push_back(
            {e.id, text.substr(e.name_at, e.name_len), text.substr(e.value_at, e.value_len)});
    }
}

void FlatFields::insert(std::string_view name, std::string_view value) {
    add(bh::string_to_field({name.data(), name.size()}), name, value);
    seal();
}

std::size_t FlatFields::count(bh::field id) const {
    return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                  [id](const Entry& e) { return e.id == id; }));
}

const FlatFields::Field* FlatFields::find(bh::field id) const {
    auto it = std::find_if(fields_.begin(), fields_.end(),
                           [id](const Field& f) { return f.id == id; });
    return it == fields_.end() ? nullptr : &*it;
}

const FlatFields::Field* FlatFields::find(std::string_view name) const {
    auto it = std::find_if(fields_.begin(), fields_.end(), [name](const Field& f) {
        return boost::beast::iequals({f.name_text.data(), f.name_text.size()},
                                     {name.data(), name.size()});
    });
    return it == fields_.end() ? nullptr : &*it;
}

template <bool isRequest>
std::size_t WindowedParser<isRequest>::on_body_impl(string_view body, error_code& ec) {
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

template class WindowedParser<true>;
template class WindowedParser<false>;

RequestParser::RequestParser(FlatFields& fields) : fields_(fields) {
    fields_.clear();
}

void RequestParser::on_request_impl(bh::verb method, string_view method_str, string_view target,
                                    int version, error_code&) {
    method_ = method;
    method_text_ = fields_.keep({method_str.data(), method_str.size()});
    target_ = fields_.keep({target.data(), target.size()});
    version_ = static_cast<unsigned>(version);
}

void RequestParser::on_response_impl(int, string_view, int, error_code& ec) {
    ec = bh::error::bad_version;  // a request parser never sees a status line
}

void RequestParser::on_field_impl(bh::field name, string_view name_string, string_view value,
                                  error_code&) {
    fields_.add(name, {name_string.data(), name_string.size()}, {value.data(), value.size()});
}

void RequestParser::on_header_impl(error_code&) {
    fields_.seal();
}

ResponseParser::ResponseParser(FlatFields& fields) : fields_(fields) {
    fields_.clear();
}

void ResponseParser::on_request_impl(bh::verb, string_view, string_view, int, error_code& ec) {
    ec = bh::error::bad_method;  // a response parser never sees a request line
}

void ResponseParser::on_response_impl(int code, string_view reason, int version, error_code&) {
    status_ = static_cast<unsigned>(code);
    version_ = static_cast<unsigned>(version);
    reason_ = fields_.keep({reason.data(), reason.size()});
}

void ResponseParser::on_field_impl(bh::field name, string_view name_string, string_view value,
                                   error_code&) {
    fields_.add(name, {name_string.data(), name_string.size()}, {value.data(), value.size()});
}

void ResponseParser::on_header_impl(error_code&) {
    fields_.seal();
}

}  // namespace bgs::net
