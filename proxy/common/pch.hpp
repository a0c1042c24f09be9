// Precompiled header for the non-Asio translation units: the standard library
// and spdlog/fmt, which every unit includes and which are slow to parse.
#pragma once
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
