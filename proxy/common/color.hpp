// The two deployment colors. Shared by the config, the router and the admin API.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace bgs {

enum class Color : unsigned char { Blue = 0, Green = 1 };

inline constexpr std::array<Color, 2> kColors{Color::Blue, Color::Green};

constexpr std::string_view to_string(Color c) {
    return c == Color::Blue ? "blue" : "green";
}

constexpr Color other(Color c) {
    return c == Color::Blue ? Color::Green : Color::Blue;
}

constexpr std::size_t index(Color c) {
    return static_cast<std::size_t>(c);
}

constexpr std::optional<Color> parse_color(std::string_view s) {
    if (s == "blue") {
        return Color::Blue;
    }
    if (s == "green") {
        return Color::Green;
    }
    return std::nullopt;
}

}  // namespace bgs
