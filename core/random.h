// Seeded randomness with the same draws on every platform and standard library: the engine is
// std::mt19937_64 (fully specified by the standard) and every distribution is written here
// (std::uniform_*_distribution and std::shuffle are implementation-defined).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace cl {

// splitmix64 finaliser: decorrelates neighbouring seeds (seed, seed + 1, ...).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : engine_(seed) {}

  uint64_t next() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  // Integer in [a, b] (inclusive).
  int uniform_int(int a, int b) { return a + static_cast<int>(uniform() * (b - a + 1)); }
  // next() % n: the modulo bias is below 2^-40 for every n this project draws from.
  uint64_t below(uint64_t n) { return engine_() % n; }
  bool bernoulli(double p) { return uniform() < p; }
  // Standard normal (Box-Muller, one value per call).
  double normal() {
    const double u1 = std::max(uniform(), 1e-300), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  // Fisher-Yates from the back: the same permutation on every platform.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

  // The engine itself, for checkpoints (operator<< / >> save and restore its state exactly).
  std::mt19937_64& engine() { return engine_; }
  const std::mt19937_64& engine() const { return engine_; }

 private:
  std::mt19937_64 engine_;
};

// 0, 1, ..., n - 1.
std::vector<int64_t> iota_indices(int64_t n);

}  // namespace cl
