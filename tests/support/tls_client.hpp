// A blocking TLS client for tests (OpenSSL over a test Socket): SNI, a
// version ceiling, the server's certificate name, and HTTP/1.1 exchanges.
#pragma once

#include "tests/support/test_net.hpp"

#include <memory>
#include <string>

struct ssl_st;
struct ssl_ctx_st;

namespace bgs::test {

class TlsClient {
  public:
    struct Options {
        std::string server_name;            // SNI; none when empty
        int max_version = 0;                // e.g. TLS1_2_VERSION; 0: the newest
        std::string alpn;                   // offered protocol, e.g. "http/1.1"
        const TlsClient* resume = nullptr;  // offer that client's session
    };
    /// Connects to 127.0.0.1:`port` and shakes hands (certificates are not
    /// verified: the tests look at which one came). Check ok().
    TlsClient(std::uint16_t port, const Options& options);
    ~TlsClient();
    TlsClient(const TlsClient&) = delete;
    TlsClient& operator=(const TlsClient&) = delete;

    bool ok() const { return ok_; }
    const std::string& error() const { return error_; }
    /// The server certificate's subject CN.
    std::string peer_name() const;
    /// The protocol ALPN chose ("" for none).
    std::string alpn() const;
    /// The handshake resumed the offered session.
    bool resumed() const;

    void send(const std::string& bytes);
    /// At least one byte, or "" at the end of the stream (close_notify or
    /// EOF); throws Timeout.
    std::string read_some(Ms timeout = 5s);
    /// True when the server ended TLS with close_notify.
    bool got_close_notify() const;
    /// One response with Content-Length (or read to the end): status and body.
    std::pair<int, std::string> exchange(const std::string& request, Ms timeout = 5s);

    Socket& socket() { return socket_; }

  private:
    Socket socket_;
    ssl_ctx_st* ctx_ = nullptr;
    ssl_st* ssl_ = nullptr;
    bool ok_ = false;
    std::string error_;
    std::string pending_;
};

}  // namespace bgs::test
