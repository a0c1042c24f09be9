// The admin endpoints (SPEC section 3): authentication, the source allow list,
// and one handler per endpoint family. Control thread only.
#pragma once

#include "admin/api.hpp"
#include "proxy/config/config.hpp"
#include "proxy/control/fleet.hpp"
#include "proxy/control/observer.hpp"
#include "proxy/control/reload.hpp"
#include "proxy/control/switcher.hpp"
#include "proxy/control/upstream_directory.hpp"
#include "proxy/routing/router.hpp"

namespace bgs::worker {
struct Shared;
}

namespace bgs::admin {

class Routes {
  public:
    Routes(const config::Config& cfg, control::Switcher& switcher, routing::Router& router,
           worker::Shared& shared, control::UpstreamDirectory& upstreams,
           control::Observer& observer, control::ReloadHook reload, control::Fleet* fleet = nullptr,
           control::UpgradeHook upgrade = {});

    net::Task<ApiResponse> handle(ApiRequest req);

    /// The status document (also used by tests).
    std::string status_json() const;

  private:
    std::optional<ApiResponse> check_access(const ApiRequest& req) const;
    std::string history_json() const;
    std::string metrics_text() const;
    net::Task<ApiResponse> upstreams(const ApiRequest& req, std::string_view color_name);
    ApiResponse reload(const ApiRequest& req);
    net::Task<ApiResponse> fleet(const ApiRequest& req);
    /// After a committed change with "wait_fleet": the fleet's answer.
    net::Task<boost::json::object> wait_for_fleet(const control::SwitchOutcome& o,
                                                  std::optional<Duration> wait);

    const config::Config& cfg_;
    control::Switcher& switcher_;
    routing::Router& router_;
    worker::Shared& shared_;
    control::UpstreamDirectory& upstreams_;
    control::Observer& observer_;
    control::ReloadHook reload_;
    control::Fleet* fleet_;  // null unless state.backend is redis
    control::UpgradeHook upgrade_;
};

/// Compares a presented "Bearer ..." header with the token in constant time.
bool token_matches(std::string_view authorization, const std::string& token);

}  // namespace bgs::admin
