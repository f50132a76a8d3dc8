// Conv2D kernels (forward and backward), NHWC, Keras kernel layout [KH, KW, C, F].
//
// The kernel [KH, KW, C, F] row-major *is* the GEMM matrix [KH*KW*C, F], so
//   y[N*OH*OW, F] = im2col(x)[N*OH*OW, KH*KW*C] * W[KH*KW*C, F] (+ bias).
// A 1x1 stride-1 unpadded convolution skips im2col: x is already the matrix [N*H*W, C].
//
// Work is cut into blocks of output rows (pixels). Each OpenMP thread takes whole blocks, builds
// the block's im2col rows in its own slice of the caller-owned workspace (sized to stay in L2)
// and runs a serial Eigen GEMM on it, so there is exactly one level of parallelism.
//
// Backward:
//   dW[P, F] += im2col(x)^T * dy        (per-thread partial sums, reduced in thread order)
//   db[F]    += sum of dy rows
//   dx        = col2im(dy * W^T)        (scatter-add; threads own whole images, so no races)
// Results are deterministic for a given thread count.
#pragma once
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"
#include "epilogue.hpp"
#include "gemm.hpp"
#include "padding.hpp"

namespace keras::ops {

/// Caller-owned scratch memory for conv2d_forward / conv2d_backward. Buffers only grow; keep one
/// per layer (or share one between layers run sequentially) and reuse it for every batch.
template <class T>
struct Conv2DWorkspace {
  Tensor<T> col;      ///< per-thread im2col blocks [threads, block_rows, KH*KW*C]
  Tensor<T> dcol;     ///< per-thread dcol blocks (backward)
  Tensor<T> partial;  ///< per-thread partial sums of dkernel and dbias (backward)
  Tensor<T> packed;   ///< the kernel packed for the own GEMM micro-kernel (gemm_kernel.hpp), per call
  /// Target size of one thread's im2col block; ~L2-sized blocks keep im2col + GEMM cache-hot.
  Index block_bytes = 256 * 1024;

  /// Bytes currently held.
  Index bytes() const { return Index(sizeof(T)) * (col.size() + dcol.size() + partial.size() + packed.size()); }
};

/// The calling thread's workspace (reentrant inference: one per thread and scalar type, kept for
/// the thread's lifetime; it holds at most one im2col block per kerascpp thread).
template <class T>
Conv2DWorkspace<T>*& workspace_override() {
  thread_local Conv2DWorkspace<T>* ws = nullptr;
  return ws;
}
/// (While a caller has set workspace_override on this thread, e.g. engine/sliced_runner.hpp for a
/// batch slice, that workspace instead: its owner can then size it whichever thread runs.)
template <class T>
Conv2DWorkspace<T>& thread_workspace() {
  if (Conv2DWorkspace<T>* o = workspace_override<T>()) return *o;
  thread_local Conv2DWorkspace<T> ws;
  return ws;
}

namespace detail {

/// Weight-gradient partial sums of the backward pass: this many groups of work items at most, a
/// constant (not the thread count), so the sums are added in the same order on any number of threads.
inline constexpr Index kConvReduceGroups = 4;

inline void grow(auto& t, Index n) {
  if (t.size() < n) t.resize({n});
}

/// Rows per block: about `bytes` of im2col data, at least 16 and at most 4096, a multiple of 8.
inline Index conv_block_rows(Index bytes, Index row_elems, Index elem_size, Index total_rows) {
  Index r = bytes / std::max<Index>(1, row_elems * elem_size);
  r = std::clamp<Index>(r, 16, 4096) / 8 * 8;
  return std::max<Index>(1, std::min(r, total_rows));
}

/// Rows per block of a pointwise (1x1) convolution: x is already the GEMM's lhs, so a block only
/// bounds the output rows one GEMM call writes (about 4 * `bytes` of output, kept cache-hot for the
/// epilogue). Each call re-packs the whole weight matrix, so blocks of a few rows (sized like an
/// im2col block) spent as much time packing the weights as multiplying: >= 128 rows here.
inline Index pointwise_block_rows(Index bytes, Index F, Index elem_size, Index total_rows) {
  Index r = 4 * bytes / std::max<Index>(1, F * elem_size);
  r = std::clamp<Index>(r, 16, 4096) / 8 * 8;
  return std::max<Index>(1, std::min(r, total_rows));
}

/// Copies n values; short runs (a 3x3 window's row of 3 channels: 9 floats) in packets inline
/// rather than through a call to memcpy.
template <class T>
inline void copy_run(T* dst, const T* src, Index n) {
  if (n > 64) {
    std::memcpy(dst, src, sizeof(T) * n);
    return;
  }
  using Vec = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<Vec>(dst, n) = Eigen::Map<const Vec>(src, n);
}

/// Writes the im2col rows of output pixels [r0, r0+rows) into col (row stride P = KH*KW*C).
template <class T>
inline void im2col_rows(const Conv2DGeometry& g, const T* x, Index r0, Index rows, T* col) {
  const Index C = g.in_c, KW = g.k_w, P = g.patch_size();
  const Index ohw = g.out_h * g.out_w;
  const bool contiguous_w = g.dil_w == 1;
  // the output pixel (n, oh, ow) of row r, advanced row by row (no division per row)
  Index n = r0 / ohw, oh = (r0 % ohw) / g.out_w, ow = r0 % g.out_w;
  for (Index r = r0; r < r0 + rows; ++r, ++ow) {
    if (ow == g.out_w) {
      ow = 0;
      if (++oh == g.out_h) oh = 0, ++n;
    }
    T* dst = col + (r - r0) * P;
    const Index iw0 = ow * g.stride_w - g.pad_left;
    for (Index kh = 0; kh < g.k_h; ++kh, dst += KW * C) {
      const Index ih = oh * g.stride_h - g.pad_top + kh * g.dil_h;
      if (ih < 0 || ih >= g.in_h) {
        std::memset(dst, 0, sizeof(T) * KW * C);
        continue;
      }
      const T* src_row = x + ((n * g.in_h + ih) * g.in_w) * C;
      if (contiguous_w && iw0 >= 0 && iw0 + KW <= g.in_w) {
        copy_run(dst, src_row + iw0 * C, KW * C);
        continue;
      }
      for (Index kw = 0; kw < KW; ++kw) {
        const Index iw = iw0 + kw * g.dil_w;
        if (iw < 0 || iw >= g.in_w)
          std::fill(dst + kw * C, dst + (kw + 1) * C, T(0));
        else
          copy_run(dst + kw * C, src_row + iw * C, C);
      }
    }
  }
}

/// dx += col2im(dcol) for output pixels [r0, r0+rows).
template <class T>
inline void col2im_rows(const Conv2DGeometry& g, const T* dcol, Index r0, Index rows, T* dx) {
  const Index C = g.in_c, KW = g.k_w, P = g.patch_size();
  const Index ohw = g.out_h * g.out_w;
  for (Index r = r0; r < r0 + rows; ++r) {
    const Index n = r / ohw, rem = r % ohw, oh = rem / g.out_w, ow = rem % g.out_w;
    const T* src = dcol + (r - r0) * P;
    const Index iw0 = ow * g.stride_w - g.pad_left;
    for (Index kh = 0; kh < g.k_h; ++kh, src += KW * C) {
      const Index ih = oh * g.stride_h - g.pad_top + kh * g.dil_h;
      if (ih < 0 || ih >= g.in_h) continue;
      T* dst_row = dx + ((n * g.in_h + ih) * g.in_w) * C;
      if (g.dil_w == 1 && iw0 >= 0 && iw0 + KW <= g.in_w) {
        T* d = dst_row + iw0 * C;
        const Index len = KW * C;
#pragma omp simd
        for (Index i = 0; i < len; ++i) d[i] += src[i];
        continue;
      }
      for (Index kw = 0; kw < KW; ++kw) {
        const Index iw = iw0 + kw * g.dil_w;
        if (iw < 0 || iw >= g.in_w) continue;
        T* d = dst_row + iw * C;
        const T* s = src + kw * C;
#pragma omp simd
        for (Index i = 0; i < C; ++i) d[i] += s[i];
      }
    }
  }
}

/// y[r, 0:nf] += bias[0:nf] for rows of stride ld.
template <class T>
inline void add_bias_rows(T* y, Index rows, Index nf, const T* bias, Index ld) {
  for (Index r = 0; r < rows; ++r) {
    T* yr = y + r * ld;
#pragma omp simd
    for (Index f = 0; f < nf; ++f) yr[f] += bias[f];
  }
}

/// Adds the groups' partial sums, each [kernel gradient (nk, when dkernel) | bias gradient (nb, when
/// dbias)] at parts + t * part, into dkernel and dbias, group by group in order.
template <class T>
inline void add_group_partials(T* dkernel, T* dbias, const T* parts, Index groups, Index part, Index nk, Index nb) {
  if (dkernel) add_partials_in_order(dkernel, parts, groups, part, nk);
  if (dbias) add_partials_in_order(dbias, parts + (dkernel ? nk : 0), groups, part, nb);
}

template <class T>
inline void sum_rows_into(const T* a, Index rows, Index F, T* out) {
  for (Index r = 0; r < rows; ++r) {
    const T* ar = a + r * F;
#pragma omp simd
    for (Index f = 0; f < F; ++f) out[f] += ar[f];
  }
}

/// The input-gradient GEMMs dx[rows, P] = dy[rows, F] * W^T of a backward pass: with the own
/// micro-kernel (float), W^T packed once per call into ws.packed (on nt threads) and shared by every
/// block; else Eigen's gemm_block per block, which packs W^T itself.
template <class T>
struct KernelTGemm {
  PackedB packed;
  bool own = false;
  Index P = 0, F = 0;
  const T* kernel = nullptr;
  KernelTGemm(Index P_, Index F_, Index rows, const T* kernel_, Conv2DWorkspace<T>& ws, int nt)
      : P(P_), F(F_), kernel(kernel_) {
    if constexpr (std::is_same_v<T, float>) {
      if (use_gemm_kernel<T>(rows, P, F)) {
        grow(ws.packed, gk::packed_size(F, P));
        float* dst = ws.packed.data();
        const Index npanels = (P + gk::kNR - 1) / gk::kNR;
        const Index PP = P, FF = F;
        keras::parallel_for(npanels, 1, P * F >= 65536 ? nt : 1,
                            [=](Index p0, Index p1) { pack_b_panels(true, FF, PP, kernel_, FF, dst, p0, p1); });
        packed = PackedB{dst, F, P, npanels * gk::kNR};
        own = true;
      }
    }
  }
  /// dx[rows, P] (row stride P) = dy[rows, F] W^T.
  void run(Index rows, const T* dy, T* dx) const {
    if constexpr (std::is_same_v<T, float>) {
      if (own && use_gemm_kernel<T>(rows, P, F))
        return gemm_packed(false, rows, 1.0f, dy, F, packed, 0, P, 0.0f, dx, P);
    }
    gemm_block<T>(false, true, rows, P, F, T(1), dy, F, kernel, F, T(0), dx, P);
  }
};

/// Input channels up to which conv2d_forward convolves directly (no im2col): an image's first
/// layer (RGB: 3). Its GEMM would have K = KH*KW*C (27 for 3x3 RGB) and the im2col copies of
/// 3-float runs cost more than the products (MobileNetV2's Conv1: ~70% of the layer's time).
inline constexpr Index kDirectConvMaxChannels = 4;

/// Output pixels [ow0, ow0 + PX) of one output row, filters [f0, f0 + NB * V) in NB packets:
/// acc = bias + sum over the valid taps (kh in [kh0, kh1), kw in [kw0, kw1), every channel) of
/// x * kernel, in tap order. xrow0: the input row of tap kh = 0 (may be virtual: only valid rows
/// are read), iw0: the input column of the first pixel's tap kw = 0.
template <class T, int PX, int NB, int CC>
inline void direct_conv_pixels(const Conv2DGeometry& g, Index F, const T* xrow0, Index iw0, const T* kernel,
                               const T* bias, Index f0, Index kh0, Index kh1, Index kw0, Index kw1, T* yo) {
  using Packet = typename Eigen::internal::packet_traits<T>::type;
  constexpr Index V = Eigen::internal::packet_traits<T>::size;
  using Eigen::internal::pload1;
  using Eigen::internal::ploadu;
  using Eigen::internal::pmadd;
  const Index C = CC > 0 ? Index(CC) : g.in_c, KW = g.k_w, xrs = g.in_w * C, px_step = g.stride_w * C;
  Packet acc[PX][NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    const Packet b0 = bias ? ploadu<Packet>(bias + f0 + b * V) : Eigen::internal::pset1<Packet>(T(0));
#pragma GCC unroll 8
    for (int p = 0; p < PX; ++p) acc[p][b] = b0;
  }
  for (Index kh = kh0; kh < kh1; ++kh) {
    const T* xr = xrow0 + kh * g.dil_h * xrs;
    for (Index kw = kw0; kw < kw1; ++kw) {
      const T* xp = xr + (iw0 + kw * g.dil_w) * C;
      const T* kp = kernel + (kh * KW + kw) * C * F + f0;
      for (Index c = 0; c < C; ++c) {
        Packet kv[NB];
#pragma GCC unroll 8
        for (int b = 0; b < NB; ++b) kv[b] = ploadu<Packet>(kp + c * F + b * V);
#pragma GCC unroll 8
        for (int p = 0; p < PX; ++p) {
          const Packet xv = pload1<Packet>(xp + p * px_step + c);
#pragma GCC unroll 8
          for (int b = 0; b < NB; ++b) acc[p][b] = pmadd(xv, kv[b], acc[p][b]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < PX; ++p)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) Eigen::internal::pstoreu(yo + p * F + f0 + b * V, acc[p][b]);
}

/// The same for the filters [f0, F) left over after the packets, one value at a time.
template <class T>
inline void direct_conv_scalar(const Conv2DGeometry& g, Index F, const T* xrow0, Index iw0, const T* kernel,
                               const T* bias, Index f0, Index kh0, Index kh1, Index kw0, Index kw1, T* yo) {
  const Index C = g.in_c, KW = g.k_w, xrs = g.in_w * C;
  for (Index f = f0; f < F; ++f) {
    T acc = bias ? bias[f] : T(0);
    for (Index kh = kh0; kh < kh1; ++kh)
      for (Index kw = kw0; kw < kw1; ++kw) {
        const T* xp = xrow0 + kh * g.dil_h * xrs + (iw0 + kw * g.dil_w) * C;
        const T* kp = kernel + (kh * KW + kw) * C * F + f;
        for (Index c = 0; c < C; ++c) acc += xp[c] * kp[c * F];
      }
    yo[f] = acc;
  }
}

/// Output pixels [ow0, ow0 + PX) of one output row, every filter: blocks of 2 packets, then 1
/// packet, then the leftover filters one at a time (iw0: the input column of the first pixel's tap 0).
template <class T, int PX>
inline void direct_conv_block(const Conv2DGeometry& g, Index F, const T* xrow0, Index iw0, const T* kernel,
                              const T* bias, Index kh0, Index kh1, Index kw0, Index kw1, T* yo) {
  constexpr Index V = Eigen::internal::packet_traits<T>::size;
  Index f = 0;
  if (g.in_c == 3)  // RGB: the channel loop unrolled
    for (; f + 2 * V <= F; f += 2 * V)
      direct_conv_pixels<T, PX, 2, 3>(g, F, xrow0, iw0, kernel, bias, f, kh0, kh1, kw0, kw1, yo);
  for (; f + 2 * V <= F; f += 2 * V)
    direct_conv_pixels<T, PX, 2, 0>(g, F, xrow0, iw0, kernel, bias, f, kh0, kh1, kw0, kw1, yo);
  for (; f + V <= F; f += V) direct_conv_pixels<T, PX, 1, 0>(g, F, xrow0, iw0, kernel, bias, f, kh0, kh1, kw0, kw1, yo);
  for (Index p = 0; p < PX; ++p)
    direct_conv_scalar(g, F, xrow0, iw0 + p * g.stride_w, kernel, bias, f, kh0, kh1, kw0, kw1, yo + p * F);
}

/// Direct convolution for few input channels (C <= kDirectConvMaxChannels), any kernel size,
/// stride, dilation and padding: per output row, blocks of 4 pixels x 2 packets of filters in
/// registers (the kernel vectors loaded once per tap and block, the input broadcast), border
/// pixels one at a time over their valid taps; then the epilogue on the row. Rows over the pool.
template <class T>
void conv2d_forward_direct(const Conv2DGeometry& g, Index F, const T* x, const T* kernel, const T* bias, T* y,
                           const Epilogue<T>* ep) {
  const Index rows = g.batch * g.out_h;
  if (ep && ep->empty()) ep = nullptr;
  const double flops = 2.0 * double(g.out_pixels()) * double(F) * double(g.patch_size());
  Index in0, in1;  // interior pixels: every horizontal tap inside the input
  interior_columns(g, in0, in1);
  keras::parallel_for(rows, 1, flops >= 2.0e5 ? keras::get_num_threads() : 1, [=](Index r0, Index r1) {
    for (Index r = r0; r < r1; ++r) {
      const Index n = r / g.out_h, oh = r % g.out_h;
      Index kh0, kh1;
      tap_range(oh, g.stride_h, g.pad_top, g.dil_h, g.k_h, g.in_h, kh0, kh1);
      const T* xrow0 = x + (n * g.in_h + (oh * g.stride_h - g.pad_top)) * g.in_w * g.in_c;
      T* yr = y + r * g.out_w * F;
      for (Index ow = 0; ow < g.out_w;) {
        const Index iw0 = ow * g.stride_w - g.pad_left;
        if (ow >= in0 && ow + 4 <= in1) {
          direct_conv_block<T, 4>(g, F, xrow0, iw0, kernel, bias, kh0, kh1, 0, g.k_w, yr + ow * F);
          ow += 4;
          continue;
        }
        Index kw0, kw1;
        tap_range(ow, g.stride_w, g.pad_left, g.dil_w, g.k_w, g.in_w, kw0, kw1);
        direct_conv_block<T, 1>(g, F, xrow0, iw0, kernel, bias, kh0, kh1, kw0, kw1, yr + ow * F);
        ++ow;
      }
      if (ep) ep->apply(yr, r * g.out_w, g.out_w, F);
    }
  });
}

inline void check_geometry(const Conv2DGeometry& g, Index filters, const char* who) {
  if (g.batch < 0 || g.in_h <= 0 || g.in_w <= 0 || g.in_c <= 0 || g.k_h <= 0 || g.k_w <= 0 || g.out_h <= 0 ||
      g.out_w <= 0 || g.stride_h <= 0 || g.stride_w <= 0 || g.dil_h <= 0 || g.dil_w <= 0 || filters <= 0)
    throw ValueError(std::string(who) + ": invalid geometry (use conv_geometry to build it)");
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Raw-pointer kernels. g.batch must be set. x [N,H,W,C], kernel [KH,KW,C,F], bias [F] or nullptr,
// y [N,OH,OW,F] (overwritten).

/// ep (optional): fused epilogue applied to each block of output rows after the GEMM (and bias).
/// Work items are blocks of output rows; when there are fewer blocks than threads (small images,
/// late layers) each block is also split over the filters, so every thread gets work.
/// prepacked (optional, float): the kernel already packed for the own micro-kernel (pack_b_matrix of
/// the [KH*KW*C, F] matrix), used when the micro-kernel runs this convolution.
template <class T>
void conv2d_forward(const Conv2DGeometry& g, Index filters, const T* x, const T* kernel, const T* bias, T* y,
                    Conv2DWorkspace<T>& ws, const Epilogue<T>* ep = nullptr, const PackedB* prepacked = nullptr) {
  detail::check_geometry(g, filters, "conv2d_forward");
  const Index F = filters, P = g.patch_size(), M = g.out_pixels();
  if (M == 0) return;
  if (g.in_c <= detail::kDirectConvMaxChannels && !g.is_pointwise())
    return detail::conv2d_forward_direct(g, F, x, kernel, bias, y, ep);
  const int nt = keras::get_num_threads();
  const bool pointwise = g.is_pointwise();
  // Pointwise: blocks only bound the GEMM rows (x is the lhs as is); else the im2col block.
  Index brows = pointwise ? detail::pointwise_block_rows(ws.block_bytes, F, sizeof(T), M)
                          : detail::conv_block_rows(ws.block_bytes, P, sizeof(T), M);
  // The own micro-kernel (float, gemm_kernel.hpp): the kernel is packed once per call into its
  // panels, shared by every block and thread (Eigen's path re-packs it in every block).
  const bool use_packed = detail::use_gemm_kernel<T>(std::min(brows, M), F, P);
  const bool worth_threads = nt > 1 && double(M) * double(F) * double(P) >= 2.0e5;
  // Work items: about kItemsPerThread per thread, so that a thread that wakes late still takes a
  // share. Rows first (cut down to whole micro-tiles), then filters: the pool gives each thread a
  // contiguous range of items, i.e. of rows, the rows the next layer's split gives it too, which
  // keeps them in its core's cache. Each output element is summed over the same k in the same
  // order in any block: the split does not change results.
  constexpr Index kItemsPerThread = 4;
  const Index want = Index(nt) * kItemsPerThread;
  if (use_packed && worth_threads && (M + brows - 1) / brows < want) {
    const Index per = (M + want - 1) / want;
    brows = std::min(brows, std::max<Index>(gk::kMR, (per + gk::kMR - 1) / gk::kMR * gk::kMR));
  }
  const Index nblocks = (M + brows - 1) / brows;
  const Index falign = use_packed ? Index(gk::kNR) : 16;
  Index fparts = 1;
  const Index fwant = use_packed ? want : Index(nt);  // Eigen's path re-packs per item: fewer
  if (nblocks < fwant && worth_threads)
    fparts = std::max<Index>(1, std::min<Index>((fwant + nblocks - 1) / nblocks, F / falign));
  const Index items = nblocks * fparts;
  const int threads = static_cast<int>(std::min<Index>(nt, items));
  if (!pointwise) detail::grow(ws.col, Index(threads) * brows * P);
  T* colbase = pointwise ? nullptr : ws.col.data();
  PackedB packed;
  if constexpr (std::is_same_v<T, float>) {
    if (use_packed && prepacked && prepacked->K == P && prepacked->N == F) {
      packed = *prepacked;
    } else if (use_packed) {
      detail::grow(ws.packed, gk::packed_size(P, F));
      const Index npanels = (F + gk::kNR - 1) / gk::kNR;
      float* dst = ws.packed.data();
      const int pt = P * F >= 65536 ? nt : 1;
      keras::parallel_for(npanels, 1, pt,
                          [=](Index p0, Index p1) { pack_b_panels(false, P, F, kernel, F, dst, p0, p1); });
      packed = PackedB{dst, P, F, npanels * gk::kNR};
    }
  }
  keras::parallel_chunks(items, threads, [&](Index it, int slot) {
    T* col = pointwise ? nullptr : colbase + Index(slot) * brows * P;
    const Index b = it / fparts, fp = it % fparts;
    const Index r0 = b * brows, rows = std::min(brows, M - r0);
    const Index f0 = (F * fp / fparts) / falign * falign;
    const Index f1 = fp + 1 == fparts ? F : (F * (fp + 1) / fparts) / falign * falign;
    if (f1 <= f0) return;
    const T* lhs = x + r0 * P;
    if (!pointwise) {
      detail::im2col_rows(g, x, r0, rows, col);
      lhs = col;
    }
    T* yb = y + r0 * F + f0;
    // bias and the fused epilogue, at the block's first row and filter
    GemmEpilogue<T> gep;
    if (bias) gep.bias = bias + f0;
    if (ep) {
      gep.scale = ep->scale ? ep->scale + f0 : nullptr;
      gep.shift = ep->shift ? ep->shift + f0 : nullptr;
      gep.clamp = ep->clamp;
      gep.lo = ep->lo;
      gep.hi = ep->hi;
      gep.residual = ep->residual ? ep->residual + r0 * F + f0 : nullptr;
      gep.ldr = F;
    }
    if constexpr (std::is_same_v<T, float>) {
      if (use_packed) {
        gemm_packed(false, rows, 1.0f, lhs, P, packed, f0, f1, 0.0f, yb, F, &gep);
        return;
      }
    }
    detail::gemm_block_ep<T>(false, false, rows, f1 - f0, P, T(1), lhs, P, kernel + f0, F, T(0), yb, F, &gep);
  });
}

/// dx (overwritten; nullptr to skip), dkernel (+=; nullptr to skip), dbias (+=; nullptr to skip).
template <class T>
void conv2d_backward(const Conv2DGeometry& g, Index filters, const T* x, const T* kernel, const T* dy, T* dx,
                     T* dkernel, T* dbias, Conv2DWorkspace<T>& ws) {
  detail::check_geometry(g, filters, "conv2d_backward");
  const Index F = filters, P = g.patch_size(), M = g.out_pixels();
  const int nt = keras::get_num_threads();
  const bool pointwise = g.is_pointwise();
  // pointwise: every dx row is written by its GEMM (beta 0); otherwise col2im accumulates into dx
  if (dx && (!pointwise || M == 0)) std::fill(dx, dx + g.in_size(), T(0));
  if (M == 0 || (!dx && !dkernel && !dbias)) return;
  const Index part = (dkernel ? P * F : 0) + (dbias ? F : 0);  // one group's partial sums
  // dkernel/dbias: the work items are cut into `groups` contiguous groups, each accumulated in order
  // into its own partial sums, which are added in group order: the result depends on the sizes only
  // (not on the thread count or on which thread ran a group).

  if (pointwise) {
    // dx = dy * W^T by blocks of rows (no overlap between rows), all threads; dW = x^T dy and
    // db = colsum(dy) as one GEMM per group of rows, written (beta 0) into the group's partial sums.
    const Index brows = detail::pointwise_block_rows(ws.block_bytes, std::max(P, F), sizeof(T), M);
    const Index nblocks = (M + brows - 1) / brows;
    if (dx) {
      const detail::KernelTGemm<T> wt(P, F, std::min(brows, M), kernel, ws, nt);
      keras::parallel_chunks(nblocks, static_cast<int>(std::min<Index>(nt, nblocks)), [&](Index b, int) {
        const Index r0 = b * brows, rows = std::min(brows, M - r0);
        wt.run(rows, dy + r0 * F, dx + r0 * P);
      });
    }
    if (!part) return;
    const Index groups = std::min<Index>(nblocks, detail::kConvReduceGroups);
    detail::grow(ws.partial, groups * part);
    T* pbase = ws.partial.data();
    keras::parallel_chunks(groups, static_cast<int>(std::min<Index>(nt, groups)), [&](Index grp, int) {
      T* pw = pbase + grp * part;
      T* pb = dbias ? pw + (dkernel ? P * F : 0) : nullptr;
      const Index r0 = brows * (nblocks * grp / groups), r1 = std::min(M, brows * (nblocks * (grp + 1) / groups));
      if (dkernel) detail::gemm_block<T>(true, false, P, F, r1 - r0, T(1), x + r0 * P, P, dy + r0 * F, F, T(0), pw, F);
      if (dbias) {
        std::fill(pb, pb + F, T(0));
        detail::sum_rows_into(dy + r0 * F, r1 - r0, F, pb);
      }
    });
    detail::add_group_partials(dkernel, dbias, pbase, groups, part, P * F, F);
    return;
  }

  // General case. Units of work are whole images (col2im of different images never overlaps),
  // each cut into blocks of output rows processed in order by the owning thread.
  const Index ohw = g.out_h * g.out_w;
  const Index brows = detail::conv_block_rows(ws.block_bytes, P, sizeof(T), ohw);
  const Index nblk_img = (ohw + brows - 1) / brows;
  const Index groups = std::max<Index>(1, std::min<Index>(g.batch, detail::kConvReduceGroups));
  const int threads = static_cast<int>(std::min<Index>(nt, groups));
  const bool need_col = dkernel != nullptr;
  if (need_col) detail::grow(ws.col, threads * brows * P);
  if (dx) detail::grow(ws.dcol, threads * brows * P);
  if (part) {
    detail::grow(ws.partial, groups * part);
    std::fill(ws.partial.data(), ws.partial.data() + groups * part, T(0));
  }
  T* colbase = ws.col.data();
  T* dcolbase = ws.dcol.data();
  T* pbase = ws.partial.data();
  const detail::KernelTGemm<T> wt(P, F, dx ? std::min(brows, ohw) : 0, kernel, ws, nt);
  keras::parallel_chunks(groups, threads, [&](Index grp, int slot) {
    T* col = need_col ? colbase + Index(slot) * brows * P : nullptr;
    T* dcol = dx ? dcolbase + Index(slot) * brows * P : nullptr;
    T* pw = part ? pbase + grp * part : nullptr;
    T* pb = dbias ? pw + (dkernel ? P * F : 0) : nullptr;
    for (Index n = g.batch * grp / groups, ne = g.batch * (grp + 1) / groups; n < ne; ++n) {
      for (Index b = 0; b < nblk_img; ++b) {
        const Index r0 = n * ohw + b * brows, rows = std::min(brows, (n + 1) * ohw - r0);
        const T* dyb = dy + r0 * F;
        if (dkernel) {
          detail::im2col_rows(g, x, r0, rows, col);
          detail::gemm_block<T>(true, false, P, F, rows, T(1), col, P, dyb, F, T(1), pw, F);
        }
        if (dbias) detail::sum_rows_into(dyb, rows, F, pb);
        if (dx) {
          wt.run(rows, dyb, dcol);
          detail::col2im_rows(g, dcol, r0, rows, dx);
        }
      }
    }
  });
  if (part) detail::add_group_partials(dkernel, dbias, pbase, groups, part, P * F, F);
}

/// Backward of a pointwise (1x1, stride 1, unpadded) convolution followed by the epilogue ep
/// (scale, shift, clamp; no residual): y is the epilogue's output, dy = d(loss)/d(y). Each block of
/// rows turns dy into d(loss)/d(conv output) (ops::epilogue_backward_rows) in the thread's scratch
/// while it is cache-hot and feeds it to both GEMMs. dx overwritten, dkernel/dbias accumulated
/// (nullptr: skip). Work is cut into fixed groups of blocks (their partial sums are added in group
/// order: the same result on any number of threads).
template <class T>
void conv2d_backward_pointwise_fused(const Conv2DGeometry& g, Index filters, const T* x, const T* kernel, const T* y,
                                     const T* dy, const Epilogue<T>& ep, T* dx, T* dkernel, T* dbias,
                                     Conv2DWorkspace<T>& ws) {
  detail::check_geometry(g, filters, "conv2d_backward_pointwise_fused");
  if (!g.is_pointwise()) throw ValueError("conv2d_backward_pointwise_fused: the convolution is not pointwise");
  const Index F = filters, P = g.patch_size(), M = g.out_pixels();
  if (M == 0 || (!dx && !dkernel && !dbias)) return;
  const int nt = keras::get_num_threads();
  const Index brows = detail::pointwise_block_rows(ws.block_bytes, std::max(P, F), sizeof(T), M);
  const Index nblocks = (M + brows - 1) / brows;
  const Index groups = std::min<Index>(nblocks, 2 * detail::kConvReduceGroups);
  const int threads = static_cast<int>(std::min<Index>(nt, groups));
  const Index part = (dkernel ? P * F : 0) + (dbias ? F : 0);
  if (part) detail::grow(ws.partial, groups * part);
  detail::grow(ws.dcol, Index(threads) * brows * F);
  T* pbase = ws.partial.data();
  T* sbase = ws.dcol.data();
  const detail::KernelTGemm<T> wt(P, F, dx ? std::min(brows, M) : 0, kernel, ws, nt);
  keras::parallel_chunks(groups, threads, [&](Index grp, int slot) {
    T* dz = sbase + Index(slot) * brows * F;
    T* pw = part ? pbase + grp * part : nullptr;
    T* pb = dbias ? pw + (dkernel ? P * F : 0) : nullptr;
    if (pb) std::fill(pb, pb + F, T(0));
    const Index b0 = nblocks * grp / groups, b1 = nblocks * (grp + 1) / groups;
    for (Index b = b0; b < b1; ++b) {
      const Index r0 = b * brows, rows = std::min(brows, M - r0);
      epilogue_backward_rows(ep, y + r0 * F, dy + r0 * F, dz, rows, F);
      if (dx) wt.run(rows, dz, dx + r0 * P);
      if (dkernel)
        detail::gemm_block<T>(true, false, P, F, rows, T(1), x + r0 * P, P, dz, F, b == b0 ? T(0) : T(1), pw, F);
      if (pb) detail::sum_rows_into(dz, rows, F, pb);
    }
  });
  if (part) detail::add_group_partials(dkernel, dbias, pbase, groups, part, P * F, F);
}

// ---------------------------------------------------------------------------------------------
// Tensor wrappers: check shapes, take the batch from x, resize outputs.

namespace detail {
template <class T>
inline void check_conv_kernel(const Conv2DGeometry& g, const Tensor<T>& kernel, const Tensor<T>* bias,
                              const char* who) {
  if (kernel.rank() != 4 || kernel.dim(0) != g.k_h || kernel.dim(1) != g.k_w || kernel.dim(2) != g.in_c)
    throw ShapeError(std::string(who) + ": kernel shape " + shape_str(kernel.shape()) + " does not match " +
                     shape_str({g.k_h, g.k_w, g.in_c, -1}));
  if (bias && (bias->size() != kernel.dim(3)))
    throw ShapeError(std::string(who) + ": bias shape " + shape_str(bias->shape()) + " does not match " +
                     std::to_string(kernel.dim(3)) + " filters");
}
}  // namespace detail

/// y is resized to [N, OH, OW, F]. g comes from conv_geometry (its batch is ignored).
template <class T>
void conv2d_forward(const Conv2DGeometry& geom, const Tensor<T>& x, const Tensor<T>& kernel,
                    const NoDeduce<Tensor<T>>* bias, Tensor<T>& y, Conv2DWorkspace<T>& ws,
                    const NoDeduce<Epilogue<T>>* ep = nullptr, const PackedB* prepacked = nullptr) {
  const Conv2DGeometry g = with_input(geom, x, "Conv2D");
  detail::check_conv_kernel(g, kernel, bias, "Conv2D");
  const Index F = kernel.dim(3);
  y.resize({g.batch, g.out_h, g.out_w, F});
  conv2d_forward(g, F, x.data(), kernel.data(), bias ? bias->data() : nullptr, y.data(), ws, ep, prepacked);
}

/// dx resized to x's shape and overwritten; dkernel/dbias must already have the kernel/bias shape
/// (gradients are accumulated). Pass nullptr for any gradient not needed.
template <class T>
void conv2d_backward(const Conv2DGeometry& geom, const Tensor<T>& x, const Tensor<T>& kernel, const Tensor<T>& dy,
                     NoDeduce<Tensor<T>>* dx, NoDeduce<Tensor<T>>* dkernel, NoDeduce<Tensor<T>>* dbias,
                     Conv2DWorkspace<T>& ws) {
  const Conv2DGeometry g = with_input(geom, x, "Conv2D backward");
  detail::check_conv_kernel(g, kernel, dbias, "Conv2D backward");
  const Index F = kernel.dim(3);
  if (dy.shape() != Shape{g.batch, g.out_h, g.out_w, F})
    throw ShapeError("Conv2D backward: output gradient shape " + shape_str(dy.shape()) + " does not match " +
                     shape_str({g.batch, g.out_h, g.out_w, F}));
  if (dkernel && dkernel->shape() != kernel.shape())
    throw ShapeError("Conv2D backward: kernel gradient shape " + shape_str(dkernel->shape()) +
                     " != " + shape_str(kernel.shape()));
  if (dx) dx->resize(x.shape());
  conv2d_backward(g, F, x.data(), kernel.data(), dy.data(), dx ? dx->data() : nullptr,
                  dkernel ? dkernel->data() : nullptr, dbias ? dbias->data() : nullptr, ws);
}

}  // namespace keras::ops
