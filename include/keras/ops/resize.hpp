// Image resizing of NHWC batches, forward and backward, as tf.image.resize (v2, antialias=False),
// the op behind Keras's Resizing and UpSampling2D(interpolation="bilinear"):
//   bilinear: half_pixel_centers: in = (o + 0.5) * scale - 0.5 (scale = in_size / out_size);
//             lower = max(floor(in), 0), upper = min(ceil(in), in_size - 1), lerp = in - floor(in);
//             top = tl + (tr - tl) * lx, bottom likewise, y = top + (bottom - top) * ly (TF's order).
//   nearest:  half_pixel_centers: in = min(floor((o + 0.5) * scale), in_size - 1).
// A window (crop) of the input may be resized instead of the whole image (crop_to_aspect_ratio).
// Backward scatters each output gradient to its taps with the same weights.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace keras::ops {

/// The part of the input [top, top + height) x [left, left + width) that is resized.
struct ResizeWindow {
  Index top = 0, left = 0, height = 0, width = 0;
};

namespace detail {
template <class T>
struct ResizeTaps {
  std::vector<Index> lo, hi;
  std::vector<T> lerp;
};
/// Taps along one axis: `out` outputs from `in` inputs starting at `offset`.
template <class T>
ResizeTaps<T> resize_taps(Index in, Index out, Index offset, bool bilinear) {
  ResizeTaps<T> t;
  t.lo.resize(out);
  t.hi.resize(out);
  t.lerp.assign(out, T(0));
  const T scale = static_cast<T>(in) / static_cast<T>(out);
  for (Index o = 0; o < out; ++o) {
    if (bilinear) {
      const T src = (static_cast<T>(o) + T(0.5)) * scale - T(0.5);
      const T f = std::floor(src);
      t.lo[o] = std::max<Index>(static_cast<Index>(f), 0) + offset;
      t.hi[o] = std::min<Index>(static_cast<Index>(std::ceil(src)), in - 1) + offset;
      t.lerp[o] = src - f;
    } else {
      t.lo[o] = t.hi[o] =
          std::min<Index>(static_cast<Index>(std::floor((static_cast<T>(o) + T(0.5)) * scale)), in - 1) + offset;
    }
  }
  return t;
}
}  // namespace detail

/// y [N, out_h, out_w, C] = resize(x[:, window, :]).
template <class T>
void resize_forward(const Tensor<T>& x, ResizeWindow win, Index out_h, Index out_w, bool bilinear, Tensor<T>& y) {
  if (x.rank() != 4 || win.height <= 0 || win.width <= 0 || out_h <= 0 || out_w <= 0 || win.top < 0 || win.left < 0 ||
      win.top + win.height > x.dim(1) || win.left + win.width > x.dim(2))
    throw ValueError("resize: invalid window or output size for input " + shape_str(x.shape()));
  const Index N = x.dim(0), H = x.dim(1), W = x.dim(2), C = x.dim(3);
  const auto ty = detail::resize_taps<T>(win.height, out_h, win.top, bilinear);
  const auto tx = detail::resize_taps<T>(win.width, out_w, win.left, bilinear);
  y.resize({N, out_h, out_w, C});
  for (Index n = 0; n < N; ++n)
    for (Index oh = 0; oh < out_h; ++oh) {
      const T* r0 = x.data() + (n * H + ty.lo[oh]) * W * C;
      const T* r1 = x.data() + (n * H + ty.hi[oh]) * W * C;
      T* yp = y.data() + ((n * out_h + oh) * out_w) * C;
      for (Index ow = 0; ow < out_w; ++ow, yp += C) {
        const Index a = tx.lo[ow] * C, b = tx.hi[ow] * C;
        const T lx = tx.lerp[ow], ly = ty.lerp[oh];
        for (Index c = 0; c < C; ++c) {
          const T top = r0[a + c] + (r0[b + c] - r0[a + c]) * lx;
          const T bottom = r1[a + c] + (r1[b + c] - r1[a + c]) * lx;
          yp[c] = top + (bottom - top) * ly;
        }
      }
    }
}

/// dx (resized to x_shape, overwritten) = the adjoint of resize_forward applied to dy.
template <class T>
void resize_backward(const Shape& x_shape, ResizeWindow win, const Tensor<T>& dy, bool bilinear, Tensor<T>& dx) {
  const Index N = x_shape[0], H = x_shape[1], W = x_shape[2], C = x_shape[3];
  const Index out_h = dy.dim(1), out_w = dy.dim(2);
  const auto ty = detail::resize_taps<T>(win.height, out_h, win.top, bilinear);
  const auto tx = detail::resize_taps<T>(win.width, out_w, win.left, bilinear);
  dx.resize(x_shape);
  dx.setZero();
  for (Index n = 0; n < N; ++n)
    for (Index oh = 0; oh < out_h; ++oh) {
      T* r0 = dx.data() + (n * H + ty.lo[oh]) * W * C;
      T* r1 = dx.data() + (n * H + ty.hi[oh]) * W * C;
      const T* g = dy.data() + ((n * out_h + oh) * out_w) * C;
      const T ly = ty.lerp[oh];
      for (Index ow = 0; ow < out_w; ++ow, g += C) {
        const Index a = tx.lo[ow] * C, b = tx.hi[ow] * C;
        const T lx = tx.lerp[ow];
        const T w00 = (T(1) - lx) * (T(1) - ly), w01 = lx * (T(1) - ly), w10 = (T(1) - lx) * ly, w11 = lx * ly;
        for (Index c = 0; c < C; ++c) {
          r0[a + c] += w00 * g[c];
          r0[b + c] += w01 * g[c];
          r1[a + c] += w10 * g[c];
          r1[b + c] += w11 * g[c];
        }
      }
    }
}

}  // namespace keras::ops
