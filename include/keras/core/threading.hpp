// Threads: one setting for every parallel part of kerascpp. The parallel loops run on kerascpp's own
// pool (core/thread_pool.hpp), not on OpenMP; GEMMs are split by kerascpp into serial Eigen calls.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <thread>

#include "thread_pool.hpp"

namespace keras {

namespace detail {
inline int default_num_threads() {
  static const int n = [] {
    // OMP_NUM_THREADS is still honoured (users set it for the OpenMP loops kerascpp used to have)
    for (const char* var : {"KERAS_NUM_THREADS", "OMP_NUM_THREADS"})
      if (const char* v = std::getenv(var)) {
        const int k = std::atoi(v);
        if (k > 0) return k;
      }
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return n;
}
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

/// Number of threads kerascpp uses (default: all cores, or KERAS_NUM_THREADS / OMP_NUM_THREADS when
/// set). Inside a parallel loop of kerascpp's pool (for example while the Graph runs batch slices on
/// several threads) it is 1, so kerascpp's kernels never nest threads.
inline int get_num_threads() {
  detail::keep_eigen_serial();
  if (in_parallel_region()) return 1;
  const int n = detail::num_threads_setting();
  return n > 0 ? n : detail::default_num_threads();
}

/// Sets the number of threads for every parallel part (kernels, GEMMs, data loading).
inline void set_num_threads(int n) {
  detail::num_threads_setting() = std::max(1, n);
  detail::keep_eigen_serial();
}

/// parallel_for over get_num_threads() threads, serial when the loop has fewer than `grain` indices
/// per thread worth of work (see core/thread_pool.hpp).
template <class F>
void parallel_for(Index n, Index grain, F&& fn) {
  parallel_for(n, grain, get_num_threads(), std::forward<F>(fn));
}

/// dst[i] += parts[t * stride + i] for t = 0, 1, ..., groups - 1 in that order, i in [0, n): the
/// partial sums of a reduction split into fixed groups, added with the serial loop's order for every
/// element (so the result does not depend on the thread count), the elements split across threads.
template <class T>
void add_partials_in_order(T* dst, const T* parts, Index groups, Index stride, Index n) {
  const int threads = n * groups > 65536 ? get_num_threads() : 1;
  parallel_for(n, 2048, threads, [=](Index b, Index e) {
    T* __restrict d = dst;
    for (Index t = 0; t < groups; ++t) {
      const T* __restrict p = parts + t * stride;
#pragma omp simd
      for (Index i = b; i < e; ++i) d[i] += p[i];
    }
  });
}

}  // namespace keras
