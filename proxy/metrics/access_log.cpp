#include "proxy/metrics/access_log.hpp"

#include "proxy/common/utf8.hpp"

#include <cstdio>
#include <ctime>

namespace bgs::metrics {
namespace {

// Escapes for a JSON string and for the quoted request of the text format alike:
// quotes, backslashes, control bytes and bytes that are not UTF-8 never reach
// the log raw, so every JSON line parses. A stray byte is written as the code
// point of the same number (\u00ff for 0xff), which keeps it recoverable.
void append_escaped(std::string& out, std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t len = utf8_sequence_at(s, i);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
        } else if (c < 0x20 || c == 0x7f || len == 0) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
            i += 1;
            continue;
        } else {
            out.append(s.substr(i, len));
            i += len;
            continue;
        }
        i += 1;
    }
}

}  // namespace

std::string format_time(std::chrono::system_clock::time_point t) {
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    return buf;
}

std::string format_access(const AccessRecord& r, config::LogFormat format) {
    std::string out;
    out.reserve(256);
    const char* version = r.version == 10 ? "HTTP/1.0" : "HTTP/1.1";
    char duration[32];
    std::snprintf(duration, sizeof duration, "%.6f", r.duration_s);
    if (format == config::LogFormat::Text) {
        out += format_time(r.time);
        out += ' ';
        out += r.client;
        out += " \"";
        append_escaped(out, r.method);
        out += ' ';
        append_escaped(out, r.target);
        out += ' ';
        out += version;
        out += "\" ";
        out += std::to_string(r.status);
        out += ' ';
        out += std::to_string(r.bytes_sent);
        out += ' ';
        out += duration;
        out += ' ';
        out += r.color;
        out += ' ';
        out += r.upstream;
        out += ' ';
        out += r.request_id;
        out += ' ';
        out += r.error.empty() ? std::string_view("-") : std::string_view(r.error);
        return out;
    }
    auto field = [&](const char* name, const std::string& value, bool first = false) {
        out += first ? "{\"" : ",\"";
        out += name;
        out += "\":\"";
        append_escaped(out, value);
        out += '"';
    };
    field("time", format_time(r.time), true);
    field("client", r.client);
    field("method", r.method);
    field("target", r.target);
    field("protocol", version);
    out += ",\"status\":" + std::to_string(r.status);
    out += ",\"bytes_sent\":" + std::to_string(r.bytes_sent);
    out += ",\"duration_s\":";
    out += duration;
    field("color", r.color);
    field("upstream", r.upstream);
    field("request_id", r.request_id);
    field("error", r.error);
    out += '}';
    return out;
}

}  // namespace bgs::metrics
