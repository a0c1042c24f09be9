#include "proxy/state/state_store.hpp"

#include "proxy/metrics/access_log.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace bgs::state {
namespace json = boost::json;
namespace {

std::string errno_text() {
    return std::strerror(errno);
}

std::chrono::system_clock::time_point parse_time(const std::string& s) {
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6) {
        throw std::runtime_error("bad time \"" + s + "\"");
    }
    // The clock counts nanoseconds in 64 bits: years past 2262 would wrap.
    if (tm.tm_year < 1970 || tm.tm_year > 2200 || ms < 0 || ms > 999) {
        throw std::runtime_error("time \"" + s + "\" out of range");
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(ms);
}

// Microseconds since the epoch, as a time the clock can hold (up to 2200).
std::chrono::system_clock::time_point unix_us(std::int64_t us) {
    constexpr std::int64_t kMax = std::int64_t{7'258'118'400} * 1'000'000;  // 2200-01-01
    if (us < 0 || us > kMax) {
        throw std::runtime_error("time " + std::to_string(us) + " us out of range");
    }
    return std::chrono::system_clock::time_point(std::chrono::microseconds(us));
}

Color color_field(const json::object& o, const char* key) {
    auto c = parse_color(std::string(o.at(key).as_string()));
    if (!c) {
        throw std::runtime_error(std::string(key) + " is not blue or green");
    }
    return *c;
}

bool write_all(int fd, const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
        auto n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        off += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

static json::array strings_array(const std::vector<std::string>& v) {
    json::array a;
    for (const auto& s : v) {
        a.emplace_back(s);
    }
    return a;
}

static unsigned percent_of(const json::value& v) {
    const auto p = v.to_number<std::uint64_t>();
    if (p > 100) {
        throw std::runtime_error("percent " + std::to_string(p) + " out of range (0 to 100)");
    }
    return static_cast<unsigned>(p);
}

static std::vector<std::string> strings_of(const json::value& v) {
    std::vector<std::string> out;
    for (const auto& s : v.as_array()) {
        out.emplace_back(s.as_string());
    }
    return out;
}

static json::object event_object(const HistoryEvent& e) {
    json::object o{
        {"time", metrics::format_time(e.time)},
        {"action", e.action},
        {"from", to_string(e.from)},
        {"to", to_string(e.to)},
        {"result", e.result},
        {"source", e.source},
        {"reason", e.reason},
        {"version", e.version},
        {"dry_run", e.dry_run},
        {"gates", json::object{{"health_us", e.health_us}, {"smoke_us", e.smoke_us}}},
    };
    if (!e.failure.empty()) {
        o["failure"] = e.failure;
    }
    if (e.action == "set_upstreams") {
        o["upstreams"] = json::object{{"color", to_string(e.to)},
                                      {"old", strings_array(e.old_upstreams)},
                                      {"new", strings_array(e.new_upstreams)}};
    }
    if (e.action == "reload") {
        o["changed"] = strings_array(e.changed);
    }
    if (!e.node.empty()) {
        o["node"] = e.node;
    }
    if (e.drain_ms != 0) {
        o["drain_ms"] = e.drain_ms;
    }
    if (e.percent) {
        o["percent"] = *e.percent;
    }
    return o;
}

// Gate timings: microseconds since format 1 gained them; milliseconds as a
// double before.
static std::uint64_t gate_us(const json::object& g, const char* us, const char* ms) {
    if (const auto* v = g.if_contains(us)) {
        return v->to_number<std::uint64_t>();
    }
    if (const auto* v = g.if_contains(ms)) {
        const double micros = v->to_number<double>() * 1000.0;
        if (!(micros < 1e15)) {  // a gate does not take 30 years
            throw std::runtime_error(std::string(ms) + " out of range");
        }
        return static_cast<std::uint64_t>(std::max(0.0, micros));
    }
    return 0;
}

std::string StateStore::event_json(const HistoryEvent& e) {
    return json::serialize(event_object(e));
}

std::string StateStore::to_json(const SwitchState& s) {
    json::array history;
    for (const auto& e : s.history) {
        history.push_back(event_object(e));
    }
    json::object o{
        {"format", 1},
        {"active", to_string(s.active)},
        {"previous", s.previous ? json::value(to_string(*s.previous)) : json::value(nullptr)},
        {"version", s.version},
        {"history", std::move(history)},
    };
    json::object lists;
    for (Color c : kColors) {
        if (const auto& l = s.upstreams[index(c)]) {
            lists[to_string(c)] = strings_array(*l);
        }
    }
    if (!lists.empty()) {
        o["upstreams"] = std::move(lists);  // absent in files written before lists existed
    }
    if (s.committed_at) {
        o["committed_unix_us"] = std::chrono::duration_cast<std::chrono::microseconds>(
                                     s.committed_at->time_since_epoch())
                                     .count();
    }
    if (s.canary) {
        o["canary"] = json::object{{"to", to_string(s.canary->to)},
                                   {"percent", s.canary->percent},
                                   {"epoch", s.canary->epoch},
                                   {"since", metrics::format_time(s.canary->since)}};
    }
    return json::serialize(o) + "\n";
}

SwitchState StateStore::from_json(const std::string& text) {
    json::error_code ec;
    auto v = json::parse(text, ec);
    if (ec) {
        throw std::runtime_error("not valid JSON: " + ec.message());
    }
    try {
        const auto& o = v.as_object();
        SwitchState s;
        s.active = color_field(o, "active");
        if (const auto* p = o.if_contains("previous"); p && !p->is_null()) {
            s.previous = color_field(o, "previous");
        }
        s.version = o.at("version").to_number<std::uint64_t>();
        if (s.version > SwitchState::kMaxVersion) {
            throw std::runtime_error("version " + std::to_string(s.version) +
                                     " out of range (at most " +
                                     std::to_string(SwitchState::kMaxVersion) + ")");
        }
        if (const auto* h = o.if_contains("history")) {
            for (const auto& item : h->as_array()) {
                const auto& e = item.as_object();
                HistoryEvent ev;
                ev.time = parse_time(std::string(e.at("time").as_string()));
                ev.action = e.at("action").as_string();
                ev.from = color_field(e, "from");
                ev.to = color_field(e, "to");
                ev.result = e.at("result").as_string();
                ev.source = e.at("source").as_string();
                ev.reason = e.at("reason").as_string();
                ev.version = e.at("version").to_number<std::uint64_t>();
                const auto& g = e.at("gates").as_object();
                ev.health_us = gate_us(g, "health_us", "health_ms");
                ev.smoke_us = gate_us(g, "smoke_us", "smoke_ms");
                if (const auto* d = e.if_contains("dry_run")) {
                    ev.dry_run = d->as_bool();
                }
                if (const auto* f = e.if_contains("failure")) {
                    ev.failure = f->as_string();
                }
                if (const auto* u = e.if_contains("upstreams")) {
                    ev.old_upstreams = strings_of(u->as_object().at("old"));
                    ev.new_upstreams = strings_of(u->as_object().at("new"));
                }
                if (const auto* c = e.if_contains("changed")) {
                    ev.changed = strings_of(*c);
                }
                if (const auto* n = e.if_contains("node")) {
                    ev.node = n->as_string();
                }
                if (const auto* d = e.if_contains("drain_ms")) {
                    ev.drain_ms = d->to_number<std::uint64_t>();
                }
                if (const auto* p = e.if_contains("percent")) {
                    ev.percent = percent_of(*p);
                }
                s.history.push_back(std::move(ev));
            }
        }
        if (const auto* lists = o.if_contains("upstreams")) {
            for (Color c : kColors) {
                if (const auto* l = lists->as_object().if_contains(to_string(c))) {
                    s.upstreams[index(c)] = strings_of(*l);
                }
            }
        }
        if (const auto* at = o.if_contains("committed_unix_us")) {
            s.committed_at = unix_us(at->to_number<std::int64_t>());
        }
        if (const auto* c = o.if_contains("canary"); c && !c->is_null()) {
            const auto& co = c->as_object();
            Canary canary;
            canary.to = color_field(co, "to");
            canary.percent = percent_of(co.at("percent"));
            canary.epoch = co.at("epoch").to_number<std::uint64_t>();
            canary.since = parse_time(std::string(co.at("since").as_string()));
            if (canary.to == s.active || canary.percent == 0) {
                throw std::runtime_error("canary: to the active color, or at 0 percent");
            }
            s.canary = canary;
        }
        return s;
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("unexpected content: ") + e.what());
    }
}

StateStore::~StateStore() {
    if (lock_fd_ >= 0) {
        ::close(lock_fd_);  // releases the flock
    }
}

void StateStore::lock(std::optional<int> inherited) {
    namespace fs = std::filesystem;
    const fs::path target(path_);
    std::error_code ec;
    if (target.has_parent_path()) {
        fs::create_directories(target.parent_path(), ec);
    }
    const std::string lock_path = path_ + ".lock";
    if (inherited) {
        // The process before an upgrade passed its lock: the same open file,
        // so the flock is already ours. Anything else is not taken.
        struct stat held {};
        struct stat named {};
        if (::fstat(*inherited, &held) == 0 && ::stat(lock_path.c_str(), &named) == 0 &&
            held.st_dev == named.st_dev && held.st_ino == named.st_ino &&
            ::flock(*inherited, LOCK_EX | LOCK_NB) == 0) {
            const std::string me = std::to_string(::getpid()) + "\n";
            if (::ftruncate(*inherited, 0) == 0 && ::lseek(*inherited, 0, SEEK_SET) == 0) {
                write_all(*inherited, me);
            }
            lock_fd_ = *inherited;
            return;
        }
        ::close(*inherited);
    }
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        throw StateError("state file " + path_ + ": cannot open " + lock_path + ": " +
                         errno_text());
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        char pid[32] = {};
        const auto n = ::pread(fd, pid, sizeof pid - 1, 0);
        ::close(fd);
        if (err == EWOULDBLOCK) {
            std::string owner(pid, n > 0 ? static_cast<std::size_t>(n) : 0);
            while (!owner.empty() && (owner.back() == '\n' || owner.back() == ' ')) {
                owner.pop_back();
            }
            throw StateError("state file " + path_ + " is in use by another bgswitch (pid " +
                             (owner.empty() ? "unknown" : owner) +
                             "): two processes on one state file would each serve their own "
                             "color");
        }
        throw StateError("state file " + path_ + ": cannot lock " + lock_path + ": " +
                         std::strerror(err));
    }
    const std::string me = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) == 0) {
        write_all(fd, me);
    }
    lock_fd_ = fd;
}

std::optional<SwitchState> StateStore::load() const {
    std::error_code dir_ec;
    if (std::filesystem::is_directory(path_, dir_ec)) {
        throw StateError("state file " + path_ + " is a directory; state.file must name a file");
    }
    std::ifstream in(path_);
    if (!in) {
        if (errno == ENOENT) {
            return std::nullopt;
        }
        throw StateError("state file " + path_ + ": cannot read: " + errno_text());
    }
    std::stringstream text;
    text << in.rdbuf();
    if (in.bad()) {
        throw StateError("state file " + path_ + ": cannot read: " + errno_text());
    }
    try {
        return from_json(text.str());
    } catch (const std::exception& e) {
        throw StateError("state file " + path_ + " is corrupt (" + e.what() +
                         "); fix or remove it, and check the active color before restarting");
    }
}

std::optional<std::string> StateStore::save(const SwitchState& s) const {
    namespace fs = std::filesystem;
    const fs::path target(path_);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    std::error_code fec;
    fs::create_directories(dir, fec);
    if (fec) {
        return "cannot create " + dir.string() + ": " + fec.message();
    }
    const std::string tmp = path_ + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return "cannot write " + tmp + ": " + errno_text();
    }
    const bool ok = write_all(fd, to_json(s)) && ::fsync(fd) == 0;
    const std::string why = ok ? "" : errno_text();
    ::close(fd);
    if (!ok) {
        ::unlink(tmp.c_str());
        return "cannot write " + tmp + ": " + why;
    }
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
        const auto e = errno_text();
        ::unlink(tmp.c_str());
        return "cannot rename " + tmp + " to " + path_ + ": " + e;
    }
    // The rename itself is durable only once the directory entry is synced.
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
    return std::nullopt;
}

}  // namespace bgs::state
