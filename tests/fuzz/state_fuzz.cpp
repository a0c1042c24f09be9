// The state file loader, which is also the fleet record's decoder, and the
// fleet's heartbeat decoder: a corrupt file or a lying Redis gives an error,
// never a crash. A state it accepts writes out and reads back the same.
#include "proxy/state/fleet_store.hpp"
#include "proxy/state/state_store.hpp"

#include <cstdlib>
#include <stdexcept>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace bgs::state;
    const std::string text(reinterpret_cast<const char*>(data), size);
    (void)decode_heartbeat(text, "node", 1'800'000'000'000);
    SwitchState s;
    try {
        s = StateStore::from_json(text);
    } catch (const std::runtime_error&) {
        return 0;  // refused, with a message
    }
    const auto once = StateStore::to_json(s);
    SwitchState again;
    try {
        again = StateStore::from_json(once);
    } catch (const std::runtime_error&) {
        std::abort();  // our own output refused
    }
    if (StateStore::to_json(again) != once) {
        std::abort();  // not a fixed point
    }
    return 0;
}
