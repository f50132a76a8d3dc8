// Fused conv epilogue: what a Conv2D/DepthwiseConv2D applies to its output rows while they are
// still cache-hot, so that a following inference-mode BatchNormalization, ReLU/ReLU6 and residual
// Add cost no extra pass over memory:
//
//   y[r, c] = clamp(y[r, c] * scale[c] + shift[c], lo, hi) + residual[r, c]
//
// (each part optional). The functional Graph builds it from conv -> [BN] -> [ReLU] -> [Add] chains
// in inference mode (see engine/fusion.hpp); the BN/ReLU/Add nodes then alias the conv output.
#pragma once
#include <algorithm>
#include <limits>

#include "../core/shape.hpp"
#include "../core/threading.hpp"

namespace keras::ops {

template <class T>
struct Epilogue {
  const T* scale = nullptr;  ///< per channel [C]; nullptr: 1
  const T* shift = nullptr;  ///< per channel [C]; nullptr: 0
  bool clamp = false;        ///< apply [lo, hi]
  T lo = -std::numeric_limits<T>::infinity();
  T hi = std::numeric_limits<T>::infinity();
  const T* residual = nullptr;  ///< same layout as the output, added last; nullptr: none

  bool empty() const { return !scale && !shift && !clamp && !residual; }

  /// Applies to rows [r0, r0 + rows) of a row-major [*, C] output starting at y (= out + r0 * C).
  void apply(T* y, Index r0, Index rows, Index C) const { apply_block(y, r0, rows, C, 0, C); }

  /// Applies to the block rows [r0, r0 + rows) x channels [c0, c0 + nc) of a row-major output
  /// with row stride ld; y points at the block's first element (out + r0 * ld + c0).
  void apply_block(T* y, Index r0, Index rows, Index ld, Index c0, Index nc) const {
    if (empty()) return;
    const T* sc = scale ? scale + c0 : nullptr;
    const T* sh = shift ? shift + c0 : nullptr;
    const T l = clamp ? lo : -std::numeric_limits<T>::infinity();
    const T h = clamp ? hi : std::numeric_limits<T>::infinity();
    for (Index r = 0; r < rows; ++r) {
      T* __restrict yr = y + r * ld;
      const T* __restrict res = residual ? residual + (r0 + r) * ld + c0 : nullptr;
      if (sc && sh) {
#pragma omp simd
        for (Index c = 0; c < nc; ++c) yr[c] = yr[c] * sc[c] + sh[c];
      } else if (sc) {
#pragma omp simd
        for (Index c = 0; c < nc; ++c) yr[c] = yr[c] * sc[c];
      } else if (sh) {
#pragma omp simd
        for (Index c = 0; c < nc; ++c) yr[c] = yr[c] + sh[c];
      }
      if (clamp) {
#pragma omp simd
        for (Index c = 0; c < nc; ++c) yr[c] = std::min(std::max(yr[c], l), h);
      }
      if (res) {
#pragma omp simd
        for (Index c = 0; c < nc; ++c) yr[c] += res[c];
      }
    }
  }
};

/// Backward of an epilogue without residual, y = clamp(z * scale + shift, lo, hi): given its
/// output y [rows, C] and dy = d(loss)/d(y), writes dz = d(loss)/d(z) = dy * scale where
/// lo < y < hi (everywhere when there is no clamp), else 0. y strictly inside (lo, hi) is exactly
/// z * scale + shift inside it: the mask of relu_backward on the clamp's input. Serial, for rows
/// [0, rows) of [rows, C] data.
template <class T>
void epilogue_backward_rows(const Epilogue<T>& ep, const T* y, const T* dy, T* dz, Index rows, Index C) {
  const T* __restrict sc = ep.scale;
  const T lo = ep.lo, hi = ep.hi;
  for (Index r = 0; r < rows; ++r) {
    const T* __restrict yr = y + r * C;
    const T* __restrict gr = dy + r * C;
    T* __restrict dr = dz + r * C;
    if (ep.clamp && sc) {
#pragma omp simd
      for (Index c = 0; c < C; ++c) dr[c] = (yr[c] > lo && yr[c] < hi) ? gr[c] * sc[c] : T(0);
    } else if (ep.clamp) {
#pragma omp simd
      for (Index c = 0; c < C; ++c) dr[c] = (yr[c] > lo && yr[c] < hi) ? gr[c] : T(0);
    } else if (sc) {
#pragma omp simd
      for (Index c = 0; c < C; ++c) dr[c] = gr[c] * sc[c];
    } else {
#pragma omp simd
      for (Index c = 0; c < C; ++c) dr[c] = gr[c];
    }
  }
}

/// epilogue_backward_rows over all rows, on the pool.
template <class T>
void epilogue_backward(const Epilogue<T>& ep, const T* y, const T* dy, T* dz, Index rows, Index C) {
  const Epilogue<T> e = ep;
  keras::parallel_for(rows, 1, rows * C > 65536 ? keras::get_num_threads() : 1, [=](Index r0, Index r1) {
    epilogue_backward_rows(e, y + r0 * C, dy + r0 * C, dz + r0 * C, r1 - r0, C);
  });
}

}  // namespace keras::ops
