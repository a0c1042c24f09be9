#include "proxy/routing/canary.hpp"

#include <charconv>

namespace bgs::routing {
namespace {

constexpr unsigned kBuckets = 10000;

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

std::optional<SessionCookie> parse_value(std::string_view v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
        v = v.substr(1, v.size() - 2);  // a quoted cookie-value (RFC 6265 §4.1.1)
    }
    const auto dot = v.find('.');
    const auto color = parse_color(v.substr(0, dot));
    if (!color) {
        return std::nullopt;
    }
    SessionCookie c{*color, std::nullopt};
    if (dot == std::string_view::npos) {
        return c;
    }
    const auto digits = v.substr(dot + 1);
    std::uint64_t epoch = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), epoch);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) {
        return std::nullopt;
    }
    c.epoch = epoch;
    return c;
}

}  // namespace

std::optional<SessionCookie> find_session_cookie(const net::FlatFields& fields,
                                                 std::string_view name) {
    for (const auto& f : fields) {
        if (f.name() != boost::beast::http::field::cookie) {
            continue;
        }
        std::string_view rest = f.value();
        while (!rest.empty()) {
            const auto semi = rest.find(';');
            const auto pair = trim(rest.substr(0, semi));
            rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
            const auto eq = pair.find('=');
            if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) {
                continue;
            }
            return parse_value(trim(pair.substr(eq + 1)));
        }
    }
    return std::nullopt;
}

unsigned sticky_bucket(std::string_view value, std::uint64_t epoch) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    auto mix = [&h](unsigned char b) {
        h ^= b;
        h *= 0x100000001b3ULL;
    };
    for (int i = 0; i < 8; ++i) {
        mix(static_cast<unsigned char>(epoch >> (8 * i)));
    }
    for (const char ch : value) {
        mix(static_cast<unsigned char>(ch));
    }
    // FNV's low bits are its weakest; fold the high half in first.
    h ^= h >> 32;
    return static_cast<unsigned>(h % kBuckets);
}

CanaryDecision decide(const ColorState::Snapshot& snap, std::uint64_t epoch,
                      const net::FlatFields& fields, std::string_view cookie_name,
                      std::string_view sticky_header, std::uint32_t random) {
    if (snap.canary_percent == 0) {
        return {snap.active, false};
    }
    const unsigned below = snap.canary_percent * (kBuckets / 100);
    if (!sticky_header.empty()) {
        if (const auto f = fields.find(sticky_header); f && !f->value().empty()) {
            const bool canary = sticky_bucket(f->value(), epoch) < below;
            return {canary ? snap.canary() : snap.active, false};
        }
    }
    if (const auto c = find_session_cookie(fields, cookie_name);
        c && (!c->epoch || *c->epoch == epoch)) {
        return {c->color, false};
    }
    const bool canary = random % kBuckets < below;
    return {canary ? snap.canary() : snap.active, true};
}

void append_session_cookie(std::string& out, std::string_view name, Color color,
                           std::uint64_t epoch, bool secure) {
    char digits[24];
    const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), epoch);
    (void)ec;  // 24 digits hold any 64-bit number
    out.append("Set-Cookie: ");
    out.append(name);
    out.push_back('=');
    out.append(to_string(color));
    out.push_back('.');
    out.append(digits, end);
    out.append("; Path=/; HttpOnly; SameSite=Lax");
    if (secure) {
        out.append("; Secure");
    }
    out.append("\r\n");
}

}  // namespace bgs::routing
