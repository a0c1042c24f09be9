#include "proxy/common/logging.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <mutex>

namespace bgs {
namespace {

std::shared_ptr<spdlog::logger> make_error_logger() {
    auto logger = spdlog::stderr_color_mt("bgswitch");
    // UTC with its Z, like the access log, so that lines from hosts in
    // different zones sort together.
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
    return logger;
}

std::shared_ptr<spdlog::logger>& error_logger() {
    static std::shared_ptr<spdlog::logger> logger = make_error_logger();
    return logger;
}

}  // namespace

spdlog::logger& log() {
    return *error_logger();
}

void init_logging(const std::string& level) {
    auto parsed = spdlog::level::from_str(level);
    // from_str maps unknown names to "off"; the config loader already rejected those.
    if (parsed == spdlog::level::off && level != "off") {
        parsed = spdlog::level::info;
    }
    error_logger()->set_level(parsed);
    error_logger()->flush_on(spdlog::level::warn);
    spdlog::flush_every(std::chrono::seconds(1));
}

std::shared_ptr<spdlog::logger> make_access_logger(const std::string& target) {
    if (target == "off") {
        return nullptr;
    }
    static std::once_flag pool_once;
    std::call_once(pool_once, [] { spdlog::init_thread_pool(16384, 1); });

    spdlog::sink_ptr sink;
    if (target == "stdout") {
        sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else if (target == "stderr") {
        sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
        sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(target);
    }
    auto logger =
        std::make_shared<spdlog::async_logger>("access", std::move(sink), spdlog::thread_pool(),
                                               spdlog::async_overflow_policy::overrun_oldest);
    logger->set_pattern("%v");
    logger->set_level(spdlog::level::info);
    // Each line is written out by the logging thread as it comes (as nginx does
    // without buffer=), so `tail -f` and log shippers see requests at once; the
    // workers only enqueue.
    logger->flush_on(spdlog::level::info);
    return logger;
}

std::uint64_t access_log_dropped() {
    // The pool exists once an access logger was made.
    const auto pool = spdlog::thread_pool();
    return pool ? pool->overrun_counter() : 0;
}

void report_access_log_drops() {
    static std::uint64_t reported = 0;
    static std::chrono::steady_clock::time_point last{};
    const auto now = std::chrono::steady_clock::now();
    const auto dropped = access_log_dropped();
    if (dropped > reported && (last == decltype(last){} || now - last >= std::chrono::minutes(1))) {
        log().warn(
            "access log: {} lines dropped since the last report ({} in all): its writer "
            "cannot keep up with the traffic",
            dropped - reported, dropped);
        reported = dropped;
        last = now;
    }
}

void shutdown_logging() {
    error_logger()->flush();
    spdlog::shutdown();
}

}  // namespace bgs
