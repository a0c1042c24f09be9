#include "proxy/common/systemd.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace bgs::systemd {

bool notify(std::string_view state) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || (path[0] != '/' && path[0] != '@')) {
        return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::size_t len = std::strlen(path);
    if (len >= sizeof addr.sun_path) {
        return false;
    }
    std::memcpy(addr.sun_path, path, len);
    if (addr.sun_path[0] == '@') {
        addr.sun_path[0] = '\0';  // the abstract namespace
    }
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
    const auto sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                               reinterpret_cast<const sockaddr*>(&addr), addr_len);
    ::close(fd);
    return sent == static_cast<ssize_t>(state.size());
}

std::vector<int> take_listen_fds() {
    constexpr int kFirst = 3;  // SD_LISTEN_FDS_START
    std::vector<int> out;
    const char* pid = std::getenv("LISTEN_PID");
    const char* fds = std::getenv("LISTEN_FDS");
    if (pid != nullptr && fds != nullptr) {
        char* end = nullptr;
        const long for_pid = std::strtol(pid, &end, 10);
        const long n = std::strtol(fds, &end, 10);
        if (for_pid == ::getpid() && n > 0 && n < 1024) {
            for (int fd = kFirst; fd < kFirst + n; ++fd) {
                ::fcntl(fd, F_SETFD, FD_CLOEXEC);
                out.push_back(fd);
            }
        }
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return out;
}

std::vector<int> claim_fds(std::vector<int>& fds, const sockaddr* address, unsigned length) {
    std::vector<int> out;
    while (auto fd = claim_fd(fds, address, length)) {
        out.push_back(*fd);
    }
    return out;
}

std::optional<int> claim_fd(std::vector<int>& fds, const sockaddr* address, unsigned length) {
    for (auto it = fds.begin(); it != fds.end(); ++it) {
        sockaddr_storage bound{};
        socklen_t bound_len = sizeof bound;
        int listening = 0;
        socklen_t opt_len = sizeof listening;
        if (::getsockname(*it, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0 ||
            ::getsockopt(*it, SOL_SOCKET, SO_ACCEPTCONN, &listening, &opt_len) != 0 ||
            listening == 0) {
            continue;
        }
        if (bound_len == length && std::memcmp(&bound, address, length) == 0) {
            const int fd = *it;
            fds.erase(it);
            return fd;
        }
    }
    return std::nullopt;
}

}  // namespace bgs::systemd
