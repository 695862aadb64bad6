// A small deterministic random generator (SplitMix64) with its own uniform,
// shuffle and sample: generated tasks must be the same on every platform,
// and std::uniform_int_distribution is implementation-defined.
#ifndef COLDCOMPRESS_CLIENT_TASKS_RNG_H_
#define COLDCOMPRESS_CLIENT_TASKS_RNG_H_

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace coldcompress::client {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // Uniform in [0, n), n > 0, without modulo bias.
  uint64_t Uniform(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % n;
  }

  // Uniform in [lo, hi].
  int64_t Range(int64_t lo, int64_t hi) {
    return lo +
           static_cast<int64_t>(Uniform(static_cast<uint64_t>(hi - lo) + 1));
  }

  template <typename T>
  void Shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[Uniform(i)]);
  }

  // k distinct values of [0, n), in the order drawn; k <= n.
  std::vector<size_t> Sample(size_t n, size_t k) {
    std::vector<size_t> all(n);
    for (size_t i = 0; i < n; ++i) all[i] = i;
    for (size_t i = 0; i < k; ++i) std::swap(all[i], all[i + Uniform(n - i)]);
    all.resize(k);
    return all;
  }

 private:
  uint64_t state_;
};

// A seed for one example of one task: FNV-1a of the name mixed with the
// run's seed and the example index.
inline uint64_t ExampleSeed(uint64_t seed, std::string_view task,
                            uint64_t index) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : task)
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  Rng mix(h ^ (seed * 0x9E3779B97F4A7C15ull) ^ (index + 1));
  return mix.Next();
}

}  // namespace coldcompress::client

#endif  // COLDCOMPRESS_CLIENT_TASKS_RNG_H_
