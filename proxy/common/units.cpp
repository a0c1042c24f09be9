#include "proxy/common/units.hpp"

#include <charconv>
#include <limits>

namespace bgs {
namespace {

struct Number {
    std::uint64_t value;
    std::string_view suffix;
};

std::optional<Number> split_number(std::string_view text) {
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data()) {
        return std::nullopt;
    }
    return Number{value, text.substr(static_cast<std::size_t>(end - text.data()))};
}

std::optional<std::uint64_t> scaled(std::uint64_t value, std::uint64_t unit) {
    if (value > std::numeric_limits<std::uint64_t>::max() / unit) {
        return std::nullopt;
    }
    return value * unit;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
    auto number = split_number(text);
    if (!number) {
        return std::nullopt;
    }
    std::uint64_t unit_ms = 0;
    if (number->suffix == "ms") {
        unit_ms = 1;
    } else if (number->suffix == "s") {
        unit_ms = 1000;
    } else if (number->suffix == "m") {
        unit_ms = 60'000;
    } else if (number->suffix == "h") {
        unit_ms = 3'600'000;
    } else if (number->suffix.empty() && number->value == 0) {
        return Duration{0};
    } else {
        return std::nullopt;
    }
    auto ms = scaled(number->value, unit_ms);
    if (!ms || *ms > static_cast<std::uint64_t>(kMaxDuration.count())) {
        return std::nullopt;
    }
    return Duration{static_cast<Duration::rep>(*ms)};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    auto number = split_number(text);
    if (!number) {
        return std::nullopt;
    }
    if (number->suffix.empty() || number->suffix == "B") {
        return number->value;
    }
    if (number->suffix == "KiB") {
        return scaled(number->value, std::uint64_t{1} << 10);
    }
    if (number->suffix == "MiB") {
        return scaled(number->value, std::uint64_t{1} << 20);
    }
    if (number->suffix == "GiB") {
        return scaled(number->value, std::uint64_t{1} << 30);
    }
    return std::nullopt;
}

std::string format_duration(Duration d) {
    auto ms = d.count();
    if (ms == 0) {
        return "0s";
    }
    if (ms % 3'600'000 == 0) {
        return std::to_string(ms / 3'600'000) + "h";
    }
    if (ms % 60'000 == 0) {
        return std::to_string(ms / 60'000) + "m";
    }
    if (ms % 1000 == 0) {
        return std::to_string(ms / 1000) + "s";
    }
    return std::to_string(ms) + "ms";
}

}  // namespace bgs
