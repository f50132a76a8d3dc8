// Threads: one setting for every parallel part of kerascpp (OpenMP loops and Eigen's GEMM).
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

/// Number of threads kerascpp uses (default: all cores).
inline int get_num_threads() {
  int n = detail::num_threads_setting();
  if (n > 0) return n;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return std::max(1u, std::thread::hardware_concurrency());
#endif
}

/// Sets the number of threads for every parallel part (OpenMP loops, Eigen GEMM, data loading).
inline void set_num_threads(int n) {
  n = std::max(1, n);
  detail::num_threads_setting() = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
  Eigen::setNbThreads(n);
}

}  // namespace keras
