// The parser for upstream responses. Beast's http::parser stores every field in
// a node of its own, kept in a case-insensitive tree, which made storing the
// upstream's header cost more than everything else about a keep-alive request.
// The proxy only forwards the fields in order and looks at a few of them, so
// this parser keeps them in one string and a vector that are reused from one
// response to the next; framing, limits and validation stay Beast's.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bgs::net {

/// A response header's fields in arrival order. Owned by the session and
/// reused, so a steady stream of responses allocates nothing.
class ResponseFields {
  public:
    struct Field {
        boost::beast::http::field id;
        std::string_view name_text;
        std::string_view value_text;
        boost::beast::http::field name() const { return id; }
        std::string_view name_string() const { return name_text; }
        std::string_view value() const { return value_text; }
    };

    void clear();
    void add(boost::beast::http::field id, std::string_view name, std::string_view value);
    /// Makes the fields visible (their text has stopped moving).
    void seal();

    std::vector<Field>::const_iterator begin() const { return fields_.begin(); }
    std::vector<Field>::const_iterator end() const { return fields_.end(); }
    std::size_t count(boost::beast::http::field id) const;

  private:
    struct Entry {
        boost::beast::http::field id;
        std::uint32_t name_at, name_len, value_at, value_len;
    };
    std::string text_;
    std::vector<Entry> entries_;
    std::vector<Field> fields_;
};

class ResponseParser : public boost::beast::http::basic_parser<false> {
  public:
    /// Fills `fields` (cleared here), which must outlive the parser.
    explicit ResponseParser(ResponseFields& fields);

    unsigned status() const { return status_; }
    unsigned version() const { return version_; }
    std::string_view reason() const { return reason_; }
    const ResponseFields& fields() const { return fields_; }

    /// Where the next body bytes go (like http::buffer_body): put() stops with
    /// need_buffer once `size` bytes are placed.
    void set_window(char* data, std::size_t size) {
        window_ = data;
        window_left_ = size;
    }
    std::size_t window_left() const { return window_left_; }

  private:
    using string_view = boost::beast::string_view;
    using error_code = boost::system::error_code;

    void on_request_impl(boost::beast::http::verb, string_view, string_view, int,
                         error_code& ec) override;
    void on_response_impl(int code, string_view reason, int version, error_code& ec) override;
    void on_field_impl(boost::beast::http::field name, string_view name_string, string_view value,
                       error_code& ec) override;
    void on_header_impl(error_code& ec) override;
    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(string_view body, error_code& ec) override;
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override;
    void on_finish_impl(error_code&) override {}

    ResponseFields& fields_;
    std::string reason_;
    unsigned status_ = 0;
    unsigned version_ = 11;
    char* window_ = nullptr;
    std::size_t window_left_ = 0;
};

}  // namespace bgs::net
