#include "tests/fuzz/framing_model.hpp"

#include <cctype>
#include <vector>

namespace bgs::fuzz {
namespace {

bool tchar(char c) {
    const auto u = static_cast<unsigned char>(c);
    return std::isalnum(u) != 0 ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

// A comma-separated list (RFC 9110 §5.6.1), empty elements dropped.
std::vector<std::string_view> list(std::string_view v) {
    std::vector<std::string_view> out;
    while (true) {
        const auto comma = v.find(',');
        const auto item = trim_ows(v.substr(0, comma));
        if (!item.empty()) {
            out.push_back(item);
        }
        if (comma == std::string_view::npos) {
            return out;
        }
        v.remove_prefix(comma + 1);
    }
}

ModelFraming reject(std::string why) {
    ModelFraming m;
    m.reject = true;
    m.why = std::move(why);
    return m;
}

}  // namespace

ModelFraming model_request_framing(std::string_view head) {
    // §2.2: lines end in CRLF (a bare LF is something a server MAY accept;
    // the model is strict and calls it a rejection only for the caller's
    // soundness check to skip).
    std::vector<std::string_view> lines;
    while (true) {
        const auto crlf = head.find("\r\n");
        if (crlf == std::string_view::npos) {
            return reject("no CRLF");
        }
        if (crlf == 0) {
            break;
        }
        lines.push_back(head.substr(0, crlf));
        head.remove_prefix(crlf + 2);
    }
    if (lines.empty()) {
        return reject("empty");
    }
    // §3: method SP request-target SP HTTP-version.
    const auto& rl = lines.front();
    const auto sp1 = rl.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
    if (sp1 == 0 || sp2 == std::string_view::npos || sp2 == sp1 + 1) {
        return reject("request line");
    }
    for (char c : rl.substr(0, sp1)) {
        if (!tchar(c)) {
            return reject("method");
        }
    }
    const auto version = rl.substr(sp2 + 1);
    if (version != "HTTP/1.1" && version != "HTTP/1.0") {
        return reject("version");
    }
    const bool http10 = version == "HTTP/1.0";

    // §5.2: obs-fold is replaced by SP before the value is interpreted (the
    // other choice a server has is a 400).
    std::vector<std::string> unfolded;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        if (lines[i].front() == ' ' || lines[i].front() == '\t') {
            if (unfolded.empty()) {
                return reject("whitespace before the first field");  // §2.2
            }
            unfolded.back() += ' ';
            unfolded.back() += trim_ows(lines[i]);
        } else {
            unfolded.emplace_back(lines[i]);
        }
    }
    std::vector<std::string_view> te, cl;
    int hosts = 0;
    for (const std::string_view line : unfolded) {
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            return reject("field line");
        }
        const auto name = line.substr(0, colon);
        for (char c : name) {
            if (!tchar(c)) {
                return reject("field name");  // §5.1: whitespace before the colon is a 400
            }
        }
        const auto value = trim_ows(line.substr(colon + 1));
        for (char c : value) {
            const auto u = static_cast<unsigned char>(c);
            if (u == 0 || u == '\r' || u == '\n') {
                return reject("field value");  // §5.5
            }
        }
        const auto n = lower(name);
        if (n == "transfer-encoding") {
            for (auto item : list(value)) {
                te.push_back(item);
            }
            if (list(value).empty()) {
                te.push_back("");  // present but empty: no valid final coding
            }
        } else if (n == "content-length") {
            cl.push_back(value);
        } else if (n == "host") {
            ++hosts;
        }
    }
    if (!http10 && hosts != 1) {
        return reject("Host");  // RFC 9112 §3.2: missing or repeated
    }
    ModelFraming m;
    if (!te.empty()) {
        if (http10) {
            return reject("Transfer-Encoding in HTTP/1.0");  // §6.1
        }
        if (lower(te.back()) != "chunked") {
            return reject("chunked is not the final coding");  // §6.3 item 4
        }
        if (!cl.empty()) {
            return reject("Transfer-Encoding with Content-Length");  // §6.1: ought to be an error
        }
        m.body = ModelFraming::Body::Chunked;
        return m;
    }
    if (!cl.empty()) {
        // §6.3 item 5: a list of identical valid values is one value.
        std::optional<std::uint64_t> length;
        for (auto field : cl) {
            const auto items = list(field);
            if (items.empty()) {
                return reject("empty Content-Length");
            }
            for (auto item : items) {
                std::uint64_t v = 0;
                for (char c : item) {
                    if (c < '0' || c > '9' || v > (UINT64_MAX - 9) / 10) {
                        return reject("Content-Length value");
                    }
                    v = v * 10 + static_cast<std::uint64_t>(c - '0');
                }
                if (length && *length != v) {
                    return reject("different Content-Length values");
                }
                length = v;
            }
        }
        m.body = ModelFraming::Body::Length;
        m.length = *length;
        return m;
    }
    return m;  // §6.3 item 7: no body
}

}  // namespace bgs::fuzz
