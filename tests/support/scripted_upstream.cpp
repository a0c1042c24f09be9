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

ScriptedUpstream::ScriptedUpstream(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 512) != 0) {
        throw std::runtime_error("scripted upstream: bind/listen failed");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
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
