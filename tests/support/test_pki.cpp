#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace bgs::test {
namespace {

void run(const std::string& command) {
    if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
        throw std::runtime_error("failed: " + command);
    }
}

// A self-signed certificate for expired.test, valid from two days ago until
// yesterday.
void write_expired(const std::string& cert_path, const std::string& key_path) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -2 * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), -86400);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("expired.test"), -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_sign(x, key, EVP_sha256());
    FILE* f = std::fopen(cert_path.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key_path.c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

TestPki make() {
    TestPki p;
    p.dir = ::testing::TempDir() + "/bgswitch-pki-" + std::to_string(::getpid());
    std::filesystem::create_directories(p.dir);
    const auto at = [&](const char* name) { return p.dir + "/" + name; };
    p.ca = at("ca.pem");
    p.cert = at("server.pem");
    p.key = at("server.key");
    p.other_ca = at("other-ca.pem");
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    run("openssl req -x509" + ec + " -keyout " + at("ca.key") + " -out " + p.ca +
        " -days 2 -subj /CN=bgswitch-test-ca");
    run("openssl req -x509" + ec + " -keyout " + at("other-ca.key") + " -out " + p.other_ca +
        " -days 2 -subj /CN=bgswitch-other-ca");
    run("openssl req" + ec + " -keyout " + p.key + " -out " + at("server.csr") +
        " -subj /CN=localhost");
    std::ofstream(at("server.ext")) << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    run("openssl x509 -req -in " + at("server.csr") + " -CA " + p.ca + " -CAkey " + at("ca.key") +
        " -CAcreateserial -out " + p.cert + " -days 2 -extfile " + at("server.ext"));
    p.shop_cert = at("shop.pem");
    p.shop_key = at("shop.key");
    run("openssl req -x509" + ec + " -keyout " + p.shop_key + " -out " + p.shop_cert +
        " -days 2 -subj /CN=shop.test -addext subjectAltName=DNS:shop.test");
    p.api_cert = at("api.pem");
    p.api_key = at("api.key");
    run("openssl req -x509" + ec + " -keyout " + p.api_key + " -out " + p.api_cert +
        " -days 2 -subj /CN=api.test -addext subjectAltName=DNS:api.test,DNS:*.api.test");
    p.expired_cert = at("expired.pem");
    p.expired_key = at("expired.key");
    write_expired(p.expired_cert, p.expired_key);
    return p;
}

struct Cleanup {
    ~Cleanup() {
        if (!dir.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir, ec);
        }
    }
    std::string dir;
};

}  // namespace

const TestPki& TestPki::get() {
    static const TestPki pki = make();
    static Cleanup cleanup{pki.dir};
    return pki;
}

}  // namespace bgs::test
