// Certificates made by the test (the openssl command, and the OpenSSL API for
// one whose dates the command cannot set): a CA and a certificate it signed
// for 127.0.0.1 and localhost, and self-signed listener certificates (ECDSA
// P-256). Files in a temporary directory of this process, removed with it.
#pragma once

#include <string>

namespace bgs::test {

struct TestPki {
    std::string dir;
    std::string ca;        // the CA's certificate (PEM)
    std::string cert;      // the server's certificate, signed by the CA
    std::string key;       // the server's key
    std::string other_ca;  // a CA that signed nothing here
    // Self-signed listener certificates: shop.test; api.test and *.api.test;
    // and one for expired.test that expired a day ago.
    std::string shop_cert, shop_key;
    std::string api_cert, api_key;
    std::string expired_cert, expired_key;

    /// Makes them (once per process); throws when openssl fails.
    static const TestPki& get();
};

}  // namespace bgs::test
