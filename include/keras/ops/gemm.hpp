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

#include "../core/shape.hpp"
#include "../core/threading.hpp"

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
    if (alpha == T(1)) c.noalias() = a * b;
    else c.noalias() = alpha * (a * b);
  } else {
    if (beta != T(1)) c *= beta;
    if (alpha == T(1)) c.noalias() += a * b;
    else if (alpha == T(-1)) c.noalias() -= a * b;
    else c.noalias() += alpha * (a * b);
  }
}

/// One Eigen GEMM on row-major maps (serial when called inside an active OpenMP region).
template <class T>
inline void gemm_block(bool ta, bool tb, Index M, Index N, Index K, T alpha, const T* A, Index lda, const T* B,
                       Index ldb, T beta, T* C, Index ldc) {
  if (M <= 0 || N <= 0) return;
  RowMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {
    if (beta == T(0)) c.setZero();
    else if (beta != T(1)) c *= beta;
    return;
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
