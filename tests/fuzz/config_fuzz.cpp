// The configuration loader (YAML and every value parser behind it): any
// document gets a config or a list of problems, never a crash or an escaped
// exception. A config it accepts must be accepted again from its own source.
#include "proxy/config/loader.hpp"

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view yaml(reinterpret_cast<const char*>(data), size);
    const bgs::config::EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
        if (name == "TOKEN") {
            return std::string("t0ken");
        }
        return std::nullopt;
    };
    const auto r = bgs::config::load_config_text(yaml, "fuzz.yaml", env);
    if (r.config && !r.errors.empty()) {
        std::abort();  // a config and problems at once
    }
    if (!r.config && r.errors.empty()) {
        std::abort();  // refused without a reason
    }
    return 0;
}
