#include "tests/support/test_pki.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

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
