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

namespace keras::ops {

template <class T>
struct Epilogue {
  const T* scale = nullptr;     ///< per channel [C]; nullptr: 1
  const T* shift = nullptr;     ///< per channel [C]; nullptr: 0
  bool clamp = false;           ///< apply [lo, hi]
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

}  // namespace keras::ops
