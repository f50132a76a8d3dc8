// Seeded random numbers. Every random choice in kerascpp (initializers, dropout, shuffling,
// augmentation) draws from a keras::Random seeded explicitly or from the global seed.
#pragma once
#include <cstdint>
#include <random>

namespace keras {

class Random {
 public:
  explicit Random(std::uint64_t seed = 0) : gen_(seed) {}
  void seed(std::uint64_t s) { gen_.seed(s); }
  double uniform(double lo = 0.0, double hi = 1.0) { return std::uniform_real_distribution<double>(lo, hi)(gen_); }
  double normal(double mean = 0.0, double stddev = 1.0) { return std::normal_distribution<double>(mean, stddev)(gen_); }
  /// Uniform integer in [0, n).
  std::uint64_t index(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(gen_); }
  std::uint64_t next() { return gen_(); }
  std::mt19937_64& engine() { return gen_; }

 private:
  std::mt19937_64 gen_;
};

namespace detail {
inline Random& global_random() {
  static Random r(1337);
  return r;
}
}  // namespace detail

/// Global seed source: layers created without an explicit seed take the next seed from here,
/// so a program that calls keras::set_random_seed(s) first is deterministic.
inline std::uint64_t next_global_seed() { return detail::global_random().next(); }

/// Keras's keras.utils.set_random_seed.
inline void set_random_seed(std::uint64_t seed) { detail::global_random().seed(seed); }

}  // namespace keras
