// Per-thread shards for counters the data path bumps on every request. Each
// worker thread writes its own cache line, so two workers never contend for
// one; readers (the control thread) sum the shards. Writes stay atomic, so a
// thread without a shard of its own (shard 0) is still correct, only slower.
#pragma once

#include <array>
#include <cstddef>

namespace bgs {

inline constexpr std::size_t kMaxShards = 64;

namespace detail {
inline thread_local std::size_t this_thread_shard = 0;
}

/// Called once by each worker thread with a number unique among workers.
inline void set_this_thread_shard(std::size_t n) {
    detail::this_thread_shard = n % kMaxShards;
}

template <typename T>
class Sharded {
  public:
    /// The calling thread's shard.
    T& local() { return slots_[detail::this_thread_shard].value; }

    /// Calls `f(const T&)` for every shard.
    template <typename F>
    void for_each(F&& f) const {
        for (const auto& s : slots_) {
            f(s.value);
        }
    }

  private:
    struct alignas(64) Slot {
        T value{};
    };
    std::array<Slot, kMaxShards> slots_{};
};

}  // namespace bgs
