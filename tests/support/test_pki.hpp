// Certificates made by the test with the openssl command: a CA, and a
// certificate it signed for 127.0.0.1 and localhost (ECDSA P-256). Files in a
// temporary directory of this process, removed with it.
#pragma once

#include <string>

namespace bgs::test {

struct TestPki {
    std::string dir;
    std::string ca;        // the CA's certificate (PEM)
    std::string cert;      // the server's certificate, signed by the CA
    std::string key;       // the server's key
    std::string other_ca;  // a CA that signed nothing here

    /// Makes them (once per process); throws when openssl fails.
    static const TestPki& get();
};

}  // namespace bgs::test
