// What a configuration reload answers (SPEC section 7, "Reload"). The reload
// itself is the composition root's (proxy/server.cpp): it touches everything.
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace bgs::control {

struct ReloadOutcome {
    enum class Result { Reloaded, Invalid, Busy, ShuttingDown };
    Result result = Result::Reloaded;
    std::vector<std::string> problems;          // Invalid: "key.path: what", each
    std::vector<std::string> changed;           // keys applied
    std::vector<std::string> restart_required;  // keys changed in the file, left as they were
};

/// Re-reads the configuration file; `source` names who asked, for the history.
/// Control thread.
using ReloadHook = std::function<ReloadOutcome(const std::string& source)>;

/// Starts an upgrade in place (SPEC section 9): the new process's PID, or why
/// none was started.
using UpgradeHook = std::function<std::variant<int, std::string>(const std::string& source)>;

}  // namespace bgs::control
