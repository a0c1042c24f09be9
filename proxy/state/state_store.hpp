// Persists SwitchState to a JSON file: written to a temporary file, fsynced,
// renamed over the old one, and the directory fsynced, so that a crash at any
// moment leaves either the old or the new state. Control thread (blocking I/O).
#pragma once

#include "proxy/state/switch_state.hpp"

#include <optional>
#include <stdexcept>
#include <string>

namespace bgs::state {

/// A state file that exists but cannot be used; the message names the file.
class StateError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

class StateStore {
  public:
    explicit StateStore(std::string path) : path_(std::move(path)) {}
    ~StateStore();
    StateStore(const StateStore&) = delete;
    StateStore& operator=(const StateStore&) = delete;

    /// Takes the state file for this process: an exclusive flock on
    /// "<path>.lock", which holds the owner's PID, kept until destruction.
    /// Two processes on one state file would each believe their own color.
    /// Throws StateError naming the other process when it is taken.
    /// `inherited`: the lock's descriptor passed by the process before an
    /// upgrade, used when it is that lock file's.
    void lock(std::optional<int> inherited = std::nullopt);
    /// The lock's descriptor (-1 before lock()), for an upgrade to pass on.
    int lock_fd() const { return lock_fd_; }

    /// The saved state, or nullopt when the file does not exist. Throws
    /// StateError when it exists but cannot be read or parsed: the caller must
    /// not fall back to the configuration's color.
    std::optional<SwitchState> load() const;

    /// Writes atomically and durably; creates the directory if needed. Returns
    /// the reason on failure (the old file is then untouched).
    std::optional<std::string> save(const SwitchState& s) const;

    const std::string& path() const { return path_; }

    /// One history event as JSON text (the file's and the admin API's form).
    static std::string event_json(const HistoryEvent& e);

    /// JSON text of a state (the file's content) and its parser.
    static std::string to_json(const SwitchState& s);
    static SwitchState from_json(const std::string& text);  // throws std::runtime_error

  private:
    std::string path_;
    int lock_fd_ = -1;
};

}  // namespace bgs::state
