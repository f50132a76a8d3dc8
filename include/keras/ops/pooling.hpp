// Pooling kernels (forward and backward), NHWC: MaxPooling2D, AveragePooling2D,
// GlobalAveragePooling2D. Inner loops run over the contiguous channel axis.
//
// TF semantics: 'same' padding never contributes: max ignores padded positions and the average
// divides by the number of non-padded elements of each window. Max-pool gradients go to the first
// maximum of the window in row-major (kh, kw) order.
//
// Parallelism: forward over output rows (n, oh); average backward gathers per input row (n, ih);
// max backward scatters into dx, so work is split into (image, channel range) tasks that own
// disjoint parts of dx. No races, deterministic.
#pragma once
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "padding.hpp"

namespace keras::ops {

/// Geometry of a pooling window. A stride <= 0 means "same as the pool size" (Keras strides=None).
inline Pool2DGeometry pool_geometry(Index in_h, Index in_w, Index channels, Index pool_h, Index pool_w, Index stride_h,
                                    Index stride_w, Padding padding) {
  if (stride_h <= 0) stride_h = pool_h;
  if (stride_w <= 0) stride_w = pool_w;
  return conv_geometry(in_h, in_w, channels, pool_h, pool_w, stride_h, stride_w, padding);
}
inline Pool2DGeometry pool_geometry(Index in_h, Index in_w, Index channels, Index pool_h, Index pool_w, Index stride_h,
                                    Index stride_w, const std::string& padding) {
  return pool_geometry(in_h, in_w, channels, pool_h, pool_w, stride_h, stride_w, parse_padding(padding));
}

namespace detail {
inline void check_pool_geometry(const Pool2DGeometry& g, const char* who) {
  if (g.batch < 0 || g.in_h <= 0 || g.in_w <= 0 || g.in_c <= 0 || g.k_h <= 0 || g.k_w <= 0 || g.out_h <= 0 ||
      g.out_w <= 0 || g.stride_h <= 0 || g.stride_w <= 0 || g.dil_h != 1 || g.dil_w != 1)
    throw ValueError(std::string(who) + ": invalid geometry (use pool_geometry to build it)");
}
inline bool pool_parallel(Index work) { return work > 32768; }

/// One output pixel's window of a pooling forward pass: the taps [kh0, kh1) x [kw0, kw1) that lie
/// inside the input image `ximg` (tap (0, 0) at input row ih0, column iw0, which may be negative).
template <class T>
struct PoolWindow {
  const T* ximg;
  Index row_stride, C, ih0, iw0, kh0, kh1, kw0, kw1;
  const T* tap(Index kh, Index kw) const { return ximg + (ih0 + kh) * row_stride + (iw0 + kw) * C; }
  Index count() const { return (kh1 - kh0) * (kw1 - kw0); }
};
/// The loop of a pooling forward pass: output rows (n, oh) split over threads; pixel(window, yo)
/// writes the C outputs yo of each output pixel.
template <class T, class Pixel>
void pool2d_forward_windows(const Pool2DGeometry& g, const T* x, T* y, Pixel pixel) {
  const Index C = g.in_c, rows = g.batch * g.out_h, xrs = g.in_w * C;
  keras::parallel_for(rows, 1, pool_parallel(rows * g.out_w * C) ? keras::get_num_threads() : 1,
                      [=](Index r_begin, Index r_end) {
                        for (Index r = r_begin; r < r_end; ++r) {
                          const Index n = r / g.out_h, oh = r % g.out_h;
                          PoolWindow<T> w{x + n * g.in_h * xrs, xrs, C, oh * g.stride_h - g.pad_top, 0, 0, 0, 0, 0};
                          tap_range(oh, g.stride_h, g.pad_top, 1, g.k_h, g.in_h, w.kh0, w.kh1);
                          for (Index ow = 0; ow < g.out_w; ++ow) {
                            w.iw0 = ow * g.stride_w - g.pad_left;
                            tap_range(ow, g.stride_w, g.pad_left, 1, g.k_w, g.in_w, w.kw0, w.kw1);
                            pixel(w, y + (r * g.out_w + ow) * C);
                          }
                        }
                      });
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// MaxPooling2D

/// y [N,OH,OW,C] overwritten.
template <class T>
void max_pool2d_forward(const Pool2DGeometry& g, const T* x, T* y) {
  detail::check_pool_geometry(g, "max_pool2d_forward");
  detail::pool2d_forward_windows(g, x, y, [](const detail::PoolWindow<T>& w, T* yo) {
    const Index C = w.C;
    if (w.count() == 0) {  // window entirely in padding (not produced by TF's rule)
      std::fill(yo, yo + C, T(0));
      return;
    }
    std::memcpy(yo, w.tap(w.kh0, w.kw0), sizeof(T) * C);
    for (Index kh = w.kh0; kh < w.kh1; ++kh)
      for (Index kw = w.kw0; kw < w.kw1; ++kw) {
        const T* xp = w.tap(kh, kw);
#pragma omp simd
        for (Index c = 0; c < C; ++c) yo[c] = xp[c] > yo[c] ? xp[c] : yo[c];
      }
  });
}

/// dx [N,H,W,C] overwritten: each dy goes to the first maximum of its window (x is the forward input).
template <class T>
void max_pool2d_backward(const Pool2DGeometry& g, const T* x, const T* dy, T* dx) {
  detail::check_pool_geometry(g, "max_pool2d_backward");
  const Index C = g.in_c, xrs = g.in_w * C;
  const int nt = keras::get_num_threads();
  // tasks: (image, channel range); a channel range is a multiple of 8 channels
  Index splits =
      g.batch >= nt ? 1 : std::max<Index>(1, std::min<Index>((nt + g.batch - 1) / std::max<Index>(g.batch, 1), C / 8));
  const Index tasks = g.batch * splits;
  constexpr Index CB = 64;
  keras::parallel_for(
      tasks, 1, (detail::pool_parallel(g.in_size()) && tasks > 1) ? nt : 1, [=](Index task_begin, Index task_end) {
        for (Index task = task_begin; task < task_end; ++task) {
          const Index n = task / splits, s = task % splits;
          const Index c0 = (C * s / splits) / 8 * 8, c1 = s + 1 == splits ? C : (C * (s + 1) / splits) / 8 * 8;
          const T* ximg = x + n * g.in_h * xrs;
          T* dximg = dx + n * g.in_h * xrs;
          for (Index p = 0; p < g.in_h * g.in_w; ++p) std::fill(dximg + p * C + c0, dximg + p * C + c1, T(0));
          for (Index oh = 0; oh < g.out_h; ++oh) {
            Index kh0, kh1;
            detail::tap_range(oh, g.stride_h, g.pad_top, 1, g.k_h, g.in_h, kh0, kh1);
            const Index ih0 = oh * g.stride_h - g.pad_top;
            for (Index ow = 0; ow < g.out_w; ++ow) {
              Index kw0, kw1;
              detail::tap_range(ow, g.stride_w, g.pad_left, 1, g.k_w, g.in_w, kw0, kw1);
              if (kh0 >= kh1 || kw0 >= kw1) continue;
              const Index iw0 = ow * g.stride_w - g.pad_left;
              const T* dyp = dy + ((n * g.out_h + oh) * g.out_w + ow) * C;
              for (Index cb = c0; cb < c1; cb += CB) {
                const Index len = std::min(CB, c1 - cb);
                T best[CB];
                Index arg[CB];
                const Index first = (ih0 + kh0) * xrs + (iw0 + kw0) * C;
                for (Index j = 0; j < len; ++j) {
                  best[j] = ximg[first + cb + j];
                  arg[j] = first;
                }
                for (Index kh = kh0; kh < kh1; ++kh)
                  for (Index kw = kw0; kw < kw1; ++kw) {
                    const Index off = (ih0 + kh) * xrs + (iw0 + kw) * C;
                    const T* xp = ximg + off + cb;
#pragma omp simd
                    for (Index j = 0; j < len; ++j) {
                      const bool gt = xp[j] > best[j];  // strict: the first maximum wins ties
                      best[j] = gt ? xp[j] : best[j];
                      arg[j] = gt ? off : arg[j];
                    }
                  }
                for (Index j = 0; j < len; ++j) dximg[arg[j] + cb + j] += dyp[cb + j];
              }
            }
          }
        }
      });
}

// ---------------------------------------------------------------------------------------------
// AveragePooling2D

/// y [N,OH,OW,C] overwritten; divides by the number of non-padded elements of each window.
template <class T>
void avg_pool2d_forward(const Pool2DGeometry& g, const T* x, T* y) {
  detail::check_pool_geometry(g, "avg_pool2d_forward");
  detail::pool2d_forward_windows(g, x, y, [](const detail::PoolWindow<T>& w, T* yo) {
    const Index C = w.C;
    std::fill(yo, yo + C, T(0));
    const Index count = w.count();
    if (count <= 0) return;
    for (Index kh = w.kh0; kh < w.kh1; ++kh)
      for (Index kw = w.kw0; kw < w.kw1; ++kw) {
        const T* xp = w.tap(kh, kw);
#pragma omp simd
        for (Index c = 0; c < C; ++c) yo[c] += xp[c];
      }
    const T inv = T(1) / T(count);
#pragma omp simd
    for (Index c = 0; c < C; ++c) yo[c] *= inv;
  });
}

/// dx [N,H,W,C] overwritten (gathered per input row).
template <class T>
void avg_pool2d_backward(const Pool2DGeometry& g, const T* dy, T* dx) {
  detail::check_pool_geometry(g, "avg_pool2d_backward");
  const Index C = g.in_c, rows = g.batch * g.in_h, xrs = g.in_w * C;
  keras::parallel_for(
      rows, 1, (detail::pool_parallel(rows * xrs)) ? keras::get_num_threads() : 1, [=](Index r_begin, Index r_end) {
        for (Index r = r_begin; r < r_end; ++r) {
          const Index n = r / g.in_h, ih = r % g.in_h;
          T* dxrow = dx + r * xrs;
          std::fill(dxrow, dxrow + xrs, T(0));
          for (Index kh = 0; kh < g.k_h; ++kh) {
            const Index t = ih + g.pad_top - kh;
            if (t < 0 || t % g.stride_h) continue;
            const Index oh = t / g.stride_h;
            if (oh >= g.out_h) continue;
            Index kh0, kh1;
            detail::tap_range(oh, g.stride_h, g.pad_top, 1, g.k_h, g.in_h, kh0, kh1);
            const T* dyrow = dy + ((n * g.out_h + oh) * g.out_w) * C;
            for (Index kw = 0; kw < g.k_w; ++kw) {
              const Index off = kw - g.pad_left;  // iw = ow*stride_w + off
              const Index ow0 = off >= 0 ? 0 : (-off + g.stride_w - 1) / g.stride_w;
              const Index ow1 =
                  std::min<Index>(g.out_w, g.in_w - 1 - off >= 0 ? (g.in_w - 1 - off) / g.stride_w + 1 : 0);
              for (Index ow = ow0; ow < ow1; ++ow) {
                Index kw0, kw1;
                detail::tap_range(ow, g.stride_w, g.pad_left, 1, g.k_w, g.in_w, kw0, kw1);
                const T inv = T(1) / T((kh1 - kh0) * (kw1 - kw0));
                T* d = dxrow + (ow * g.stride_w + off) * C;
                const T* dyp = dyrow + ow * C;
#pragma omp simd
                for (Index c = 0; c < C; ++c) d[c] += dyp[c] * inv;
              }
            }
          }
        }
      });
}

// ---------------------------------------------------------------------------------------------
// GlobalAveragePooling2D: [N,H,W,C] -> [N,C]

template <class T>
void global_avg_pool2d_forward(const T* x, Index n, Index hw, Index c, T* y) {
  keras::parallel_for(n, 1, (detail::pool_parallel(n * hw * c) && n > 1) ? keras::get_num_threads() : 1,
                      [=](Index b_begin, Index b_end) {
                        for (Index b = b_begin; b < b_end; ++b) {
                          T* yo = y + b * c;
                          std::fill(yo, yo + c, T(0));
                          const T* xi = x + b * hw * c;
                          for (Index p = 0; p < hw; ++p) {
                            const T* xp = xi + p * c;
#pragma omp simd
                            for (Index j = 0; j < c; ++j) yo[j] += xp[j];
                          }
                          const T inv = T(1) / T(hw);
#pragma omp simd
                          for (Index j = 0; j < c; ++j) yo[j] *= inv;
                        }
                      });
}

template <class T>
void global_avg_pool2d_backward(const T* dy, Index n, Index hw, Index c, T* dx) {
  const Index rows = n * hw;
  const T inv = T(1) / T(hw);
  keras::parallel_for(rows, 1, (detail::pool_parallel(rows * c)) ? keras::get_num_threads() : 1,
                      [=](Index r_begin, Index r_end) {
                        for (Index r = r_begin; r < r_end; ++r) {
                          const T* d = dy + (r / hw) * c;
                          T* o = dx + r * c;
#pragma omp simd
                          for (Index j = 0; j < c; ++j) o[j] = d[j] * inv;
                        }
                      });
}

// ---------------------------------------------------------------------------------------------
// Tensor wrappers (batch taken from the input / gradient; outputs resized)

namespace detail {
template <class T>
inline Pool2DGeometry pool_with_grad(const Pool2DGeometry& g, const Tensor<T>& dy, const char* who) {
  if (dy.rank() != 4 || dy.dim(1) != g.out_h || dy.dim(2) != g.out_w || dy.dim(3) != g.in_c)
    throw ShapeError(std::string(who) + ": output gradient shape " + shape_str(dy.shape()) + " does not match " +
                     shape_str({-1, g.out_h, g.out_w, g.in_c}));
  Pool2DGeometry r = g;
  r.batch = dy.dim(0);
  return r;
}
}  // namespace detail

template <class T>
void max_pool2d_forward(const Pool2DGeometry& geom, const Tensor<T>& x, Tensor<T>& y) {
  const Pool2DGeometry g = with_input(geom, x, "MaxPooling2D");
  y.resize({g.batch, g.out_h, g.out_w, g.in_c});
  max_pool2d_forward(g, x.data(), y.data());
}

template <class T>
void max_pool2d_backward(const Pool2DGeometry& geom, const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dx) {
  const Pool2DGeometry g = with_input(geom, x, "MaxPooling2D backward");
  if (detail::pool_with_grad(geom, dy, "MaxPooling2D backward").batch != g.batch)
    throw ShapeError("MaxPooling2D backward: batch of the gradient differs from the input's");
  dx.resize(x.shape());
  max_pool2d_backward(g, x.data(), dy.data(), dx.data());
}

template <class T>
void avg_pool2d_forward(const Pool2DGeometry& geom, const Tensor<T>& x, Tensor<T>& y) {
  const Pool2DGeometry g = with_input(geom, x, "AveragePooling2D");
  y.resize({g.batch, g.out_h, g.out_w, g.in_c});
  avg_pool2d_forward(g, x.data(), y.data());
}

template <class T>
void avg_pool2d_backward(const Pool2DGeometry& geom, const Tensor<T>& dy, Tensor<T>& dx) {
  const Pool2DGeometry g = detail::pool_with_grad(geom, dy, "AveragePooling2D backward");
  dx.resize({g.batch, g.in_h, g.in_w, g.in_c});
  avg_pool2d_backward(g, dy.data(), dx.data());
}

/// [N,H,W,C] -> y [N,C]
template <class T>
void global_avg_pool2d_forward(const Tensor<T>& x, Tensor<T>& y) {
  if (x.rank() != 4) throw ShapeError("GlobalAveragePooling2D: expected a 4-d input, got " + shape_str(x.shape()));
  y.resize({x.dim(0), x.dim(3)});
  global_avg_pool2d_forward(x.data(), x.dim(0), x.dim(1) * x.dim(2), x.dim(3), y.data());
}

/// dy [N,C] -> dx with the input's shape [N,H,W,C]
template <class T>
void global_avg_pool2d_backward(const Tensor<T>& dy, const Shape& input_shape, Tensor<T>& dx) {
  if (input_shape.size() != 4 || dy.rank() != 2 || dy.dim(0) != input_shape[0] || dy.dim(1) != input_shape[3])
    throw ShapeError("GlobalAveragePooling2D backward: gradient shape " + shape_str(dy.shape()) +
                     " does not match input shape " + shape_str(input_shape));
  dx.resize(input_shape);
  global_avg_pool2d_backward(dy.data(), input_shape[0], input_shape[1] * input_shape[2], input_shape[3], dx.data());
}

}  // namespace keras::ops
