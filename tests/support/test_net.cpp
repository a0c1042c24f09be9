#include "tests/support/test_net.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>

namespace bgs::test {
namespace {

bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.pop_back();
    }
    std::size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
        ++i;
    }
    return s.substr(i);
}

Message parse_head(const std::string& head) {
    Message m;
    std::size_t pos = head.find("\r\n");
    m.start_line = head.substr(0, pos);
    pos += 2;
    while (pos < head.size()) {
        auto end = head.find("\r\n", pos);
        if (end == std::string::npos || end == pos) {
            break;
        }
        auto line = head.substr(pos, end - pos);
        auto colon = line.find(':');
        if (colon != std::string::npos) {
            m.headers.push_back({line.substr(0, colon), trim(line.substr(colon + 1))});
        }
        pos = end + 2;
    }
    return m;
}

std::string read_chunked(Socket& s, Ms timeout) {
    std::string body;
    for (;;) {
        auto line = s.read_until("\r\n", timeout);
        const auto size = std::stoull(line, nullptr, 16);
        if (size == 0) {
            // Trailers until the empty line.
            while (s.read_until("\r\n", timeout) != "\r\n") {
            }
            return body;
        }
        body += s.read_exact(size, timeout);
        s.read_exact(2, timeout);
    }
}

}  // namespace

Socket& Socket::operator=(Socket&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = std::exchange(o.fd_, -1);
        pending_ = std::move(o.pending_);
    }
    return *this;
}

Socket::~Socket() {
    close();
}

void Socket::close() {
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

Socket Socket::connect(std::uint16_t port, const char* source) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source != nullptr) {
        sockaddr_in from{};
        from.sin_family = AF_INET;
        ::inet_pton(AF_INET, source, &from.sin_addr);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
            const int err = errno;
            ::close(fd);
            throw std::runtime_error(std::string("bind to ") + source + ": " + std::strerror(err));
        }
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::runtime_error("connect to port " + std::to_string(port) + ": " +
                                 std::strerror(err));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return Socket(fd);
}

void Socket::send(std::string_view data) {
    while (!data.empty()) {
        const auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::runtime_error(std::string("send: ") + std::strerror(errno));
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::string Socket::read_some(Ms timeout) {
    if (!pending_.empty()) {
        return std::exchange(pending_, {});
    }
    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (r == 0) {
        throw Timeout("read timed out after " + std::to_string(timeout.count()) + "ms");
    }
    char buf[65536];
    const auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) {
        if (errno == ECONNRESET) {
            return {};
        }
        throw std::runtime_error(std::string("recv: ") + std::strerror(errno));
    }
    return std::string(buf, static_cast<std::size_t>(n));
}

std::string Socket::read_until(std::string_view delim, Ms timeout) {
    std::string data = std::exchange(pending_, {});
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto pos = data.find(delim); pos != std::string::npos) {
            pending_ = data.substr(pos + delim.size());
            return data.substr(0, pos + delim.size());
        }
        const auto left =
            std::chrono::duration_cast<Ms>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw Timeout("no delimiter within the deadline; got: " + data.substr(0, 200));
        }
        auto more = read_some(left);
        if (more.empty()) {
            throw std::runtime_error("EOF before delimiter; got: " + data.substr(0, 200));
        }
        data += more;
    }
}

std::string Socket::read_exact(std::size_t n, Ms timeout) {
    std::string data = std::exchange(pending_, {});
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (data.size() < n) {
        const auto left =
            std::chrono::duration_cast<Ms>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw Timeout("short read: " + std::to_string(data.size()) + " of " +
                          std::to_string(n));
        }
        auto more = read_some(left);
        if (more.empty()) {
            throw std::runtime_error("EOF after " + std::to_string(data.size()) + " of " +
                                     std::to_string(n) + " bytes");
        }
        data += more;
    }
    pending_ = data.substr(n);
    data.resize(n);
    return data;
}

std::string Socket::read_to_eof(Ms timeout) {
    std::string data = std::exchange(pending_, {});
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left =
            std::chrono::duration_cast<Ms>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            throw Timeout("peer did not close");
        }
        auto more = read_some(left);
        if (more.empty()) {
            return data;
        }
        data += more;
    }
}

bool Socket::closed_within(Ms timeout) {
    try {
        read_to_eof(timeout);
        return true;
    } catch (const Timeout&) {
        return false;
    }
}

std::size_t Socket::readable() const {
    int queued = 0;
    ::ioctl(fd_, FIONREAD, &queued);
    return pending_.size() + static_cast<std::size_t>(std::max(queued, 0));
}

void Socket::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

std::optional<std::string> Message::header(std::string_view name) const {
    for (const auto& h : headers) {
        if (iequal(h.name, name)) {
            return h.value;
        }
    }
    return std::nullopt;
}

std::size_t Message::count(std::string_view name) const {
    return static_cast<std::size_t>(std::count_if(
        headers.begin(), headers.end(), [&](const Header& h) { return iequal(h.name, name); }));
}

Message read_response(Socket& s, Ms timeout, bool head_request) {
    for (;;) {
        Message m = parse_head(s.read_until("\r\n\r\n", timeout));
        if (m.start_line.size() < 12) {
            throw std::runtime_error("bad status line: " + m.start_line);
        }
        m.version = m.start_line.substr(0, 8);
        m.status = std::stoi(m.start_line.substr(9, 3));
        if (m.status == 100) {
            continue;
        }
        if (head_request || m.status == 204 || m.status == 304 || m.status == 101) {
            return m;
        }
        if (auto te = m.header("Transfer-Encoding"); te && iequal(*te, "chunked")) {
            m.chunked = true;
            m.body = read_chunked(s, timeout);
        } else if (auto cl = m.header("Content-Length")) {
            m.body = s.read_exact(std::stoull(*cl), timeout);
        } else {
            m.body = s.read_to_eof(timeout);
        }
        return m;
    }
}

std::optional<Message> read_request(Socket& s, Ms timeout) {
    std::string head;
    try {
        head = s.read_until("\r\n\r\n", timeout);
    } catch (const Timeout&) {
        throw;
    } catch (const std::runtime_error&) {
        return std::nullopt;
    }
    Message m = parse_head(head);
    auto sp1 = m.start_line.find(' ');
    auto sp2 = m.start_line.rfind(' ');
    m.method = m.start_line.substr(0, sp1);
    m.target = m.start_line.substr(sp1 + 1, sp2 - sp1 - 1);
    m.version = m.start_line.substr(sp2 + 1);
    if (auto te = m.header("Transfer-Encoding"); te && iequal(*te, "chunked")) {
        m.chunked = true;
        m.body = read_chunked(s, timeout);
    } else if (auto cl = m.header("Content-Length")) {
        m.body = s.read_exact(std::stoull(*cl), timeout);
    }
    return m;
}

namespace {

// True when nothing on 127.0.0.1 holds `port` (bound, listening, connected,
// or in TIME_WAIT: no SO_REUSEADDR here, so this errs on the side of "taken").
bool port_free(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

// The lowest port the kernel hands to outgoing connections.
int ephemeral_low() {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    int low = 0;
    return in >> low ? low : 0;
}

}  // namespace

std::uint16_t dead_port() {
    // Chosen below the ephemeral range: a port from inside it (what bind(0)
    // returns) can be taken by any outgoing connection of a parallel test
    // before the process it was meant for binds it. At random, so that test
    // processes running side by side rarely pick the same one.
    static const int low = ephemeral_low();
    if (low > 8000) {
        thread_local std::mt19937 rng(std::random_device{}() ^ static_cast<unsigned>(::getpid()));
        std::uniform_int_distribution<int> pick(low - 3700, low - 100);
        for (int attempt = 0; attempt < 100; ++attempt) {
            const auto port = static_cast<std::uint16_t>(pick(rng));
            if (port_free(port)) {
                return port;
            }
        }
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

std::size_t rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stoull(line.substr(6));
        }
    }
    return 0;
}

}  // namespace bgs::test
