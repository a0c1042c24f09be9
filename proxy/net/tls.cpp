#include "proxy/net/tls.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string_view>

namespace bgs::net::tls {
namespace {

// Mozilla's "intermediate" configuration for TLS 1.2: forward secrecy and
// AEAD only (TLS 1.3's suites are all of that kind and stay OpenSSL's).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

constexpr std::string_view kHttp11 = "http/1.1";

// ALPN: http/1.1 when the client offers it; otherwise no protocol is named
// and the handshake goes on (a client that offers only h2 still speaks 1.1).
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
    for (unsigned i = 0; i < inlen;) {
        const unsigned len = in[i];
        if (i + 1 + len > inlen) {
            break;
        }
        if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == kHttp11) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(len);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

// Session ticket keys, the process's own: made at random, replaced every
// kTicketKeyLife (when a handshake notices), the one before still accepted
// (and its tickets renewed), so a ticket lives at most two periods and no key
// lives for ever. Any worker thread: under a mutex (one lock per ticket made
// or read, a handshake's cost is far larger).
constexpr auto kTicketKeyLife = std::chrono::hours(12);

struct TicketKey {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

class TicketKeys {
  public:
    static TicketKeys& get() {
        static TicketKeys keys;
        return keys;
    }
    // The key to make a ticket with.
    TicketKey current() {
        std::lock_guard lock(mutex_);
        rotate_if_due();
        return current_;
    }
    // The key named `name`, and whether it is the current one.
    std::optional<std::pair<TicketKey, bool>> find(const unsigned char* name) {
        std::lock_guard lock(mutex_);
        rotate_if_due();
        if (std::memcmp(name, current_.name, sizeof current_.name) == 0) {
            return std::pair{current_, true};
        }
        if (previous_ && std::memcmp(name, previous_->name, sizeof previous_->name) == 0) {
            return std::pair{*previous_, false};
        }
        return std::nullopt;
    }

  private:
    TicketKeys() { current_ = fresh(); }
    static TicketKey fresh() {
        TicketKey k{};
        RAND_bytes(k.name, sizeof k.name);
        RAND_bytes(k.aes, sizeof k.aes);
        RAND_bytes(k.hmac, sizeof k.hmac);
        return k;
    }
    void rotate_if_due() {
        const auto now = std::chrono::steady_clock::now();
        if (now - made_ >= kTicketKeyLife) {
            previous_ = current_;
            current_ = fresh();
            made_ = now;
        }
    }
    std::mutex mutex_;
    TicketKey current_{};
    std::optional<TicketKey> previous_;
    std::chrono::steady_clock::time_point made_ = std::chrono::steady_clock::now();
};

int ticket_key_cb(SSL*, unsigned char name[16], unsigned char iv[16], EVP_CIPHER_CTX* cipher,
                  EVP_MAC_CTX* mac, int encrypt) {
    auto& keys = TicketKeys::get();
    TicketKey key{};
    int result = 1;
    if (encrypt == 1) {
        key = keys.current();
        if (RAND_bytes(iv, 16) != 1) {
            return -1;
        }
        std::memcpy(name, key.name, sizeof key.name);
        if (EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) != 1) {
            return -1;
        }
    } else {
        const auto found = keys.find(name);
        if (!found) {
            return 0;  // an unknown (expired) key: a full handshake
        }
        key = found->first;
        result = found->second ? 1 : 2;  // 2: valid, and renewed with the current key
        if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, key.aes, iv) != 1) {
            return -1;
        }
    }
    char digest[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac, sizeof key.hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(mac, params) != 1) {
        return -1;
    }
    return result;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// The certificate's DNS names (subjectAltName), then its subject CN.
std::vector<std::string> names_of(X509* x) {
    std::vector<std::string> out;
    auto* sans =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
    if (sans != nullptr) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
            if (n->type == GEN_DNS) {
                const auto* s = n->d.dNSName;
                out.push_back(
                    lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                           static_cast<std::size_t>(ASN1_STRING_length(s)))));
            }
        }
        GENERAL_NAMES_free(sans);
    }
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0) {
        out.push_back(lower(cn));
    }
    return out;
}

std::chrono::system_clock::time_point not_after(X509* x) {
    std::tm tm{};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
        return {};
    }
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// "*.example.com" covers one label: a.example.com, not example.com nor a.b.example.com.
bool covers(std::string_view pattern, std::string_view name) {
    if (pattern == name) {
        return true;
    }
    if (!pattern.starts_with("*.")) {
        return false;
    }
    const auto dot = name.find('.');
    return dot != std::string_view::npos && dot > 0 && name.substr(dot + 1) == pattern.substr(2);
}

}  // namespace

std::string last_error() {
    std::string out;
    for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        out = buf;  // the last one is the most specific
    }
    return out.empty() ? std::string("unknown TLS error") : out;
}

ServerContext::~ServerContext() {
    for (auto* ctx : contexts_) {
        SSL_CTX_free(ctx);
    }
}

std::variant<std::shared_ptr<ServerContext>, std::vector<std::string>> ServerContext::load(
    const std::vector<CertificateFiles>& certificates, bool tls13_only) {
    std::shared_ptr<ServerContext> self(new ServerContext());
    std::vector<std::string> problems;
    ERR_clear_error();
    for (const auto& files : certificates) {
        SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == nullptr) {
            problems.push_back("cannot make a TLS context: " + last_error());
            continue;
        }
        SSL_CTX_set_min_proto_version(ctx, tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
        SSL_CTX_set_cipher_list(ctx, kTls12Ciphers);
        SSL_CTX_set_options(
            ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
        SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
        SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        static const unsigned char kSessionContext[] = "bgswitch";
        SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
        self->contexts_.push_back(ctx);
        if (SSL_CTX_use_certificate_chain_file(ctx, files.cert.c_str()) != 1) {
            problems.push_back(files.cert + ": cannot load the certificate: " + last_error());
            continue;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
            const auto why = last_error();
            problems.push_back(why.find("mismatch") != std::string::npos
                                   ? files.key + ": does not match the certificate " + files.cert
                                   : files.key + ": cannot load the key: " + why);
            continue;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            ERR_clear_error();
            problems.push_back(files.key + ": does not match the certificate " + files.cert);
            continue;
        }
        X509* x = SSL_CTX_get0_certificate(ctx);
        auto names = names_of(x);
        self->infos_.push_back({names.empty() ? std::string("?") : names.front(), not_after(x)});
        self->names_.push_back(std::move(names));
    }
    if (certificates.empty()) {
        problems.push_back("no certificate");
    }
    if (!problems.empty()) {
        return problems;
    }
    SSL_CTX_set_tlsext_servername_callback(self->contexts_.front(), on_server_name);
    SSL_CTX_set_tlsext_servername_arg(self->contexts_.front(), self.get());
    return self;
}

SSL* ServerContext::accept(int fd) const {
    SSL* ssl = SSL_new(contexts_.front());
    if (ssl == nullptr) {
        return nullptr;
    }
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
    return ssl;
}

ClientContext::~ClientContext() {
    SSL_CTX_free(ctx_);
}

std::variant<std::shared_ptr<ClientContext>, std::vector<std::string>> ClientContext::load(
    const Settings& settings) {
    std::shared_ptr<ClientContext> self(new ClientContext());
    std::vector<std::string> problems;
    ERR_clear_error();
    self->ctx_ = SSL_CTX_new(TLS_client_method());
    if (self->ctx_ == nullptr) {
        return std::vector<std::string>{"cannot make a TLS context: " + last_error()};
    }
    SSL_CTX* ctx = self->ctx_;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, kTls12Ciphers);
    SSL_CTX_set_options(
        ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char kAlpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1);
    self->verify_ = settings.verify;
    if (settings.verify) {
        const bool loaded = settings.ca.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                                : SSL_CTX_load_verify_locations(
                                                      ctx, settings.ca.c_str(), nullptr) == 1;
        if (!loaded) {
            problems.push_back(
                (settings.ca.empty() ? std::string("the system's trust store") : settings.ca) +
                ": cannot load the CA certificates: " + last_error());
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    }
    if (!settings.cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, settings.cert.c_str()) != 1) {
            problems.push_back(settings.cert +
                               ": cannot load the client certificate: " + last_error());
        } else if (SSL_CTX_use_PrivateKey_file(ctx, settings.key.c_str(), SSL_FILETYPE_PEM) != 1) {
            const auto why = last_error();
            problems.push_back(why.find("mismatch") != std::string::npos
                                   ? settings.key + ": does not match the certificate " +
                                         settings.cert
                                   : settings.key + ": cannot load the key: " + why);
        }
    }
    if (!problems.empty()) {
        return problems;
    }
    return self;
}

SSL* ClientContext::connect(int fd, const std::string& name) const {
    SSL* ssl = SSL_new(ctx_);
    if (ssl == nullptr) {
        return nullptr;
    }
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    const bool is_ip = name.find_first_not_of("0123456789.") == std::string::npos ||
                       name.find(':') != std::string::npos;
    if (!is_ip) {
        SSL_set_tlsext_host_name(ssl, name.c_str());
    }
    if (verify_) {
        if (is_ip) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
        } else {
            SSL_set1_host(ssl, name.c_str());
        }
    }
    return ssl;
}

std::string ClientContext::why_failed(SSL* ssl, const std::string& fallback) {
    if (ssl != nullptr) {
        if (const auto v = SSL_get_verify_result(ssl); v != X509_V_OK) {
            ERR_clear_error();
            return std::string("certificate verification failed: ") +
                   X509_verify_cert_error_string(v);
        }
    }
    if (ERR_peek_error() != 0) {
        return last_error();
    }
    return fallback;
}

SSL_CTX* ServerContext::for_name(std::string_view name) const {
    const auto wanted = lower(name);
    for (std::size_t i = 0; i < names_.size(); ++i) {
        for (const auto& n : names_[i]) {
            if (covers(n, wanted)) {
                return contexts_[i];
            }
        }
    }
    return contexts_.front();
}

int ServerContext::on_server_name(SSL* ssl, int*, void* arg) {
    const auto* self = static_cast<const ServerContext*>(arg);
    if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
        SSL_CTX* ctx = self->for_name(name);
        if (ctx != SSL_get_SSL_CTX(ssl)) {
            SSL_set_SSL_CTX(ssl, ctx);
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

}  // namespace bgs::net::tls
