// Reads a YAML configuration into config::Config, validating everything and
// collecting every problem before it reports. Start-up and check-config only.
#pragma once

#include "proxy/config/config.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bgs::config {

/// Looks up an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment.
std::optional<std::string> process_env(const std::string& name);

struct LoadResult {
    std::optional<Config> config;     // set exactly when errors is empty
    std::vector<std::string> errors;  // "key.path: problem", in file order
};

/// Parses and validates YAML text. `source` names it in syntax errors.
LoadResult load_config_text(std::string_view yaml, const std::string& source,
                            const EnvLookup& env = process_env);

/// Reads `path` and parses it as load_config_text does.
LoadResult load_config_file(const std::string& path, const EnvLookup& env = process_env);

}  // namespace bgs::config
