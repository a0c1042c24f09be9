// The admin endpoint's HTTP server (JSON over HTTP/1.1, keep-alive), on the
// control thread's io_context. Requests are bounded in size and time.
#pragma once

#include "admin/routes.hpp"

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace bgs::admin {

class AdminServer {
  public:
    /// Binds admin.address (port 0 picks one), or takes the socket of
    /// `inherited` bound to it (an upgrade passed it). Throws std::runtime_error.
    AdminServer(net::asio::io_context& ioc, const config::Config& cfg, Routes& routes,
                std::vector<int>* inherited = nullptr);
    ~AdminServer();

    std::uint16_t port() const;
    /// The listening socket's descriptor (for an upgrade to pass on).
    int listening_fd() const;
    void start();
    /// Stops accepting and ends idle admin connections.
    void stop();
    /// Answers every request still being handled (a switch whose gates run)
    /// with 503 "shutting down" and closes its connection, without waiting;
    /// the handler's own answer, should it come, is dropped. Control thread.
    void answer_in_flight_with_503();

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace bgs::admin
