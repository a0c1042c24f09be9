#include "proxy/net/http_io.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

namespace bgs::net {
namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

error_code ignore_need_buffer(error_code ec) {
    return ec == http::error::need_buffer ? error_code{} : ec;
}

}  // namespace

Task<error_code> read_header(Stream& s, beast::flat_buffer& buf, RequestParser& p) {
    auto [ec, n] = co_await http::async_read_header(s, buf, p, kNoThrow);
    co_return ec;
}

Task<error_code> read_header(Stream& s, beast::flat_buffer& buf, ResponseParser& p) {
    auto [ec, n] = co_await http::async_read_header(s, buf, p, kNoThrow);
    co_return ec;
}

Task<error_code> read_body(Stream& s, beast::flat_buffer& buf, RequestParser& p) {
    auto [ec, n] = co_await http::async_read_some(s, buf, p, kNoThrow);
    co_return ignore_need_buffer(ec);
}

Task<error_code> read_body(Stream& s, beast::flat_buffer& buf, ResponseParser& p) {
    auto [ec, n] = co_await http::async_read_some(s, buf, p, kNoThrow);
    co_return ignore_need_buffer(ec);
}

Task<error_code> write_all(Stream& s, asio::const_buffer data) {
    auto [ec, n] = co_await asio::async_write(s, data, kNoThrow);
    co_return ec;
}

Task<error_code> write_all(Stream& s, const std::array<asio::const_buffer, 5>& data) {
    auto [ec, n] = co_await asio::async_write(s, data, kNoThrow);
    co_return ec;
}

Task<std::pair<error_code, std::size_t>> read_some(Stream& s, asio::mutable_buffer into) {
    auto [ec, n] = co_await s.async_read_some(into, kNoThrow);
    co_return std::pair{ec, n};
}

Task<error_code> connect(Stream& s, const tcp::endpoint& ep) {
    auto [ec] = co_await s.async_connect(ep, kNoThrow);
    co_return ec;
}

}  // namespace bgs::net
