// Process-wide logging: the "bgswitch" error log on stderr and the access log,
// both through spdlog. Set up once at start-up on the main thread; loggers are
// then safe to use from any thread.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <memory>
#include <string>

namespace bgs {

/// The error/event log. Valid after init_logging (a stderr logger before that).
spdlog::logger& log();

/// Sets the error log's level ("trace" .. "off"). Unknown names mean "info".
void init_logging(const std::string& level);

/// Creates the access logger. `target` is "stdout", "stderr", "off" or a file path.
/// The logger is asynchronous with a bounded queue that drops the oldest lines
/// when full, so a slow disk never blocks a worker. Returns nullptr for "off".
/// Throws spdlog::spdlog_ex when the file cannot be opened (start-up only).
std::shared_ptr<spdlog::logger> make_access_logger(const std::string& target);

/// Access log lines dropped so far because the queue to the writer was full
/// (a disk or pipe slower than the traffic). Any thread.
std::uint64_t access_log_dropped();

/// Logs a warning when access log lines were dropped since the last call,
/// at most once a minute; call it periodically. One caller thread.
void report_access_log_drops();

/// Flushes and drops every logger; call before exit.
void shutdown_logging();

}  // namespace bgs
