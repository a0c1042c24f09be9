#include "tests/support/scripted_upstream.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace bgs::test {

std::string http_response(int status, std::string_view body, std::string_view extra_headers) {
    std::string out = "HTTP/1.1 " + std::to_string(status) +
                      " Status\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
    out += extra_headers;
    out += "\r\n";
    out += body;
    return out;
}

ScriptedUpstream::ScriptedUpstream(Handler handler)
    : ScriptedUpstream(std::move(handler), "127.0.0.1") {}

ScriptedUpstream::ScriptedUpstream(Handler handler, const std::string& ip, std::uint16_t port)
    : handler_(std::move(handler)) {
    sockaddr_storage storage{};
    socklen_t len = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof *v4;
    } else if (::inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof *v6;
    } else {
        throw std::runtime_error("scripted upstream: not an IP address: " + ip);
    }
    listen_fd_ = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    int zero = 0;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (storage.ss_family == AF_INET6) {
        setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&storage), len) != 0 ||
        ::listen(listen_fd_, 512) != 0) {
        ::close(listen_fd_);
        throw std::runtime_error("scripted upstream: bind/listen on " + ip + " failed");
    }
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&storage), &len);
    port_ = ntohs(storage.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

ScriptedUpstream::~ScriptedUpstream() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    ::close(listen_fd_);
    std::vector<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        for (int fd : open_fds_) {
            ::shutdown(fd, SHUT_RDWR);
        }
        threads.swap(threads_);
    }
    for (auto& t : threads) {
        t.join();
    }
}

void ScriptedUpstream::accept_loop() {
    while (!stopping_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) {
            continue;
        }
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        ++connections_;
        std::lock_guard lock(mutex_);
        open_fds_.push_back(fd);
        threads_.emplace_back([this, fd] {
            Socket s(fd);
            try {
                handler_(s, *this);
            } catch (const std::exception&) {
                // A handler blocked on a connection the test tore down: expected.
            }
            std::lock_guard inner(mutex_);
            open_fds_.erase(std::find(open_fds_.begin(), open_fds_.end(), fd));
            // The Socket destructor closes fd after this point.
        });
    }
}

std::size_t ScriptedUpstream::request_count() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
}

std::vector<Message> ScriptedUpstream::requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
}

std::optional<Message> ScriptedUpstream::next_request(Socket& s, Ms timeout) {
    auto m = read_request(s, timeout);
    if (m) {
        std::lock_guard lock(mutex_);
        requests_.push_back(*m);
    }
    return m;
}

ScriptedUpstream::Handler ScriptedUpstream::respond_with(std::string body, std::string name) {
    return [body = std::move(body), name = std::move(name)](Socket& s, ScriptedUpstream& up) {
        while (auto req = up.next_request(s)) {
            s.send(http_response(200, body, "X-Upstream: " + name + "\r\n"));
        }
    };
}

ScriptedUpstream::Handler ScriptedUpstream::app(std::string name) {
    return [name = std::move(name)](Socket& s, ScriptedUpstream& up) {
        while (auto req = up.next_request(s)) {
            if (req->target == "/health" || req->target == "/api/v1/health") {
                s.send(
                    http_response(200, R"({"status":"ok"})", "Content-Type: application/json\r\n"));
            } else {
                s.send(http_response(200, name, "X-Upstream: " + name + "\r\n"));
            }
            if (req->header("Connection") == "close") {
                return;
            }
        }
    };
}

}  // namespace bgs::test
