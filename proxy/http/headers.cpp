#include "proxy/http/headers.hpp"

#include "proxy/common/random.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

#include <algorithm>
#include <vector>

namespace bgs::http {
namespace bh = boost::beast::http;
using boost::beast::iequals;

namespace {

std::string_view sv(boost::beast::string_view s) {
    return {s.data(), s.size()};
}

// Every comma-separated token of every instance of `field`, whitespace trimmed.
std::vector<std::string_view> list_tokens(const Fields& fields, bh::field field) {
    std::vector<std::string_view> out;
    for (auto it = fields.find(field); it != fields.end() && it->name() == field; ++it) {
        std::string_view value = sv(it->value());
        std::size_t pos = 0;
        while (pos <= value.size()) {
            auto comma = value.find(',', pos);
            if (comma == std::string_view::npos) {
                comma = value.size();
            }
            auto token = value.substr(pos, comma - pos);
            while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
                token.remove_prefix(1);
            }
            while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
                token.remove_suffix(1);
            }
            if (!token.empty()) {
                out.push_back(token);
            }
            pos = comma + 1;
        }
    }
    return out;
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::optional<std::string> request_framing_error(const Fields& fields, unsigned version) {
    const bool has_te = fields.count(bh::field::transfer_encoding) > 0;
    const bool has_cl = fields.count(bh::field::content_length) > 0;
    if (has_te && has_cl) {
        return "both Content-Length and Transfer-Encoding";
    }
    if (has_te) {
        if (version < 11) {
            return "Transfer-Encoding in an HTTP/1.0 request";
        }
        auto codings = list_tokens(fields, bh::field::transfer_encoding);
        if (codings.empty() || !iequals(codings.back(), "chunked")) {
            return "Transfer-Encoding does not end with chunked";
        }
        if (codings.size() != 1) {
            return "unsupported Transfer-Encoding (only chunked is accepted)";
        }
    }
    if (has_cl) {
        auto values = list_tokens(fields, bh::field::content_length);
        if (values.empty()) {
            return "invalid Content-Length";
        }
        for (auto v : values) {
            if (!all_digits(v) || v.size() > 18) {
                return "invalid Content-Length";
            }
        }
        // Leading zeros make "5" and "005" the same length; compare numerically.
        auto number = [](std::string_view v) { return std::stoull(std::string(v)); };
        const auto first = number(values.front());
        for (auto v : values) {
            if (number(v) != first) {
                return "several different Content-Length values";
            }
        }
    }
    if (version >= 11) {
        const auto hosts = fields.count(bh::field::host);
        if (hosts == 0) {
            return "missing Host";
        }
        if (hosts > 1) {
            return "several Host fields";
        }
    }
    return std::nullopt;
}

bool connection_has_token(const Fields& fields, std::string_view token) {
    auto tokens = list_tokens(fields, bh::field::connection);
    return std::any_of(tokens.begin(), tokens.end(),
                       [&](std::string_view t) { return iequals(t, token); });
}

bool is_upgrade_request(const Fields& fields, unsigned version) {
    return version >= 11 && fields.count(bh::field::upgrade) > 0 &&
           connection_has_token(fields, "upgrade");
}

void copy_end_to_end(const Fields& from, Fields& to, bool keep_upgrade) {
    const auto named = list_tokens(from, bh::field::connection);
    for (const auto& f : from) {
        switch (f.name()) {
            case bh::field::connection:
            case bh::field::keep_alive:
            case bh::field::proxy_connection:
            case bh::field::te:
            case bh::field::trailer:
            case bh::field::transfer_encoding:
            case bh::field::content_length:
                continue;
            case bh::field::upgrade:
                if (!keep_upgrade) {
                    continue;
                }
                break;
            default:
                break;
        }
        const auto name = sv(f.name_string());
        const bool listed = std::any_of(named.begin(), named.end(), [&](std::string_view t) {
            return iequals(t, name) && !(keep_upgrade && iequals(t, "upgrade"));
        });
        if (listed) {
            continue;
        }
        if (f.name() == bh::field::unknown) {
            to.insert(f.name_string(), f.value());
        } else {
            to.insert(f.name(), f.value());
        }
    }
}

void add_forwarded(const Fields& in, Fields& out, const ForwardedInfo& info) {
    std::string xff;
    for (auto it = in.find("X-Forwarded-For");
         it != in.end() && iequals(it->name_string(), "X-Forwarded-For"); ++it) {
        if (!xff.empty()) {
            xff += ", ";
        }
        xff += sv(it->value());
    }
    if (!xff.empty()) {
        xff += ", ";
    }
    xff += info.client_ip;
    out.erase("X-Forwarded-For");
    out.set("X-Forwarded-For", xff);
    out.set("X-Forwarded-Proto", info.proto);
    if (auto host = in.find(bh::field::host); host != in.end()) {
        out.set("X-Forwarded-Host", host->value());
    } else {
        out.erase("X-Forwarded-Host");
    }
}

std::string request_id_for(const Fields& in) {
    if (auto it = in.find("X-Request-Id"); it != in.end()) {
        auto v = sv(it->value());
        const bool sane =
            !v.empty() && v.size() <= 128 &&
            std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; });
        if (sane) {
            return std::string(v);
        }
    }
    return make_request_id();
}

}  // namespace bgs::http
