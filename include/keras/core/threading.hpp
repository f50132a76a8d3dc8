// Threads: one setting for every parallel part of kerascpp (OpenMP loops; GEMMs are split by
// kerascpp into serial Eigen calls).
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace keras {

namespace detail {
inline int& num_threads_setting() {
  static int n = 0;  // 0: not set yet, use all cores
  return n;
}
}  // namespace detail

namespace detail {
/// Eigen's own GEMM threading spin-waits between its threads, which collapses on small matrices
/// (a 36x960x160 product took 10 ms on 2 threads): kerascpp splits the work itself and always
/// calls Eigen serially, so Eigen's thread count is kept at 1 (done once, on first use).
inline void keep_eigen_serial() {
  static const bool once = [] {
    Eigen::setNbThreads(1);
    return true;
  }();
  (void)once;
}
}  // namespace detail

/// Number of threads kerascpp uses (default: all cores). Inside an active OpenMP parallel region
/// (for example while the Graph runs batch slices on several threads) it is 1, so kerascpp's
/// kernels never nest threads.
inline int get_num_threads() {
  detail::keep_eigen_serial();
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;
#endif
  int n = detail::num_threads_setting();
  if (n > 0) return n;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

/// Sets the number of threads for every parallel part (OpenMP loops, GEMMs, data loading).
inline void set_num_threads(int n) {
  n = std::max(1, n);
  detail::num_threads_setting() = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  detail::keep_eigen_serial();
}

}  // namespace keras
