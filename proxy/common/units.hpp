// Parsing and printing of the configuration's durations ("500ms", "2s") and sizes
// ("16KiB"). Pure functions; any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace bgs {

using Duration = std::chrono::milliseconds;

/// The longest duration anything accepts: a year, far below what deadline
/// arithmetic on steady_clock (nanoseconds in 64 bits) could overflow.
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 365);
inline constexpr std::string_view kMaxDurationText = "8760h";

/// Parses "0", "500ms", "2s", "5m", "1h". Returns nullopt for anything else,
/// including negative numbers and values over kMaxDuration.
std::optional<Duration> parse_duration(std::string_view text);

/// Parses "512", "512B", "16KiB", "10MiB", "1GiB". Returns nullopt otherwise.
std::optional<std::uint64_t> parse_size(std::string_view text);

/// The shortest exact spelling of `d` in the units parse_duration accepts.
std::string format_duration(Duration d);

}  // namespace bgs
