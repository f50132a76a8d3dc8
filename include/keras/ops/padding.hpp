// Geometry of 2-d sliding windows (convolution, depthwise convolution, pooling) with TF's padding
// rule, and ZeroPadding2D forward/backward.
//
// TF's rule (tensorflow/core/framework/kernel_shape_util.cc):
//   same : out = ceil(in / s); total = max((out-1)*s + (k-1)*d + 1 - in, 0); before = total / 2 (floor)
//   valid: out = ceil((in - (k-1)*d) / s)  (must be > 0)
// so stride 2 on an even size pads 0 before and 1 after.
#pragma once
#include <array>
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/shape.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"

namespace keras::ops {

/// Keeps a parameter out of template argument deduction (so nullptr can be passed for it).
template <class U>
using NoDeduce = std::type_identity_t<U>;

enum class Padding { Valid, Same };

/// "same" / "valid" (case-sensitive, as Keras) -> Padding; anything else throws ValueError.
inline Padding parse_padding(const std::string& p) {
  if (p == "same") return Padding::Same;
  if (p == "valid") return Padding::Valid;
  throw ValueError("Invalid padding '" + p + "': expected one of {'valid', 'same'}");
}

inline const char* padding_name(Padding p) { return p == Padding::Same ? "same" : "valid"; }

/// Everything a 2-d window kernel needs to know. Input [batch, in_h, in_w, in_c] (NHWC),
/// window k_h x k_w with strides and dilations, output [batch, out_h, out_w, ...].
/// Output pixel (oh, ow) reads input rows oh*stride_h - pad_top + kh*dil_h (outside = zero).
struct Conv2DGeometry {
  Index batch = 0, in_h = 0, in_w = 0, in_c = 0;
  Index k_h = 1, k_w = 1;
  Index stride_h = 1, stride_w = 1;
  Index dil_h = 1, dil_w = 1;
  Index out_h = 0, out_w = 0;
  Index pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  Index out_pixels() const { return batch * out_h * out_w; }  ///< GEMM rows
  Index patch_size() const { return k_h * k_w * in_c; }       ///< im2col row length
  Index in_size() const { return batch * in_h * in_w * in_c; }
  bool padded() const { return pad_top || pad_bottom || pad_left || pad_right; }
  /// 1x1, stride 1, unpadded: the convolution is one GEMM over the input as [N*H*W, C].
  bool is_pointwise() const { return k_h == 1 && k_w == 1 && stride_h == 1 && stride_w == 1 && !padded(); }
  bool operator==(const Conv2DGeometry&) const = default;
};

/// Pooling uses the same geometry (window = pool size, dilation 1).
using Pool2DGeometry = Conv2DGeometry;

namespace detail {
/// The interior output columns [ow0, ow1): those whose whole window (k_w taps, dilation dil_w) is
/// inside the input, the pixels the register-blocked kernels take; ow0 = ow1 = 0 when there are none.
inline void interior_columns(const Conv2DGeometry& g, Index& ow0, Index& ow1) {
  const Index last = g.in_w - 1 + g.pad_left - (g.k_w - 1) * g.dil_w;  // largest ow * stride_w allowed
  ow0 = (g.pad_left + g.stride_w - 1) / g.stride_w;
  ow1 = last >= 0 ? std::min<Index>(g.out_w, last / g.stride_w + 1) : 0;
  if (ow1 <= ow0) ow0 = ow1 = 0;
}

/// Valid tap range [lo, hi) along one axis for output position o: o*s - pad + k*d in [0, in).
inline void tap_range(Index o, Index s, Index pad, Index d, Index K, Index in, Index& lo, Index& hi) {
  const Index base = o * s - pad;  // input index of tap 0
  lo = base >= 0 ? 0 : (-base + d - 1) / d;
  const Index last = in - 1 - base;  // largest k*d allowed
  hi = last < 0 ? 0 : std::min<Index>(K, last / d + 1);
  if (hi < lo) hi = lo;
}

inline void window_1d(Index in, Index k, Index s, Index d, Padding p, const char* axis, Index& out, Index& before,
                      Index& after) {
  if (in <= 0 || k <= 0 || s <= 0 || d <= 0)
    throw ValueError(std::string("conv_geometry: ") + axis +
                     ": sizes, kernel, strides and dilation must be positive (got input " + std::to_string(in) +
                     ", kernel " + std::to_string(k) + ", stride " + std::to_string(s) + ", dilation " +
                     std::to_string(d) + ")");
  const Index eff_k = (k - 1) * d + 1;
  if (p == Padding::Same) {
    out = (in + s - 1) / s;
    const Index total = std::max<Index>((out - 1) * s + eff_k - in, 0);
    before = total / 2;
    after = total - before;
  } else {
    if (in < eff_k)
      throw ValueError(std::string("conv_geometry: ") + axis + ": the (dilated) window " + std::to_string(eff_k) +
                       " is larger than the input size " + std::to_string(in) +
                       " with padding 'valid': the output size would be <= 0");
    out = (in - eff_k + s) / s;  // ceil((in - eff_k + 1) / s)
    before = after = 0;
  }
}
}  // namespace detail

/// TF/Keras geometry. `batch` is left 0 (kernels taking tensors fill it in from the input).
inline Conv2DGeometry conv_geometry(Index in_h, Index in_w, Index in_c, Index k_h, Index k_w, Index stride_h,
                                    Index stride_w, Padding padding, Index dil_h = 1, Index dil_w = 1) {
  if (in_c <= 0)
    throw ValueError("conv_geometry: the number of input channels must be positive, got " + std::to_string(in_c));
  if ((stride_h > 1 || stride_w > 1) && (dil_h > 1 || dil_w > 1))
    throw ValueError("conv_geometry: strides > 1 are not supported in conjunction with dilation_rate > 1 (as Keras)");
  Conv2DGeometry g;
  g.in_h = in_h;
  g.in_w = in_w;
  g.in_c = in_c;
  g.k_h = k_h;
  g.k_w = k_w;
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  g.dil_h = dil_h;
  g.dil_w = dil_w;
  detail::window_1d(in_h, k_h, stride_h, dil_h, padding, "height", g.out_h, g.pad_top, g.pad_bottom);
  detail::window_1d(in_w, k_w, stride_w, dil_w, padding, "width", g.out_w, g.pad_left, g.pad_right);
  return g;
}

inline Conv2DGeometry conv_geometry(Index in_h, Index in_w, Index in_c, Index k_h, Index k_w, Index stride_h,
                                    Index stride_w, const std::string& padding, Index dil_h = 1, Index dil_w = 1) {
  return conv_geometry(in_h, in_w, in_c, k_h, k_w, stride_h, stride_w, parse_padding(padding), dil_h, dil_w);
}

/// The geometry of a window over an input zero-padded by pad = {top, bottom, left, right} first
/// (`g`: the geometry over the padded input), as a geometry over the unpadded input: the zero
/// padding joins the window's own (the output is the same; the padded copy is never needed).
inline Conv2DGeometry through_zero_padding(Conv2DGeometry g, const std::array<Index, 4>& pad) {
  g.in_h -= pad[0] + pad[1];
  g.in_w -= pad[2] + pad[3];
  g.pad_top += pad[0];
  g.pad_bottom += pad[1];
  g.pad_left += pad[2];
  g.pad_right += pad[3];
  return g;
}

/// Checks that `x` is [N, in_h, in_w, in_c] for `g` and returns g with batch = N.
template <class T>
Conv2DGeometry with_input(const Conv2DGeometry& g, const Tensor<T>& x, const char* who) {
  if (x.rank() != 4 || x.dim(1) != g.in_h || x.dim(2) != g.in_w || x.dim(3) != g.in_c)
    throw ShapeError(std::string(who) + ": expected an input of shape " + shape_str({-1, g.in_h, g.in_w, g.in_c}) +
                     ", got " + shape_str(x.shape()));
  Conv2DGeometry r = g;
  r.batch = x.dim(0);
  return r;
}

// ---------------------------------------------------------------------------------------------
// ZeroPadding2D: [N,H,W,C] -> [N, top+H+bottom, left+W+right, C]

/// y must hold N*(H+top+bottom)*(W+left+right)*C values; it is fully overwritten.
template <class T>
void zero_padding2d_forward(const T* x, Index n, Index h, Index w, Index c, Index top, Index bottom, Index left,
                            Index right, T* y) {
  const Index oh = h + top + bottom, ow = w + left + right;
  const Index rows = n * oh;
  keras::parallel_for(rows, 1, (rows * ow * c > 32768) ? keras::get_num_threads() : 1, [=](Index r_begin, Index r_end) {
    for (Index r = r_begin; r < r_end; ++r) {
      const Index b = r / oh, i = r % oh - top;
      T* out = y + r * ow * c;
      if (i < 0 || i >= h) {
        std::memset(out, 0, sizeof(T) * ow * c);
        continue;
      }
      if (left) std::memset(out, 0, sizeof(T) * left * c);
      std::memcpy(out + left * c, x + ((b * h + i) * w) * c, sizeof(T) * w * c);
      if (right) std::memset(out + (left + w) * c, 0, sizeof(T) * right * c);
    }
  });
}

/// dx[N,H,W,C] = the interior of dy (overwrite).
template <class T>
void zero_padding2d_backward(const T* dy, Index n, Index h, Index w, Index c, Index top, Index bottom, Index left,
                             Index right, T* dx) {
  const Index oh = h + top + bottom, ow = w + left + right;
  const Index rows = n * h;
  keras::parallel_for(rows, 1, (rows * w * c > 32768) ? keras::get_num_threads() : 1, [=](Index r_begin, Index r_end) {
    for (Index r = r_begin; r < r_end; ++r) {
      const Index b = r / h, i = r % h;
      std::memcpy(dx + r * w * c, dy + ((b * oh + i + top) * ow + left) * c, sizeof(T) * w * c);
    }
  });
}

template <class T>
void zero_padding2d_forward(const Tensor<T>& x, Index top, Index bottom, Index left, Index right, Tensor<T>& y) {
  if (x.rank() != 4) throw ShapeError("ZeroPadding2D: expected a 4-d input, got " + shape_str(x.shape()));
  if (top < 0 || bottom < 0 || left < 0 || right < 0) throw ValueError("ZeroPadding2D: padding must be >= 0");
  y.resize({x.dim(0), x.dim(1) + top + bottom, x.dim(2) + left + right, x.dim(3)});
  zero_padding2d_forward(x.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), top, bottom, left, right, y.data());
}

/// dx is resized to [N,H,W,C] where dy is [N, H+top+bottom, W+left+right, C].
template <class T>
void zero_padding2d_backward(const Tensor<T>& dy, Index top, Index bottom, Index left, Index right, Tensor<T>& dx) {
  if (dy.rank() != 4 || dy.dim(1) < top + bottom || dy.dim(2) < left + right)
    throw ShapeError("ZeroPadding2D backward: bad gradient shape " + shape_str(dy.shape()));
  const Index h = dy.dim(1) - top - bottom, w = dy.dim(2) - left - right;
  dx.resize({dy.dim(0), h, w, dy.dim(3)});
  zero_padding2d_backward(dy.data(), dy.dim(0), h, w, dy.dim(3), top, bottom, left, right, dx.data());
}

}  // namespace keras::ops
