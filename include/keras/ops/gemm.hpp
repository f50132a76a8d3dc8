// Row-major GEMM on raw pointers, backed by Eigen's GEMM kernels.
//
//   C[M,N] = alpha * op(A) * op(B) + beta * C      (op = identity or transpose)
//
// Threading: one level only. gemm() runs Eigen's GEMM single-threaded on kerascpp's pool
// (core/thread_pool.hpp), split into independent blocks of C (rows of C when M is large, else
// columns), so each thread packs its own panels and no Eigen call is ever nested inside another
// parallel loop. Called from inside a parallel loop it simply runs serially on the calling thread.
// Eigen's own GEMM threading is switched off (keras::detail::keep_eigen_serial): every Eigen
// product kerascpp runs is serial, and the threads are ours.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/shape.hpp"
#include "../core/threading.hpp"
#include "gemm_kernel.hpp"

namespace keras::ops {

namespace detail {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstRowMap = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using RowMap = Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T, class LhsExpr, class RhsExpr>
inline void gemm_apply(const LhsExpr& a, const RhsExpr& b, T alpha, T beta, RowMap<T>& c) {
  if (beta == T(0)) {
    if (alpha == T(1))
      c.noalias() = a * b;
    else
      c.noalias() = alpha * (a * b);
  } else {
    if (beta != T(1)) c *= beta;
    if (alpha == T(1))
      c.noalias() += a * b;
    else if (alpha == T(-1))
      c.noalias() -= a * b;
    else
      c.noalias() += alpha * (a * b);
  }
}

/// Eigen's cache blocking with packing buffers owned by the calling thread: Eigen's own product
/// allocates them on the heap once they exceed EIGEN_STACK_ALLOCATION_LIMIT (128 KB), i.e. per
/// call for blocks of more than a few dozen rows. Here the block sizes are capped (kc <= 512,
/// mc <= 1024, nc <= 4096: beyond the caches anyway) and each thread allocates the largest buffers
/// once, on its first product: which thread runs which block depends on timing, and a buffer grown
/// on demand could then allocate in any later batch. Pages are only touched as far as used.
template <class T>
class ThreadBlocking;

/// Packing buffers of the largest blocks ThreadBlocking uses (allocated by ensure(); pages are
/// touched only as far as used).
template <class T>
struct GemmPackBuffers {
  T* a = nullptr;
  T* b = nullptr;
  float* panels = nullptr;  ///< the own kernel's B block (gk::kKcMax x gk::kNc floats; float builds with kGemmKernel)
  GemmPackBuffers() = default;
  GemmPackBuffers(GemmPackBuffers&& o) noexcept : a(o.a), b(o.b), panels(o.panels) {
    o.a = o.b = nullptr, o.panels = nullptr;
  }
  GemmPackBuffers& operator=(GemmPackBuffers&& o) noexcept {
    std::swap(a, o.a);
    std::swap(b, o.b);
    std::swap(panels, o.panels);
    return *this;
  }
  ~GemmPackBuffers() {
    Eigen::internal::aligned_free(a);
    Eigen::internal::aligned_free(b);
    Eigen::internal::aligned_free(panels);
  }
  inline void ensure();
  bool allocated() const { return a != nullptr; }
};

/// While set on a thread (engine/sliced_runner.hpp, for a batch slice), the packing buffers used
/// instead of the thread's own: their owner can size them whichever thread runs.
template <class T>
GemmPackBuffers<T>*& gemm_buffers_override() {
  thread_local GemmPackBuffers<T>* p = nullptr;
  return p;
}

/// The calling thread's packing buffers (or the override's), allocated.
template <class T>
inline GemmPackBuffers<T>& thread_pack_buffers() {
  GemmPackBuffers<T>* buf = gemm_buffers_override<T>();
  if (!buf) {
    thread_local GemmPackBuffers<T> own;
    buf = &own;
  }
  buf->ensure();
  return *buf;
}

/// Eigen's cache blocking with packing buffers owned by the calling thread: Eigen's own product
/// allocates them on the heap once they exceed EIGEN_STACK_ALLOCATION_LIMIT (128 KB), i.e. per
/// call for blocks of more than a few dozen rows. Here the block sizes are capped (kc <= 512,
/// mc <= 1024, nc <= 4096: beyond the caches anyway) and each thread allocates the largest buffers
/// once, on its first product: which thread runs which block depends on timing, and a buffer grown
/// on demand could then allocate in any later batch.
template <class T>
class ThreadBlocking : public Eigen::internal::level3_blocking<T, T> {
 public:
  static constexpr Index kMaxKc = 512, kMaxMc = 1024, kMaxNc = 4096;
  /// Blocking of a row-major C[M, N] = op(A)[M, K] op(B)[K, N] (Eigen runs it as the column-major
  /// C^T = op(B)^T op(A)^T: its "rows" are N).
  ThreadBlocking(Index M, Index N, Index K) {
    Index kc = K, mc = N, nc = M;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, Index>(kc, mc, nc, Index(1));
    this->m_kc = std::min(kc, kMaxKc);
    this->m_mc = std::min(mc, kMaxMc);
    this->m_nc = std::min(nc, kMaxNc);
    GemmPackBuffers<T>& buf = thread_pack_buffers<T>();
    this->m_blockA = buf.a;
    this->m_blockB = buf.b;
  }
};

template <class T>
inline void GemmPackBuffers<T>::ensure() {
  if (a) return;
  if constexpr (std::is_same_v<T, float> && gk::kGemmKernel)
    panels = static_cast<float*>(Eigen::internal::aligned_malloc(sizeof(float) * gk::kKcMax * gk::kNc));
  a = static_cast<T*>(
      Eigen::internal::aligned_malloc(sizeof(T) * ThreadBlocking<T>::kMaxKc * ThreadBlocking<T>::kMaxMc));
  b = static_cast<T*>(
      Eigen::internal::aligned_malloc(sizeof(T) * ThreadBlocking<T>::kMaxKc * ThreadBlocking<T>::kMaxNc));
}

/// Whether the own micro-kernel (gemm_kernel.hpp) runs a product of this scalar type and shape
/// (else Eigen's). Both are exact to rounding. bench_gemm (docs/performance.md): with B prepacked
/// the own kernel is 1.0-1.8x Eigen on MobileNetV2's shapes, packing B per call 0.86-1.8x (slowest
/// on N = 16 and transposed B); Eigen's gemv/coefficient paths keep the smaller or thinner products.
/// KERASCPP_GEMM=eigen in the environment (read once) runs every product on Eigen's kernel: for
/// before/after measurements within one build.
inline bool gemm_kernel_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("KERASCPP_GEMM");
    return !(e && std::string_view(e) == "eigen");
  }();
  return on;
}
template <class T>
inline bool use_gemm_kernel(Index M, Index N, Index K) {
  if constexpr (std::is_same_v<T, float> && gk::kGemmKernel)
    return M >= 4 && N >= 8 && double(M) * double(N) * double(K) >= 16384.0 && gemm_kernel_enabled();
  else
    return false;
}

/// C (+)= alpha op(A) op(B) with Eigen's kernel (general_matrix_matrix_product) and the calling
/// thread's packing buffers. beta: 0 overwrites, 1 accumulates, else scales C first.
template <class T, int LhsOrder, int RhsOrder>
inline void gemm_eigen(Index M, Index N, Index K, T alpha, const T* A, Index lda, const T* B, Index ldb, T beta, T* C,
                       Index ldc) {
  if (beta == T(0)) {
    for (Index r = 0; r < M; ++r) std::fill(C + r * ldc, C + r * ldc + N, T(0));
  } else if (beta != T(1)) {
    for (Index r = 0; r < M; ++r)
      for (Index j = 0; j < N; ++j) C[r * ldc + j] *= beta;
  }
  ThreadBlocking<T> blocking(M, N, K);
  Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false, Eigen::RowMajor,
                                                 1>::run(M, N, K, A, lda, B, ldb, C, 1, ldc, alpha, blocking, nullptr);
}

/// One serial GEMM on row-major data: C[M, N] = alpha op(A) op(B) + beta C.
template <class T>
inline void gemm_block(bool ta, bool tb, Index M, Index N, Index K, T alpha, const T* A, Index lda, const T* B,
                       Index ldb, T beta, T* C, Index ldc) {
  if (M <= 0 || N <= 0) return;
  RowMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {
    if (beta == T(0))
      c.setZero();
    else if (beta != T(1))
      c *= beta;
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (use_gemm_kernel<T>(M, N, K)) {
      gemm_kernel(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, thread_pack_buffers<T>().panels);
      return;
    }
  }
  // large products: Eigen's kernel with our packing buffers (small ones and matrix-vector shapes
  // keep Eigen's expression path, which picks its coefficient-based or gemv kernels for them)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    if (M >= 8 && N >= 8 && double(M) * double(N) * double(K) >= 32768.0) {
      // op(A) row-major [M, K] with stride lda, or A^T of a row-major [K, M] = column-major [M, K]
      constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
      if (!ta && !tb)
        gemm_eigen<T, R, R>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      else if (!ta && tb)
        gemm_eigen<T, R, Cm>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      else if (ta && !tb)
        gemm_eigen<T, Cm, R>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      else
        gemm_eigen<T, Cm, Cm>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
      return;
    }
  }
  if (!ta && !tb) {
    ConstRowMap<T> a(A, M, K, Eigen::OuterStride<>(lda));
    ConstRowMap<T> b(B, K, N, Eigen::OuterStride<>(ldb));
    gemm_apply<T>(a, b, alpha, beta, c);
  } else if (!ta && tb) {
    ConstRowMap<T> a(A, M, K, Eigen::OuterStride<>(lda));
    ConstRowMap<T> b(B, N, K, Eigen::OuterStride<>(ldb));
    gemm_apply<T>(a, b.transpose(), alpha, beta, c);
  } else if (ta && !tb) {
    ConstRowMap<T> a(A, K, M, Eigen::OuterStride<>(lda));
    ConstRowMap<T> b(B, K, N, Eigen::OuterStride<>(ldb));
    gemm_apply<T>(a.transpose(), b, alpha, beta, c);
  } else {
    ConstRowMap<T> a(A, K, M, Eigen::OuterStride<>(lda));
    ConstRowMap<T> b(B, N, K, Eigen::OuterStride<>(ldb));
    gemm_apply<T>(a.transpose(), b.transpose(), alpha, beta, c);
  }
}

/// gemm_block followed by the epilogue ep (nullptr: none), fused into the micro-kernel when it runs.
template <class T>
inline void gemm_block_ep(bool ta, bool tb, Index M, Index N, Index K, T alpha, const T* A, Index lda, const T* B,
                          Index ldb, T beta, T* C, Index ldc, const GemmEpilogue<T>* ep) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_gemm_kernel<T>(M, N, K)) {
      gemm_kernel(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ep, thread_pack_buffers<T>().panels);
      return;
    }
  }
  gemm_block(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (ep) ep->apply(C, ldc, 0, M, 0, N);
}

}  // namespace detail

/// Serial GEMM on the calling thread. lda/ldb/ldc are the row strides of the stored
/// (untransposed) matrices.
template <class T>
void gemm_serial(bool ta, bool tb, Index M, Index N, Index K, T alpha, const T* A, Index lda, const T* B, Index ldb,
                 T beta, T* C, Index ldc) {
  detail::gemm_block(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/// Parallel GEMM over keras::get_num_threads() threads (see the file comment).
template <class T>
void gemm(bool ta, bool tb, Index M, Index N, Index K, T alpha, const T* A, Index lda, const T* B, Index ldb, T beta,
          T* C, Index ldc) {
  const int nt = keras::get_num_threads();
  const double work = double(M) * double(N) * double(std::max<Index>(K, 1));
  if (nt <= 1 || work < 2.0e5) {
    gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split C into nt blocks along the larger dimension (rows preferred: they keep B shared and
  // read-only). Block boundaries are multiples of 8 (of 16 for columns) to keep Eigen's kernels full.
  const bool split_rows = M >= 16 * nt || M >= N;
  const Index len = split_rows ? M : N;
  const Index align = split_rows ? 8 : 16;
  const Index parts = std::min<Index>(nt, std::max<Index>(1, len / align));
  if (parts <= 1) {
    gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  keras::parallel_chunks(parts, static_cast<int>(parts), [&](Index p, int) {
    Index b0 = (len * p / parts) / align * align;
    Index b1 = p + 1 == parts ? len : (len * (p + 1) / parts) / align * align;
    if (b1 <= b0) return;
    if (split_rows) {
      const T* Ap = ta ? A + b0 : A + b0 * lda;
      detail::gemm_block(ta, tb, b1 - b0, N, K, alpha, Ap, lda, B, ldb, beta, C + b0 * ldc, ldc);
    } else {
      const T* Bp = tb ? B + b0 * ldb : B + b0;
      detail::gemm_block(ta, tb, M, b1 - b0, K, alpha, A, lda, Bp, ldb, beta, C + b0, ldc);
    }
  });
}

}  // namespace keras::ops
