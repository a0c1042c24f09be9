// The data path's HTTP/1 parsers. Beast's http::parser stores every field in a
// node of its own, kept in a case-insensitive tree, which made storing a
// header cost more than everything else about a keep-alive request. The proxy
// only forwards fields in order and looks at a few of them, so these parsers
// keep a header in one string and a vector that the session reuses from one
// message to the next; framing, limits and validation stay Beast's.
// Owner's thread only.
#pragma once

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bgs::net {

/// A header's fields in arrival order, plus the text of its start line. Owned
/// by a session and reused, so a steady stream of messages allocates nothing;
/// a new connection's first header costs two allocations.
class FlatFields {
  public:
    struct Field {
        boost::beast::http::field id;
        std::string_view name_text;
        std::string_view value_text;
        boost::beast::http::field name() const { return id; }
        std::string_view name_string() const { return name_text; }
        std::string_view value() const { return value_text; }
    };
    /// Where a piece of start-line text is kept (see keep()).
    struct Span {
        std::uint32_t at = 0, len = 0;
    };

  private:
    struct Entry {
        boost::beast::http::field id;
        std::uint32_t name_at, name_len, value_at, value_len;
    };

  public:
    /// Walks the fields, each a view into the storage: valid until the next
    /// clear(), add(), keep() or insert().
    class Iterator {
      public:
        using iterator_category = std::forward_iterator_tag;
        using value_type = Field;
        using difference_type = std::ptrdiff_t;
        using pointer = void;
        using reference = Field;

        Iterator() = default;
        Iterator(const FlatFields* owner, std::vector<Entry>::const_iterator at)
            : owner_(owner), at_(at) {}
        Field operator*() const { return owner_->view(*at_); }
        Iterator& operator++() {
            ++at_;
            return *this;
        }
        Iterator operator++(int) {
            auto before = *this;
            ++at_;
            return before;
        }
        bool operator==(const Iterator& o) const { return at_ == o.at_; }

      private:
        const FlatFields* owner_ = nullptr;
        std::vector<Entry>::const_iterator at_;
    };

    void clear();
    /// Keeps a copy of `s` (a method, target or reason) with the fields' text.
    Span keep(std::string_view s);
    std::string_view kept(Span s) const { return std::string_view(text_).substr(s.at, s.len); }
    /// Adds a field.
    void add(boost::beast::http::field id, std::string_view name, std::string_view value);
    /// Adds a field by name (for building fields by hand).
    void insert(std::string_view name, std::string_view value);

    Iterator begin() const { return {this, entries_.begin()}; }
    Iterator end() const { return {this, entries_.end()}; }
    std::size_t size() const { return entries_.size(); }
    /// Bytes of storage held, used or not.
    std::size_t capacity_bytes() const {
        return text_.capacity() + entries_.capacity() * sizeof(Entry);
    }
    std::size_t count(boost::beast::http::field id) const;
    /// The first field `id`, if any.
    std::optional<Field> find(boost::beast::http::field id) const;
    /// The first field named `name` (case-insensitive), if any.
    std::optional<Field> find(std::string_view name) const;

  private:
    Field view(const Entry& e) const {
        const std::string_view text = text_;
        return {e.id, text.substr(e.name_at, e.name_len), text.substr(e.value_at, e.value_len)};
    }
    void reserve_first();

    std::string text_;
    std::vector<Entry> entries_;
};

/// What both parsers share: fields go to FlatFields, and the body is
/// delivered like http::buffer_body, into a window the caller sets before each
/// read. Single use; the fields' storage outlives the parser.
template <bool isRequest>
class FlatParser : public boost::beast::http::basic_parser<isRequest> {
  public:
    /// Fills `fields` (cleared here), which must outlive the parser.
    explicit FlatParser(FlatFields& fields) : fields_(fields) { fields_.clear(); }

    const FlatFields& fields() const { return fields_; }

    /// Where the next body bytes go: put() stops with need_buffer once the
    /// window is full.
    void set_window(char* data, std::size_t size) {
        window_ = data;
        window_left_ = size;
    }
    std::size_t window_left() const { return window_left_; }

    /// The most a body's framing may buffer: an unfinished chunk-size line
    /// with its extensions gets kChunkLineLimit of it, the trailer section all
    /// of it. Beast bounds neither.
    void framing_limit(std::size_t n) { framing_limit_ = n; }
    std::size_t framing_limit() const { return framing_limit_; }
    static constexpr std::size_t kChunkLineLimit = 4096;

    /// True once the start line was parsed.
    bool start_line_done() const { return start_line_done_; }

  protected:
    using string_view = boost::beast::string_view;
    using error_code = boost::system::error_code;

    void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
    std::size_t on_body_impl(string_view body, error_code& ec) override;
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override {
        return on_body_impl(body, ec);
    }
    void on_finish_impl(error_code&) override {}
    void on_field_impl(boost::beast::http::field name, string_view name_string, string_view value,
                       error_code&) override {
        fields_.add(name, {name_string.data(), name_string.size()}, {value.data(), value.size()});
    }
    void on_header_impl(error_code&) override {}

    FlatFields& fields_;

    bool start_line_done_ = false;

  private:
    char* window_ = nullptr;
    std::size_t window_left_ = 0;
    std::size_t framing_limit_ = 16 * 1024;
};

/// A client's request.
class RequestParser : public FlatParser<true> {
  public:
    using FlatParser::FlatParser;

    boost::beast::http::verb method() const { return method_; }
    std::string_view method_string() const { return fields_.kept(method_text_); }
    std::string_view target() const { return fields_.kept(target_); }
    unsigned version() const { return version_; }

  private:
    void on_request_impl(boost::beast::http::verb method, string_view method_str,
                         string_view target, int version, error_code& ec) override;
    void on_response_impl(int, string_view, int, error_code& ec) override;

    FlatFields::Span method_text_;
    FlatFields::Span target_;
    boost::beast::http::verb method_ = boost::beast::http::verb::unknown;
    unsigned version_ = 11;
};

/// An upstream's response.
class ResponseParser : public FlatParser<false> {
  public:
    using FlatParser::FlatParser;

    unsigned status() const { return status_; }
    unsigned version() const { return version_; }
    std::string_view reason() const { return fields_.kept(reason_); }

  private:
    void on_request_impl(boost::beast::http::verb, string_view, string_view, int,
                         error_code& ec) override;
    void on_response_impl(int code, string_view reason, int version, error_code& ec) override;

    FlatFields::Span reason_;
    unsigned status_ = 0;
    unsigned version_ = 11;
};

}  // namespace bgs::net
