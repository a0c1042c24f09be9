#include "tests/support/tls_client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <poll.h>
#include <sys/socket.h>

#include <cstring>

namespace bgs::test {
namespace {

std::string openssl_error() {
    char buf[256] = "unknown";
    if (const auto e = ERR_get_error(); e != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
    }
    ERR_clear_error();
    return buf;
}

}  // namespace

TlsClient::TlsClient(std::uint16_t port, const Options& options) : socket_(Socket::connect(port)) {
    // Every blocking OpenSSL call below is bounded.
    timeval tv{5, 0};
    ::setsockopt(socket_.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket_.fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (options.max_version != 0) {
        SSL_CTX_set_max_proto_version(ctx_, options.max_version);
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, socket_.fd());
    if (!options.server_name.empty()) {
        SSL_set_tlsext_host_name(ssl_, options.server_name.c_str());
    }
    if (!options.alpn.empty()) {
        std::string wire(1, static_cast<char>(options.alpn.size()));
        wire += options.alpn;
        SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
    }
    if (options.resume != nullptr) {
        if (SSL_SESSION* session = SSL_get1_session(options.resume->ssl_)) {
            SSL_set_session(ssl_, session);
            SSL_SESSION_free(session);
        }
    }
    ok_ = SSL_connect(ssl_) == 1;
    if (!ok_) {
        error_ = openssl_error();
    }
}

TlsClient::~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
}

std::string TlsClient::peer_name() const {
    X509* x = SSL_get1_peer_certificate(ssl_);
    if (x == nullptr) {
        return "";
    }
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    X509_free(x);
    return cn;
}

bool TlsClient::resumed() const {
    return SSL_session_reused(ssl_) == 1;
}

std::string TlsClient::alpn() const {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl_, &p, &len);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), len);
}

void TlsClient::send(const std::string& bytes) {
    std::size_t n = 0;
    if (SSL_write_ex(ssl_, bytes.data(), bytes.size(), &n) != 1 || n != bytes.size()) {
        throw std::runtime_error("TLS write failed: " + openssl_error());
    }
}

std::string TlsClient::read_some(Ms timeout) {
    if (!pending_.empty()) {
        return std::exchange(pending_, {});
    }
    if (SSL_pending(ssl_) == 0) {
        pollfd p{socket_.fd(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
            throw Timeout("TLS read timed out");
        }
    }
    char buf[16384];
    std::size_t n = 0;
    if (SSL_read_ex(ssl_, buf, sizeof buf, &n) == 1) {
        return std::string(buf, n);
    }
    ERR_clear_error();
    return "";
}

bool TlsClient::got_close_notify() const {
    return (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0;
}

std::pair<int, std::string> TlsClient::exchange(const std::string& request, Ms timeout) {
    send(request);
    std::string data;
    std::size_t head_end = std::string::npos;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
        const auto got = read_some(timeout);
        if (got.empty()) {
            throw std::runtime_error("TLS connection closed before a response");
        }
        data += got;
    }
    const auto head = data.substr(0, head_end);
    std::string body = data.substr(head_end + 4);
    const int status = std::atoi(head.c_str() + head.find(' ') + 1);
    std::size_t length = std::string::npos;
    for (std::size_t at = 0; (at = head.find("\r\n", at)) != std::string::npos;) {
        at += 2;
        if (strncasecmp(head.c_str() + at, "content-length:", 15) == 0) {
            length = std::strtoul(head.c_str() + at + 15, nullptr, 10);
        }
    }
    while (length == std::string::npos || body.size() < length) {
        const auto got = read_some(timeout);
        if (got.empty()) {
            break;
        }
        body += got;
    }
    if (length != std::string::npos && body.size() > length) {
        pending_ = body.substr(length);
        body.resize(length);
    }
    return {status, body};
}

}  // namespace bgs::test
