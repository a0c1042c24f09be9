// Identifiers: request ids on the data path (fast, per thread) and secrets such as
// the demo's admin token (from the OS's CSPRNG). Any thread.
#pragma once

#include <cstdint>
#include <string>

namespace bgs {

/// A 32-hex-digit request id from a per-thread generator seeded by the OS.
/// Unique in practice, not a secret.
std::string make_request_id();
/// The same, written into `out` (which keeps its storage).
void make_request_id(std::string& out);

/// 32 random bits from the same per-thread generator (WebSocket masking keys).
std::uint32_t random_u32();

/// `bytes` random bytes from OpenSSL's CSPRNG as lowercase hex. Aborts if the
/// CSPRNG fails, since a predictable secret is worse than no process.
std::string make_secret_hex(std::size_t bytes);

}  // namespace bgs
