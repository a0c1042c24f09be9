#include "proxy/common/random.hpp"

#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace bgs {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Writes `value` as 16 hex digits at `out`.
void put_hex(char* out, std::uint64_t value) {
    for (int i = 15; i >= 0; --i) {
        out[i] = kHex[value & 0xf];
        value >>= 4;
    }
}

// xoshiro256** (public-domain algorithm by Blackman and Vigna): fast, good enough
// for identifiers, and per thread so the data path takes no lock.
class Xoshiro {
  public:
    Xoshiro() {
        if (RAND_bytes(reinterpret_cast<unsigned char*>(s_.data()), sizeof s_) != 1) {
            std::fprintf(stderr, "bgswitch: OpenSSL RAND_bytes failed\n");
            std::abort();
        }
    }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

  private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::array<std::uint64_t, 4> s_{};
};

}  // namespace

static Xoshiro& thread_rng() {
    thread_local Xoshiro rng;
    return rng;
}

std::uint32_t random_u32() {
    return static_cast<std::uint32_t>(thread_rng().next() >> 32);
}

void make_request_id(std::string& out) {
    auto& rng = thread_rng();
    out.resize(32);
    put_hex(out.data(), rng.next());
    put_hex(out.data() + 16, rng.next());
}

std::string make_request_id() {
    std::string id;
    make_request_id(id);
    return id;
}

std::string make_secret_hex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
        std::fprintf(stderr, "bgswitch: OpenSSL RAND_bytes failed\n");
        std::abort();
    }
    std::string out;
    out.reserve(bytes * 2);
    for (unsigned char c : raw) {
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
    return out;
}

}  // namespace bgs
