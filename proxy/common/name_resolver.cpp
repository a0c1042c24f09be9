#include "proxy/common/name_resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

namespace bgs {

std::vector<std::string> resolve_with_system(const std::string& host) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::vector<std::string> out;
    if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) {
        return out;
    }
    for (const addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        const void* addr = nullptr;
        if (ai->ai_family == AF_INET) {
            addr = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
        } else if (ai->ai_family == AF_INET6) {
            addr = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
        }
        char text[INET6_ADDRSTRLEN] = {};
        if (addr != nullptr && ::inet_ntop(ai->ai_family, addr, text, sizeof text) != nullptr &&
            std::find(out.begin(), out.end(), text) == out.end()) {
            out.emplace_back(text);
        }
    }
    ::freeaddrinfo(res);
    return out;
}

}  // namespace bgs
