#include "proxy/net/error_class.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace bgs::net {

namespace asio = boost::asio;
namespace http = boost::beast::http;

ErrorKind classify(const boost::system::error_code& ec) {
    if (ec == boost::beast::error::timeout || ec == asio::error::timed_out) {
        return ErrorKind::Timeout;
    }
    if (ec == asio::error::connection_refused || ec == asio::error::host_unreachable ||
        ec == asio::error::network_unreachable) {
        return ErrorKind::Refused;
    }
    if (ec == http::error::header_limit || ec == http::error::body_limit ||
        ec == http::error::buffer_overflow) {
        return ErrorKind::Limit;
    }
    if (ec == asio::error::eof || ec == http::error::end_of_stream ||
        ec == http::error::partial_message || ec == asio::error::connection_reset ||
        ec == asio::error::broken_pipe || ec == asio::error::connection_aborted ||
        ec == asio::error::operation_aborted || ec == asio::error::not_connected ||
        ec == asio::error::bad_descriptor) {
        return ErrorKind::Reset;
    }
    return ErrorKind::Protocol;
}

bool is_benign_disconnect(const boost::system::error_code& ec) {
    return ec == asio::error::eof || ec == http::error::end_of_stream ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::error::operation_aborted || ec == asio::error::not_connected ||
           ec == asio::error::bad_descriptor;
}

}  // namespace bgs::net
