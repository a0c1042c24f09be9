#include "proxy/common/name_resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

namespace bgs {

std::optional<std::string> resolve_with_system(const std::string& host) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) {
        return std::nullopt;
    }
    char text[INET6_ADDRSTRLEN] = {};
    const void* addr = nullptr;
    if (res->ai_family == AF_INET) {
        addr = &reinterpret_cast<const sockaddr_in*>(res->ai_addr)->sin_addr;
    } else if (res->ai_family == AF_INET6) {
        addr = &reinterpret_cast<const sockaddr_in6*>(res->ai_addr)->sin6_addr;
    }
    const bool ok = addr != nullptr && ::inet_ntop(res->ai_family, addr, text, sizeof text);
    ::freeaddrinfo(res);
    if (!ok) {
        return std::nullopt;
    }
    return std::string(text);
}

}  // namespace bgs
