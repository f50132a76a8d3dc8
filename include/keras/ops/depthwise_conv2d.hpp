// DepthwiseConv2D kernels (forward and backward), NHWC.
//
// input [N,H,W,C], kernel [KH,KW,C,M] (M = depth_multiplier), bias [C*M], output [N,OH,OW,C*M] with
// output channel c*M+m (Keras/TF order). For a kernel tap t = (kh,kw) the kernel row k[t, :] is
// contiguous and indexed exactly like the output channels, so every inner loop runs over the
// contiguous channel axis and vectorises (AVX2 FMAs with -march=native).
//
// Parallelism (OpenMP, keras::get_num_threads()):
//   forward, dkernel/dbias: over output rows (n, oh); dkernel/dbias use per-thread partial sums
//                           (caller-owned workspace) reduced in thread order -> deterministic.
//   dx:                     gathered per input row (n, ih) -> no scatter, no races, overwrite.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "epilogue.hpp"
#include "gemm.hpp"  // detail::thread_id
#include "padding.hpp"

namespace keras::ops {

/// Caller-owned scratch for depthwise_conv2d_backward (per-thread partial sums). Only grows.
template <class T>
struct DepthwiseConv2DWorkspace {
  Tensor<T> partial;
  Tensor<T> flipped;  ///< 3x3 kernel rotated by 180 degrees (the stride-1 dx fast path)
};

namespace detail {

/// Channel block for register accumulation: 4 AVX registers.
template <class T>
inline constexpr Index dw_block = 32 / sizeof(T) * 4;

/// y[0:CM] = bias + sum over taps of x_tap * k_tap for one output pixel, M == 1 (CM == C).
template <class T>
inline void dw_pixel_m1(const T* __restrict xrow0, Index xrow_stride, const T* __restrict k, const T* bias,
                        T* __restrict yo, Index C, Index kh0, Index kh1, Index kw0, Index kw1, Index KW, Index dil_h,
                        Index dil_w) {
  constexpr Index CB = dw_block<T>;
  Index c0 = 0;
  for (; c0 + CB <= C; c0 += CB) {
    T acc[CB];
    if (bias)
      for (Index j = 0; j < CB; ++j) acc[j] = bias[c0 + j];
    else
      for (Index j = 0; j < CB; ++j) acc[j] = T(0);
    for (Index kh = kh0; kh < kh1; ++kh) {
      const T* xr = xrow0 + kh * dil_h * xrow_stride + c0;
      const T* kr = k + kh * KW * C + c0;
      for (Index kw = kw0; kw < kw1; ++kw) {
        const T* xp = xr + kw * dil_w * C;
        const T* kp = kr + kw * C;
#pragma omp simd
        for (Index j = 0; j < CB; ++j) acc[j] += xp[j] * kp[j];
      }
    }
    for (Index j = 0; j < CB; ++j) yo[c0 + j] = acc[j];
  }
  if (c0 < C) {
    T* o = yo + c0;
    const Index n = C - c0;
    if (bias)
      std::memcpy(o, bias + c0, sizeof(T) * n);
    else
      std::fill(o, o + n, T(0));
    for (Index kh = kh0; kh < kh1; ++kh)
      for (Index kw = kw0; kw < kw1; ++kw) {
        const T* xp = xrow0 + kh * dil_h * xrow_stride + kw * dil_w * C + c0;
        const T* kp = k + (kh * KW + kw) * C + c0;
#pragma omp simd
        for (Index j = 0; j < n; ++j) o[j] += xp[j] * kp[j];
      }
  }
}

/// The per-channel part of an epilogue (scale, shift, clamp; no residual) on packets of channels
/// [c0, c0 + V): v * scale + shift, clamped. Off parts are the identity (scale 1, shift 0, +-inf).
template <class T>
struct DwPacketEpilogue {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  Packet sc, sh, lo, hi;
  DwPacketEpilogue(const Epilogue<T>* ep, Index c0) {
    using namespace Eigen::internal;
    const T inf = std::numeric_limits<T>::infinity();
    sc = ep && ep->scale ? ploadu<Packet>(ep->scale + c0) : pset1<Packet>(T(1));
    sh = ep && ep->shift ? ploadu<Packet>(ep->shift + c0) : pset1<Packet>(T(0));
    lo = pset1<Packet>(ep && ep->clamp ? ep->lo : -inf);
    hi = pset1<Packet>(ep && ep->clamp ? ep->hi : inf);
  }
  Packet operator()(const Packet& v) const {
    using namespace Eigen::internal;
    return pmin(pmax(pmadd(v, sc, sh), lo), hi);
  }
};

/// The scalar epilogue (no residual) of channel c: the leftover channels of a packet loop.
template <class T>
inline T dw_scalar_epilogue(const Epilogue<T>* ep, Index c, T v) {
  if (!ep) return v;
  if (ep->scale) v *= ep->scale[c];
  if (ep->shift) v += ep->shift[c];
  return ep->clamp ? std::min(std::max(v, ep->lo), ep->hi) : v;
}

/// d[c] = sum over the n (<= 4) taps j of dy_j[c] * k_j[c], in tap order, stored once: one input
/// pixel's gradient in a stride-2 3x3 depthwise backward (the sum of the general loop, which starts
/// from zero and adds the taps in the same order, without its read-modify-write of d per tap).
template <class T>
inline void dw_sum_taps(T* __restrict d, const T* const* dy, const T* const* k, int n, Index C) {
  switch (n) {
    case 0:
      std::fill(d, d + C, T(0));
      break;
    case 1: {
      const T* __restrict a0 = dy[0], * __restrict k0 = k[0];
#pragma omp simd
      for (Index c = 0; c < C; ++c) d[c] = a0[c] * k0[c];
      break;
    }
    case 2: {
      const T* __restrict a0 = dy[0], * __restrict k0 = k[0], * __restrict a1 = dy[1], * __restrict k1 = k[1];
#pragma omp simd
      for (Index c = 0; c < C; ++c) {
        T v = a0[c] * k0[c];
        v += a1[c] * k1[c];
        d[c] = v;
      }
      break;
    }
    default: {
      const T* __restrict a0 = dy[0], * __restrict k0 = k[0], * __restrict a1 = dy[1], * __restrict k1 = k[1];
      const T* __restrict a2 = dy[2], * __restrict k2 = k[2];
      const T* __restrict a3 = n > 3 ? dy[3] : dy[2];
      const T* __restrict k3 = n > 3 ? k[3] : k[2];
      if (n == 3) {
#pragma omp simd
        for (Index c = 0; c < C; ++c) {
          T v = a0[c] * k0[c];
          v += a1[c] * k1[c];
          v += a2[c] * k2[c];
          d[c] = v;
        }
      } else {
#pragma omp simd
        for (Index c = 0; c < C; ++c) {
          T v = a0[c] * k0[c];
          v += a1[c] * k1[c];
          v += a2[c] * k2[c];
          v += a3[c] * k3[c];
          d[c] = v;
        }
      }
    }
  }
}

/// Interior pixels of one output row for the common MobileNet case: 3x3 kernel, M == 1,
/// dilation 1, every tap inside the input. x00 points at the input of tap (0, 0) of the first pixel
/// (channel 0), y at that pixel's output. The 9 kernel vectors of a channel block stay in
/// registers and P pixels are computed at once (P independent FMA chains). ep (optional, without a
/// residual): the per-channel epilogue, applied in registers before the store.
/// R < 3: a row at the top or bottom edge where only R kernel rows fall inside the input; x00 and k
/// then point at the first of them (the taps outside are the padding's zeros, left out).
template <class T, int S, int R = 3>
inline void dw3x3_row_interior(const T* __restrict x00, Index xrow_stride, Index C, const T* __restrict k,
                               const T* __restrict bias, T* __restrict y, Index count,
                               const Epilogue<T>* ep = nullptr) {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  constexpr Index V = Eigen::internal::packet_traits<T>::size;
  constexpr Index P = 4;
  using Eigen::internal::ploadu;
  using Eigen::internal::pmadd;
  using Eigen::internal::pstoreu;
  Index c0 = 0;
  for (; c0 + V <= C; c0 += V) {
    Packet kk[9];
    for (int t = 0; t < 3 * R; ++t) kk[t] = ploadu<Packet>(k + t * C + c0);
    const Packet b = bias ? ploadu<Packet>(bias + c0) : Eigen::internal::pset1<Packet>(T(0));
    const DwPacketEpilogue<T> e(ep, c0);
    const T* xc = x00 + c0;
    Index o = 0;
    for (; o + P <= count; o += P) {
      Packet a0 = b, a1 = b, a2 = b, a3 = b;
      const T* xo = xc + o * S * C;
#define KERAS_DW_TAP(t)                                         \
  if constexpr ((t) < 3 * R) {                                  \
    const T* xt = xo + ((t) / 3) * xrow_stride + ((t) % 3) * C; \
    a0 = pmadd(ploadu<Packet>(xt), kk[t], a0);                  \
    a1 = pmadd(ploadu<Packet>(xt + S * C), kk[t], a1);          \
    a2 = pmadd(ploadu<Packet>(xt + 2 * S * C), kk[t], a2);      \
    a3 = pmadd(ploadu<Packet>(xt + 3 * S * C), kk[t], a3);      \
  }
      KERAS_DW_TAP(0);
      KERAS_DW_TAP(1);
      KERAS_DW_TAP(2);
      KERAS_DW_TAP(3);
      KERAS_DW_TAP(4);
      KERAS_DW_TAP(5);
      KERAS_DW_TAP(6);
      KERAS_DW_TAP(7);
      KERAS_DW_TAP(8);
#undef KERAS_DW_TAP
      T* yo = y + o * C + c0;
      pstoreu(yo, e(a0));
      pstoreu(yo + C, e(a1));
      pstoreu(yo + 2 * C, e(a2));
      pstoreu(yo + 3 * C, e(a3));
    }
    for (; o < count; ++o) {
      Packet a0 = b;
      const T* xo = xc + o * S * C;
      for (int t = 0; t < 3 * R; ++t) a0 = pmadd(ploadu<Packet>(xo + (t / 3) * xrow_stride + (t % 3) * C), kk[t], a0);
      pstoreu(y + o * C + c0, e(a0));
    }
  }
  if (c0 < C)  // leftover channels
    for (Index o = 0; o < count; ++o) {
      T* yo = y + o * C;
      for (Index c = c0; c < C; ++c) yo[c] = bias ? bias[c] : T(0);
      for (int t = 0; t < 3 * R; ++t) {
        const T* xp = x00 + (t / 3) * xrow_stride + (t % 3) * C + o * S * C;
        const T* kp = k + t * C;
        for (Index c = c0; c < C; ++c) yo[c] += xp[c] * kp[c];
      }
      for (Index c = c0; c < C; ++c) yo[c] = dw_scalar_epilogue(ep, c, yo[c]);
    }
}

/// dkernel/dbias contributions of the interior pixels of one output row (3x3, M == 1, dilation 1,
/// every tap inside the input): the 9 kernel-gradient vectors (and the bias gradient) of a channel
/// block accumulate in registers over the row, then are added to dk [9, C] and db [C] (db may be
/// nullptr). x00 and dy as in dw3x3_row_interior (x00: tap (0,0) of the first pixel; dy: its
/// output gradient).
template <class T, int S>
inline void dw3x3_row_dkernel(const T* __restrict x00, Index xrow_stride, Index C, const T* __restrict dy, Index count,
                              T* __restrict dk, T* __restrict db) {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  constexpr Index V = Eigen::internal::packet_traits<T>::size;
  using Eigen::internal::padd;
  using Eigen::internal::ploadu;
  using Eigen::internal::pmadd;
  using Eigen::internal::pstoreu;
  Index c0 = 0;
  for (; c0 + V <= C; c0 += V) {
    Packet acc[9];
    for (int t = 0; t < 9; ++t) acc[t] = Eigen::internal::pset1<Packet>(T(0));
    Packet bacc = Eigen::internal::pset1<Packet>(T(0));
    const T* xc = x00 + c0;
    for (Index o = 0; o < count; ++o) {
      const Packet g = ploadu<Packet>(dy + o * C + c0);
      const T* xo = xc + o * S * C;
      for (int t = 0; t < 9; ++t) acc[t] = pmadd(ploadu<Packet>(xo + (t / 3) * xrow_stride + (t % 3) * C), g, acc[t]);
      bacc = padd(bacc, g);
    }
    for (int t = 0; t < 9; ++t) pstoreu(dk + t * C + c0, padd(ploadu<Packet>(dk + t * C + c0), acc[t]));
    if (db) pstoreu(db + c0, padd(ploadu<Packet>(db + c0), bacc));
  }
  for (; c0 < C; ++c0)  // leftover channels
    for (Index o = 0; o < count; ++o) {
      const T g = dy[o * C + c0];
      const T* xo = x00 + o * S * C + c0;
      for (int t = 0; t < 9; ++t) dk[t * C + c0] += xo[(t / 3) * xrow_stride + (t % 3) * C] * g;
      if (db) db[c0] += g;
    }
}

inline void check_dw_geometry(const Conv2DGeometry& g, Index M, const char* who) {
  if (g.batch < 0 || g.in_h <= 0 || g.in_w <= 0 || g.in_c <= 0 || g.k_h <= 0 || g.k_w <= 0 || g.out_h <= 0 ||
      g.out_w <= 0 || g.stride_h <= 0 || g.stride_w <= 0 || g.dil_h <= 0 || g.dil_w <= 0 || M <= 0)
    throw ValueError(std::string(who) + ": invalid geometry (use conv_geometry to build it)");
}

}  // namespace detail

/// Raw-pointer forward. g.batch must be set. y [N,OH,OW,C*M] is overwritten; bias may be nullptr.
/// ep (optional): fused epilogue applied to each output row (n, oh) while it is cache-hot.
template <class T>
void depthwise_conv2d_forward(const Conv2DGeometry& g, Index M, const T* x, const T* kernel, const T* bias, T* y,
                              const Epilogue<T>* ep) {
  detail::check_dw_geometry(g, M, "depthwise_conv2d_forward");
  const Index C = g.in_c, CM = C * M, KW = g.k_w;
  const Index rows = g.batch * g.out_h;
  const Index xrow_stride = g.in_w * C;
  // the 3x3 interior kernel applies an epilogue without residual in registers
  const Epilogue<T>* row_ep = ep && !ep->empty() && !ep->residual ? ep : nullptr;
  if (ep && ep->empty()) ep = nullptr;
  keras::parallel_for(
      rows, 1, (rows * g.out_w * CM > 16384) ? keras::get_num_threads() : 1, [=](Index r_begin, Index r_end) {
        for (Index r = r_begin; r < r_end; ++r) {
          const Index n = r / g.out_h, oh = r % g.out_h;
          Index kh0, kh1;
          detail::tap_range(oh, g.stride_h, g.pad_top, g.dil_h, g.k_h, g.in_h, kh0, kh1);
          const Index ih0 = oh * g.stride_h - g.pad_top;  // input row of tap 0 (may be < 0)
          const T* ximg = x + n * g.in_h * xrow_stride;
          // 3x3, M == 1, dilation 1, stride 1 or 2, two or three kernel rows inside (the top and
          // bottom rows of a padded image have two): the interior pixels go through the
          // register-blocked kernel, the border pixels through the general loop below.
          Index fast0 = 0, fast1 = 0;  // interior pixel range [fast0, fast1)
          if (M == 1 && g.k_h == 3 && KW == 3 && g.dil_h == 1 && g.dil_w == 1 && g.stride_w <= 2 && kh1 - kh0 >= 2) {
            detail::interior_columns(g, fast0, fast1);
            if (fast1 > fast0) {
              const T* x00 = ximg + (ih0 + kh0) * xrow_stride + (fast0 * g.stride_w - g.pad_left) * C;
              const T* k0 = kernel + kh0 * 3 * C;
              T* y0 = y + (r * g.out_w + fast0) * CM;
              const Index count = fast1 - fast0;
              if (kh1 - kh0 == 3) {
                if (g.stride_w == 1)
                  detail::dw3x3_row_interior<T, 1>(x00, xrow_stride, C, k0, bias, y0, count, row_ep);
                else
                  detail::dw3x3_row_interior<T, 2>(x00, xrow_stride, C, k0, bias, y0, count, row_ep);
              } else {
                if (g.stride_w == 1)
                  detail::dw3x3_row_interior<T, 1, 2>(x00, xrow_stride, C, k0, bias, y0, count, row_ep);
                else
                  detail::dw3x3_row_interior<T, 2, 2>(x00, xrow_stride, C, k0, bias, y0, count, row_ep);
              }
            }
          }
          for (Index ow = 0; ow < g.out_w; ++ow) {
            if (ow == fast0 && fast1 > fast0) {
              ow = fast1 - 1;
              continue;
            }
            Index kw0, kw1;
            detail::tap_range(ow, g.stride_w, g.pad_left, g.dil_w, KW, g.in_w, kw0, kw1);
            const Index iw0 = ow * g.stride_w - g.pad_left;
            T* yo = y + (r * g.out_w + ow) * CM;
            // pointer to the (virtual) tap (0,0); only valid taps are dereferenced
            const T* xrow0 = ximg + ih0 * xrow_stride + iw0 * C;
            if (M == 1) {
              detail::dw_pixel_m1(xrow0, xrow_stride, kernel, bias, yo, C, kh0, kh1, kw0, kw1, KW, g.dil_h, g.dil_w);
              continue;
            }
            if (bias)
              std::memcpy(yo, bias, sizeof(T) * CM);
            else
              std::fill(yo, yo + CM, T(0));
            for (Index kh = kh0; kh < kh1; ++kh)
              for (Index kw = kw0; kw < kw1; ++kw) {
                const T* xp = xrow0 + kh * g.dil_h * xrow_stride + kw * g.dil_w * C;
                const T* kp = kernel + (kh * KW + kw) * CM;
                for (Index c = 0; c < C; ++c) {
                  const T xv = xp[c];
#pragma omp simd
                  for (Index m = 0; m < M; ++m) yo[c * M + m] += xv * kp[c * M + m];
                }
              }
          }
          if (!ep) continue;
          T* yr = y + r * g.out_w * CM;
          if (!row_ep || fast1 <= fast0) {
            ep->apply(yr, r * g.out_w, g.out_w, CM);
          } else {  // the interior applied it in registers; the border pixels here
            ep->apply(yr, r * g.out_w, fast0, CM);
            ep->apply(yr + fast1 * CM, r * g.out_w + fast1, g.out_w - fast1, CM);
          }
        }
      });
}
template <class T>
void depthwise_conv2d_forward(const Conv2DGeometry& g, Index M, const T* x, const T* kernel, const T* bias, T* y) {
  depthwise_conv2d_forward<T>(g, M, x, kernel, bias, y, nullptr);
}

/// Raw-pointer backward. dx [N,H,W,C] overwritten (nullptr: skip); dkernel [KH,KW,C,M] and
/// dbias [C*M] accumulated (nullptr: skip).
template <class T>
void depthwise_conv2d_backward(const Conv2DGeometry& g, Index M, const T* x, const T* kernel, const T* dy, T* dx,
                               T* dkernel, T* dbias, DepthwiseConv2DWorkspace<T>& ws) {
  detail::check_dw_geometry(g, M, "depthwise_conv2d_backward");
  const Index C = g.in_c, CM = C * M, KH = g.k_h, KW = g.k_w;
  const Index xrow_stride = g.in_w * C;
  const int nt = keras::get_num_threads();

  // 3x3, M == 1, dilation 1: register-blocked paths for the interior (the border goes through the
  // general loops). Stride 1 dx is the forward kernel run on dy with the kernel rotated by 180 degrees.
  const bool fast3x3 = M == 1 && KH == 3 && KW == 3 && g.dil_h == 1 && g.dil_w == 1 && g.stride_w <= 2;
  const bool fast_dx = fast3x3 && g.stride_h == 1 && g.stride_w == 1;
  const bool fast_dx2 = fast3x3 && g.stride_h == 2 && g.stride_w == 2;
  if (dx && fast_dx) {
    if (ws.flipped.size() < 9 * C) ws.flipped.resize({9 * C});
    for (Index t = 0; t < 9; ++t) std::memcpy(ws.flipped.data() + t * C, kernel + (8 - t) * C, sizeof(T) * C);
  }
  const Index dyrow_stride = g.out_w * CM;

  if (dx) {
    // dx[n, ih, iw, c] = sum over taps (kh, kw) hitting (ih, iw) of sum_m dy[n, oh, ow, c*M+m] * k[kh, kw, c, m]
    const Index rows = g.batch * g.in_h;
    const T* flipped = fast_dx ? ws.flipped.data() : nullptr;
    keras::parallel_for(rows, 1, (rows * g.in_w * CM > 16384) ? nt : 1, [=](Index r_begin, Index r_end) {
      for (Index r = r_begin; r < r_end; ++r) {
        const Index n = r / g.in_h, ih = r % g.in_h;
        T* dxrow = dx + r * xrow_stride;
        // stride 1: dx[ih, iw] = sum_{a,b} k[2-a, 2-b] * dy[ih + pad_top - 2 + a, iw + pad_left - 2 + b]
        const Index oh0 = ih + g.pad_top - 2, ow_off = g.pad_left - 2;
        if (fast_dx && oh0 >= 0 && oh0 + 2 < g.out_h) {
          // interior iw: iw + ow_off >= 0 and iw + ow_off + 2 < out_w
          const Index f0 = std::max<Index>(0, -ow_off), f1 = std::min<Index>(g.in_w, g.out_w - 2 - ow_off);
          if (f1 > f0) {
            const T* dy00 = dy + (n * g.out_h + oh0) * dyrow_stride + (f0 + ow_off) * C;
            detail::dw3x3_row_interior<T, 1>(dy00, dyrow_stride, C, flipped, nullptr, dxrow + f0 * C, f1 - f0);
            // the border pixels [iw0, iw1): zeroed, then every tap inside the output added
            auto border = [&](Index iw0, Index iw1) {
              std::fill(dxrow + iw0 * C, dxrow + iw1 * C, T(0));
              for (Index iw = iw0; iw < iw1; ++iw)
                for (Index kh = 0; kh < 3; ++kh)
                  for (Index kw = 0; kw < 3; ++kw) {
                    const Index ow = iw + g.pad_left - kw;
                    if (ow < 0 || ow >= g.out_w) continue;
                    T* d = dxrow + iw * C;
                    const T* dyp = dy + (n * g.out_h + oh0 + 2 - kh) * dyrow_stride + ow * C;
                    const T* kp = kernel + (kh * 3 + kw) * C;
#pragma omp simd
                    for (Index c = 0; c < C; ++c) d[c] += dyp[c] * kp[c];
                  }
            };
            border(0, f0);
            border(f1, g.in_w);
            continue;
          }
        }
        if (fast_dx2) {
          // stride 2: input pixel (ih, iw) is tap (kh, kw) of output (oh, ow) when ih + pad_top - kh
          // = 2 oh and iw + pad_left - kw = 2 ow: 1 or 2 kernel rows times 1 or 2 columns
          const T* rows_dy[2];
          Index rows_kh[2];
          int nrow = 0;
          for (Index kh = 0; kh < 3; ++kh) {
            const Index t = ih + g.pad_top - kh;
            if (t >= 0 && t % 2 == 0 && t / 2 < g.out_h) {
              rows_dy[nrow] = dy + (n * g.out_h + t / 2) * dyrow_stride;
              rows_kh[nrow++] = kh;
            }
          }
          for (Index iw = 0; iw < g.in_w; ++iw) {
            const T* dps[4];
            const T* kps[4];
            int taps = 0;
            for (int a = 0; a < nrow; ++a)
              for (Index kw = 0; kw < 3; ++kw) {
                const Index u = iw + g.pad_left - kw;
                if (u < 0 || u % 2 || u / 2 >= g.out_w) continue;
                dps[taps] = rows_dy[a] + (u / 2) * C;
                kps[taps++] = kernel + (rows_kh[a] * 3 + kw) * C;
              }
            detail::dw_sum_taps(dxrow + iw * C, dps, kps, taps, C);
          }
          continue;
        }
        std::fill(dxrow, dxrow + xrow_stride, T(0));
        for (Index kh = 0; kh < KH; ++kh) {
          const Index t = ih + g.pad_top - kh * g.dil_h;  // = oh * stride_h
          if (t < 0 || t % g.stride_h) continue;
          const Index oh = t / g.stride_h;
          if (oh >= g.out_h) continue;
          const T* dyrow = dy + ((n * g.out_h + oh) * g.out_w) * CM;
          for (Index kw = 0; kw < KW; ++kw) {
            const T* kp = kernel + (kh * KW + kw) * CM;
            // iw = ow*stride_w - pad_left + kw*dil_w  for ow in [0, OW), iw in [0, W)
            const Index off = kw * g.dil_w - g.pad_left;
            Index ow0 = off >= 0 ? 0 : (-off + g.stride_w - 1) / g.stride_w;
            Index ow1 = std::min<Index>(g.out_w, (g.in_w - 1 - off) >= 0 ? (g.in_w - 1 - off) / g.stride_w + 1 : 0);
            for (Index ow = ow0; ow < ow1; ++ow) {
              const Index iw = ow * g.stride_w + off;
              T* d = dxrow + iw * C;
              const T* dyp = dyrow + ow * CM;
              if (M == 1) {
#pragma omp simd
                for (Index c = 0; c < C; ++c) d[c] += dyp[c] * kp[c];
              } else {
                for (Index c = 0; c < C; ++c) {
                  T s = T(0);
                  for (Index m = 0; m < M; ++m) s += dyp[c * M + m] * kp[c * M + m];
                  d[c] += s;
                }
              }
            }
          }
        }
      }
    });
  }

  if (!dkernel && !dbias) return;
  const Index kpart = dkernel ? KH * KW * CM : 0;
  const Index part = kpart + (dbias ? CM : 0);
  const Index rows = g.batch * g.out_h;
  // partial sums per group of rows (a constant number of groups, not the thread count), added in
  // group order: the same result on any number of threads
  const Index groups = std::min<Index>(rows, 8);
  if (ws.partial.size() < groups * part) ws.partial.resize({groups * part});
  T* pbase = ws.partial.data();
  std::fill(pbase, pbase + groups * part, T(0));
  keras::parallel_chunks(groups, rows * g.out_w * CM > 16384 ? nt : 1, [&](Index grp, int) {
    T* pk = pbase + grp * part;
    T* pb = pk + kpart;
    for (Index r = rows * grp / groups, r_end = rows * (grp + 1) / groups; r < r_end; ++r) {
      const Index n = r / g.out_h, oh = r % g.out_h;
      Index kh0, kh1;
      detail::tap_range(oh, g.stride_h, g.pad_top, g.dil_h, KH, g.in_h, kh0, kh1);
      const Index ih0 = oh * g.stride_h - g.pad_top;
      const T* ximg = x + n * g.in_h * xrow_stride;
      Index fast0 = 0, fast1 = 0;  // interior pixels [fast0, fast1) of this row, as in the forward pass
      if (fast3x3 && dkernel && kh0 == 0 && kh1 == 3) {
        detail::interior_columns(g, fast0, fast1);
        if (fast1 > fast0) {
          const T* x00 = ximg + ih0 * xrow_stride + (fast0 * g.stride_w - g.pad_left) * C;
          const T* dy0 = dy + (r * g.out_w + fast0) * CM;
          if (g.stride_w == 1)
            detail::dw3x3_row_dkernel<T, 1>(x00, xrow_stride, C, dy0, fast1 - fast0, pk, dbias ? pb : nullptr);
          else
            detail::dw3x3_row_dkernel<T, 2>(x00, xrow_stride, C, dy0, fast1 - fast0, pk, dbias ? pb : nullptr);
        }
      }
      for (Index ow = 0; ow < g.out_w; ++ow) {
        if (ow == fast0 && fast1 > fast0) {
          ow = fast1 - 1;
          continue;
        }
        const T* dyp = dy + (r * g.out_w + ow) * CM;
        if (dbias) {
#pragma omp simd
          for (Index j = 0; j < CM; ++j) pb[j] += dyp[j];
        }
        if (!dkernel) continue;
        Index kw0, kw1;
        detail::tap_range(ow, g.stride_w, g.pad_left, g.dil_w, KW, g.in_w, kw0, kw1);
        const Index iw0 = ow * g.stride_w - g.pad_left;
        for (Index kh = kh0; kh < kh1; ++kh) {
          const T* xr = ximg + (ih0 + kh * g.dil_h) * xrow_stride;
          for (Index kw = kw0; kw < kw1; ++kw) {
            const T* xp = xr + (iw0 + kw * g.dil_w) * C;
            T* kp = pk + (kh * KW + kw) * CM;
            if (M == 1) {
#pragma omp simd
              for (Index c = 0; c < C; ++c) kp[c] += xp[c] * dyp[c];
            } else {
              for (Index c = 0; c < C; ++c) {
                const T xv = xp[c];
                for (Index m = 0; m < M; ++m) kp[c * M + m] += xv * dyp[c * M + m];
              }
            }
          }
        }
      }
    }
  });
  if (dkernel) add_partials_in_order(dkernel, pbase, groups, part, kpart);
  if (dbias) add_partials_in_order(dbias, pbase + kpart, groups, part, CM);
}

// ---------------------------------------------------------------------------------------------
// Tensor wrappers

namespace detail {
template <class T>
inline void check_dw_kernel(const Conv2DGeometry& g, const Tensor<T>& kernel, const Tensor<T>* bias, const char* who) {
  if (kernel.rank() != 4 || kernel.dim(0) != g.k_h || kernel.dim(1) != g.k_w || kernel.dim(2) != g.in_c)
    throw ShapeError(std::string(who) + ": depthwise kernel shape " + shape_str(kernel.shape()) + " does not match " +
                     shape_str({g.k_h, g.k_w, g.in_c, -1}));
  if (bias && bias->size() != g.in_c * kernel.dim(3))
    throw ShapeError(std::string(who) + ": bias shape " + shape_str(bias->shape()) + " does not match " +
                     std::to_string(g.in_c * kernel.dim(3)) + " output channels");
}
}  // namespace detail

/// y resized to [N, OH, OW, C*M]. g from conv_geometry (batch taken from x).
template <class T>
void depthwise_conv2d_forward(const Conv2DGeometry& geom, const Tensor<T>& x, const Tensor<T>& kernel,
                              const NoDeduce<Tensor<T>>* bias, Tensor<T>& y,
                              const NoDeduce<Epilogue<T>>* ep = nullptr) {
  const Conv2DGeometry g = with_input(geom, x, "DepthwiseConv2D");
  detail::check_dw_kernel(g, kernel, bias, "DepthwiseConv2D");
  const Index M = kernel.dim(3);
  y.resize({g.batch, g.out_h, g.out_w, g.in_c * M});
  depthwise_conv2d_forward<T>(g, M, x.data(), kernel.data(), bias ? bias->data() : nullptr, y.data(), ep);
}

/// dx resized to x's shape and overwritten; dkernel/dbias (already shaped) accumulated.
template <class T>
void depthwise_conv2d_backward(const Conv2DGeometry& geom, const Tensor<T>& x, const Tensor<T>& kernel,
                               const Tensor<T>& dy, NoDeduce<Tensor<T>>* dx, NoDeduce<Tensor<T>>* dkernel,
                               NoDeduce<Tensor<T>>* dbias, DepthwiseConv2DWorkspace<T>& ws) {
  const Conv2DGeometry g = with_input(geom, x, "DepthwiseConv2D backward");
  detail::check_dw_kernel(g, kernel, dbias, "DepthwiseConv2D backward");
  const Index M = kernel.dim(3);
  if (dy.shape() != Shape{g.batch, g.out_h, g.out_w, g.in_c * M})
    throw ShapeError("DepthwiseConv2D backward: output gradient shape " + shape_str(dy.shape()) + " does not match " +
                     shape_str({g.batch, g.out_h, g.out_w, g.in_c * M}));
  if (dkernel && dkernel->shape() != kernel.shape())
    throw ShapeError("DepthwiseConv2D backward: kernel gradient shape " + shape_str(dkernel->shape()) +
                     " != " + shape_str(kernel.shape()));
  if (dx) dx->resize(x.shape());
  depthwise_conv2d_backward(g, M, x.data(), kernel.data(), dy.data(), dx ? dx->data() : nullptr,
                            dkernel ? dkernel->data() : nullptr, dbias ? dbias->data() : nullptr, ws);
}

}  // namespace keras::ops
