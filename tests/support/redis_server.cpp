#include "tests/support/redis_server.hpp"

#include "tests/support/test_net.hpp"

#include <sys/wait.h>
#include <unistd.h>
#include <csignal>
#include <stdexcept>

namespace bgs::test {

namespace {
constexpr const char* kRedisServer = "/usr/bin/redis-server";
}

bool RedisServer::available() {
    return ::access(kRedisServer, X_OK) == 0;
}

RedisServer::RedisServer(std::vector<std::string> extra)
    : port_(dead_port()), extra_(std::move(extra)) {
    start();
}

RedisServer RedisServer::with_tls(const std::string& cert, const std::string& key,
                                  const std::string& ca) {
    return RedisServer(Tls{}, {"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file",
                               ca, "--tls-auth-clients", "no"});
}

RedisServer::RedisServer(Tls, std::vector<std::string> extra)
    : port_(dead_port()), extra_(std::move(extra)), tls_(true) {
    start();
}

void RedisServer::start() {
    if (pid_ > 0) {
        return;
    }
    const std::string port = std::to_string(port_);
    std::vector<std::string> args{kRedisServer, "--bind",       "127.0.0.1", "--save",
                                  "",           "--appendonly", "no",        "--daemonize",
                                  "no",         "--loglevel",   "warning"};
    args.emplace_back("--port");
    if (tls_) {  // the TLS port only
        args.emplace_back("0");
        args.emplace_back("--tls-port");
    }
    args.push_back(port);
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        ::execv(kRedisServer, argv.data());
        ::_exit(127);
    }
    const bool up = eventually(
        [&] {
            try {
                auto s = Socket::connect(port_);
                if (tls_) {
                    return true;  // it listens; the handshake is the client's business
                }
                s.send("PING\r\n");
                const auto answer = s.read_some(1s);
                // +PONG, or -NOAUTH when a password is required: it answers.
                return !answer.empty();
            } catch (const std::exception&) {
                return false;
            }
        },
        10s);
    if (!up) {
        stop();
        throw std::runtime_error("redis-server did not start on port " + std::to_string(port_));
    }
}

RedisServer::~RedisServer() {
    stop();
}

void RedisServer::pause() {
    ::kill(pid_, SIGSTOP);
}

void RedisServer::resume() {
    ::kill(pid_, SIGCONT);
}

void RedisServer::stop() {
    if (pid_ <= 0) {
        return;
    }
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    int status = 0;
    if (!eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10s)) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
}

}  // namespace bgs::test
