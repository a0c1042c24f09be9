// TLS with OpenSSL directly (SPEC section 8): a listener's contexts, one per
// certificate, chosen by SNI (the first is the default), with secure
// defaults: TLS 1.2 or later, AEAD ciphers only, the client's cipher
// preference, ALPN http/1.1, session tickets under keys rotated every 12
// hours, and OpenSSL's buffers given back once a connection goes idle
// (Stream::release_tls_buffers; not after every record, which would cost an
// allocation per read and write). The bytes go through net::Stream, which
// drives an SSL object over its non-blocking socket; no Asio template is
// involved.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

struct ssl_ctx_st;
struct ssl_st;
using SSL_CTX = ssl_ctx_st;
using SSL = ssl_st;

namespace bgs::net::tls {

struct CertificateFiles {
    std::string cert;  // PEM: the certificate, then its chain
    std::string key;   // PEM private key

    bool operator==(const CertificateFiles&) const = default;
};

/// What the metrics and the log say of a loaded certificate.
struct CertificateInfo {
    std::string name;  // its first DNS name, else its subject CN
    std::chrono::system_clock::time_point not_after;
};

/// One listener's TLS. Made on the control thread (startup, reload), shared
/// read-only by the workers' sessions; the counters are atomics.
class ServerContext {
  public:
    ~ServerContext();
    ServerContext(const ServerContext&) = delete;
    ServerContext& operator=(const ServerContext&) = delete;

    /// Loads every certificate and key and checks each pair matches; every
    /// problem in words on failure.
    static std::variant<std::shared_ptr<ServerContext>, std::vector<std::string>> load(
        const std::vector<CertificateFiles>& certificates, bool tls13_only);

    /// A new server-side connection state on `fd` (owned by the caller).
    SSL* accept(int fd) const;

    const std::vector<CertificateInfo>& certificates() const { return infos_; }

    // Counted by the sessions (bgswitch_tls_handshakes_total).
    mutable std::atomic<std::uint64_t> handshakes_ok{0};
    mutable std::atomic<std::uint64_t> handshakes_failed{0};

  private:
    ServerContext() = default;
    static int on_server_name(SSL* ssl, int* alert, void* self);
    SSL_CTX* for_name(std::string_view name) const;

    std::vector<SSL_CTX*> contexts_;               // one per certificate; [0] is the default
    std::vector<std::vector<std::string>> names_;  // each certificate's DNS names and CN
    std::vector<CertificateInfo> infos_;
};

/// TLS to one color's upstreams: its CA (or the system's trust store), whether
/// to verify, and a client certificate. Shared read-only by every worker.
class ClientContext {
  public:
    struct Settings {
        std::string ca;  // PEM bundle; empty: the system's trust store
        bool verify = true;
        std::string cert;  // client certificate (optional)
        std::string key;
    };
    ~ClientContext();
    ClientContext(const ClientContext&) = delete;
    ClientContext& operator=(const ClientContext&) = delete;

    /// Every problem in words on failure (a file that does not load, a key
    /// that does not match).
    static std::variant<std::shared_ptr<ClientContext>, std::vector<std::string>> load(
        const Settings& settings);

    /// A client connection state on `fd` (owned by the caller) for `name`:
    /// sent as SNI unless it is an IP address, and the name the server's
    /// certificate must carry when verifying.
    SSL* connect(int fd, const std::string& name) const;

    /// Why a handshake on `ssl` failed, in words (the verification's reason
    /// when that is what failed).
    static std::string why_failed(SSL* ssl, const std::string& fallback);

  private:
    ClientContext() = default;
    SSL_CTX* ctx_ = nullptr;
    bool verify_ = true;
};

/// The reason of the last OpenSSL failure on this thread, in words (and the
/// error queue cleared).
std::string last_error();

}  // namespace bgs::net::tls
