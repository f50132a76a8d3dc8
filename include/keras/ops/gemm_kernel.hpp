// kerascpp's own single-precision GEMM micro-kernel, on Eigen's packet math (BLIS / XNNPACK style):
//
//   C[M, N] = epilogue(alpha * op(A) * op(B) + beta * C)      row-major, op = identity or transpose
//
// - B (the weights of a convolution) is packed into panels of kNR columns (kNR = 2 packets: 32 floats
//   with AVX-512, 16 with AVX2), k-major inside a panel, K cut into blocks of kKc (a tail of up to
//   kKc / 4 joins the last: gk::k_block). Callers pack it once (PackedB, e.g. per call of a
//   convolution, shared by all its blocks), or gemm_kernel packs each block into the calling
//   thread's buffer.
// - A is read in place: a row-major A (rows of pixels) as kMR row streams; a transposed one
//   (op(A)[i, k] = A[k, i], the weight-gradient GEMMs) has each micro-panel's kMR-wide slices of its
//   rows copied into a contiguous buffer first (macro_kernel).
//   A micro-panel (kMR x kKc, 12 KB) stays in L1 while the kernel sweeps the panels of B (L2); for
//   few rows (late layers) the panels of B are the outer loop instead (each panel in L1 for all rows).
// - The micro-kernel holds a kMR x kNR tile of C in registers (AVX-512: 12 x 32 = 24 zmm
//   accumulators, 2 loads of B and 12 broadcasts of A per k; AVX2 + FMA: 6 x 16, 12 ymm) and applies
//   alpha, beta * C and the per-column epilogue (bias, BN scale + shift, clamp, residual) before
//   storing it, so C is written once. Rows at the M edge use a kernel of fewer rows (compile-time),
//   columns at the N edge masked loads and stores (the packed panel is zero-padded).
//
// Only float on AVX-512 or AVX2 + FMA builds (kGemmKernel); double and other ISAs keep Eigen's GEMM
// (gemm.hpp dispatches). Results do not depend on the thread count: a C element's sum runs over k in
// the same order whatever block it falls in.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>

#include "../core/shape.hpp"

namespace keras::ops {

/// Per-column epilogue of a GEMM, applied in this order to each element C[i, j] of the result:
/// + bias[j], * scale[j] + shift[j], clamp to [lo, hi], + residual[i * ldr + j]. Pointers are at
/// the GEMM's column 0 and row 0; nullptr (or clamp false): that part is skipped.
template <class T>
struct GemmEpilogue {
  const T* bias = nullptr;
  const T* scale = nullptr;
  const T* shift = nullptr;
  bool clamp = false;
  T lo = -std::numeric_limits<T>::infinity();
  T hi = std::numeric_limits<T>::infinity();
  const T* residual = nullptr;
  Index ldr = 0;

  bool empty() const { return !bias && !scale && !shift && !clamp && !residual; }

  /// The scalar epilogue on a block rows x [j0, j0 + n) of C (row stride ldc) whose first row is the
  /// GEMM's row i0 (the fallback path, and the reference of the tests).
  void apply(T* c, Index ldc, Index i0, Index rows, Index j0, Index n) const {
    if (empty()) return;
    for (Index i = 0; i < rows; ++i) {
      T* __restrict cr = c + i * ldc;
      const T* __restrict res = residual ? residual + (i0 + i) * ldr + j0 : nullptr;
      for (Index j = 0; j < n; ++j) {
        T v = cr[j];
        if (bias) v += bias[j0 + j];
        if (scale && shift)
          v = v * scale[j0 + j] + shift[j0 + j];
        else if (scale)
          v *= scale[j0 + j];
        else if (shift)
          v += shift[j0 + j];
        if (clamp) v = std::min(std::max(v, lo), hi);
        if (res) v += res[j];
        cr[j] = v;
      }
    }
  }
};

namespace gk {

namespace ei = Eigen::internal;

#if defined(EIGEN_VECTORIZE_AVX512)
inline constexpr bool kGemmKernel = true;
using Packet = ei::Packet16f;
using Mask = std::uint16_t;
inline constexpr int kMR = 12;
inline constexpr int kPS = 16;  ///< floats per packet
inline constexpr const char* kIsa = "avx512";
#elif defined(EIGEN_VECTORIZE_AVX2) && defined(EIGEN_VECTORIZE_FMA)
inline constexpr bool kGemmKernel = true;
using Packet = ei::Packet8f;
using Mask = std::uint8_t;
inline constexpr int kMR = 6;
inline constexpr int kPS = 8;
inline constexpr const char* kIsa = "avx2";
#else
inline constexpr bool kGemmKernel = false;
using Packet = float;
using Mask = std::uint8_t;
inline constexpr int kMR = 4;
inline constexpr int kPS = 1;
inline constexpr const char* kIsa = "eigen";
#endif
inline constexpr int kNR = 2 * kPS;  ///< columns of a panel / micro-tile (two packets)
#ifndef KERASCPP_GEMM_KC
#define KERASCPP_GEMM_KC 256
#endif
inline constexpr Index kKc = KERASCPP_GEMM_KC;  ///< k-block: a 12 x 256 A micro-panel is 12 KB (L1)
inline constexpr Index kNc = 1024;              ///< columns per block of B: 256 x 1024 floats = 1 MB (L2)
/// The longest k-block: a tail of up to kKc / 4 joins the block before it (K = 272 runs as one block
/// of 272, not 256 + 16; K = 320 as one of 320): each k-block loads and stores all of C, which for
/// a short tail costs more than its multiply-adds (the weight-gradient GEMMs of the top blocks).
inline constexpr Index kKcMax = kKc + kKc / 4;
/// Length of the k-block that starts at pc (a function of K alone: the same blocks, hence the same
/// sums, on any thread count).
inline Index k_block(Index pc, Index K) { return K - pc <= kKcMax ? K - pc : kKc; }

/// Floats of a packed op(B) [K, N]: panels padded to kNR columns.
inline Index packed_size(Index K, Index N) { return K * ((N + kNR - 1) / kNR * kNR); }

/// Packs columns [j0, j0 + n) of rows [k0, k0 + kl) of op(B) into panels (dst: kNR-aligned
/// floats, ceil(n / kNR) panels of kl x kNR, zero-padded). op(B)[k, j] = tb ? B[j * ldb + k] : B[k * ldb + j].
inline void pack_b(bool tb, const float* B, Index ldb, Index k0, Index kl, Index j0, Index n, float* dst) {
  for (Index p = 0; p * kNR < n; ++p, dst += kl * kNR) {
    const Index jp = j0 + p * kNR, nr = std::min<Index>(kNR, n - p * kNR);
    if (!tb) {
      for (Index k = 0; k < kl; ++k) {
        const float* s = B + (k0 + k) * ldb + jp;
        float* d = dst + k * kNR;
        if (nr == kNR) {
          if constexpr (kGemmKernel) {
            ei::pstore(d, ei::ploadu<Packet>(s));
            ei::pstore(d + kPS, ei::ploadu<Packet>(s + kPS));
          } else {
            std::memcpy(d, s, sizeof(float) * kNR);
          }
        } else {
          std::memcpy(d, s, sizeof(float) * nr);
          std::fill(d + nr, d + kNR, 0.0f);
        }
      }
    } else {
      if (nr < kNR)
        for (Index k = 0; k < kl; ++k) std::fill(dst + k * kNR + nr, dst + (k + 1) * kNR, 0.0f);
      for (Index j = 0; j < nr; ++j) {
        const float* s = B + (jp + j) * ldb + k0;
        float* d = dst + j;
        for (Index k = 0; k < kl; ++k) d[k * kNR] = s[k];
      }
    }
  }
}

/// One micro-tile's arguments.
struct Tile {
  Index kl;
  const float* a;  ///< op(A)[i, k] = a[i * a_is + k * a_ks]
  Index a_is, a_ks;
  const float* b;  ///< panel [kl][kNR]
  float* c;
  Index ldc;
  int nr;  ///< valid columns (1..kNR)
  float alpha, beta;
  bool load_c;  ///< add beta * C (else C is overwritten)
  const GemmEpilogue<float>* ep;
  Index i, j;  ///< the tile's row and column in the GEMM (the epilogue's indices)
};

#if defined(EIGEN_VECTORIZE_AVX512) || (defined(EIGEN_VECTORIZE_AVX2) && defined(EIGEN_VECTORIZE_FMA))
inline Packet load_part(const float* p, int n) { return ei::ploadu<Packet>(p, Mask((1u << n) - 1u)); }
inline void store_part(float* p, const Packet& v, int n) { ei::pstoreu<float>(p, v, Mask((1u << n) - 1u)); }

/// Stores the accumulators of an MR x kNR tile: r = alpha * acc (+ beta * C), then the epilogue
/// folded into one multiply-add per element, r * m + a with m = scale and a = bias * scale + shift
/// (per column, computed once per tile), then the clamp (lo/hi = -inf/+inf when off) and the
/// residual. LoadC, Ep and Res are compile-time so that the stores carry no per-element branches
/// (for small K the tile's FMAs take little longer than its stores).
template <int MR, bool LoadC, bool Ep, bool Res>
EIGEN_ALWAYS_INLINE void store_tile(Packet (&acc)[MR][2], const Tile& t, const int (&nv)[2]) {
  const GemmEpilogue<float>* ep = t.ep;
  Packet m[2], a[2];
  const Packet alpha = ei::pset1<Packet>(t.alpha), beta = ei::pset1<Packet>(t.beta);
  Packet lo = ei::pset1<Packet>(-std::numeric_limits<float>::infinity());
  Packet hi = ei::pset1<Packet>(std::numeric_limits<float>::infinity());
  for (int v = 0; v < 2; ++v) {
    m[v] = LoadC ? ei::pset1<Packet>(1.0f) : alpha;
    a[v] = ei::pzero(Packet{});
    if constexpr (Ep) {
      if (!nv[v]) continue;
      const Index j = t.j + v * kPS;
      auto ld = [&](const float* p) { return nv[v] == kPS ? ei::ploadu<Packet>(p + j) : load_part(p + j, nv[v]); };
      const Packet sc = ep->scale ? ld(ep->scale) : ei::pset1<Packet>(1.0f);
      if (ep->bias) a[v] = ld(ep->bias);
      a[v] = ei::pmul(a[v], sc);
      if (ep->shift) a[v] = ei::padd(a[v], ld(ep->shift));
      m[v] = ei::pmul(m[v], sc);
    }
  }
  if constexpr (Ep) {
    if (ep->clamp) {
      lo = ei::pset1<Packet>(ep->lo);
      hi = ei::pset1<Packet>(ep->hi);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + i * t.ldc;
    const float* res = Res ? ep->residual + (t.i + i) * ep->ldr + t.j : nullptr;
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      if (!nv[v]) continue;
      const bool full = nv[v] == kPS;
      Packet r = acc[i][v];
      if constexpr (LoadC) {
        const Packet cv = full ? ei::ploadu<Packet>(c + v * kPS) : load_part(c + v * kPS, nv[v]);
        r = ei::pmadd(cv, beta, ei::pmul(r, alpha));
      }
      if constexpr (Ep) {
        r = ei::pmin(ei::pmax(ei::pmadd(r, m[v], a[v]), lo), hi);
        if constexpr (Res) r = ei::padd(r, full ? ei::ploadu<Packet>(res + v * kPS) : load_part(res + v * kPS, nv[v]));
      } else if constexpr (!LoadC) {
        r = ei::pmul(r, m[v]);
      }
      if (full)
        ei::pstoreu(c + v * kPS, r);
      else
        store_part(c + v * kPS, r, nv[v]);
    }
  }
}

template <int MR>
EIGEN_ALWAYS_INLINE void finish(Packet (&acc)[MR][2], const Tile& t) {
  const int nv[2] = {std::min(t.nr, kPS), std::max(0, t.nr - kPS)};
  const bool ep = t.ep != nullptr, res = ep && t.ep->residual;
  if (!t.load_c) {
    if (!ep)
      store_tile<MR, false, false, false>(acc, t, nv);
    else if (!res)
      store_tile<MR, false, true, false>(acc, t, nv);
    else
      store_tile<MR, false, true, true>(acc, t, nv);
  } else {
    if (!ep)
      store_tile<MR, true, false, false>(acc, t, nv);
    else if (!res)
      store_tile<MR, true, true, false>(acc, t, nv);
    else
      store_tile<MR, true, true, true>(acc, t, nv);
  }
}

/// The micro-kernel: an MR x kNR tile over kl steps of k. KMajor: op(A)[i, k] = a[i + k * a_ks]
/// (packed or transposed A); else a[i * a_is + k] (rows of a row-major A).
template <int MR, bool KMajor>
EIGEN_DONT_INLINE void tile(const Tile& t) {
  Packet acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = ei::pzero(Packet{});
  const float* b = t.b;
  const Index kl = t.kl;
  if constexpr (KMajor) {
    const float* a = t.a;
    const Index as = t.a_ks;
    for (Index k = 0; k < kl; ++k, a += as, b += kNR) {
      const Packet b0 = ei::pload<Packet>(b), b1 = ei::pload<Packet>(b + kPS);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const Packet ai = ei::pset1<Packet>(a[i]);
        acc[i][0] = ei::pmadd(ai, b0, acc[i][0]);
        acc[i][1] = ei::pmadd(ai, b1, acc[i][1]);
      }
    }
  } else {
    const float* ar[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) ar[i] = t.a + i * t.a_is;
    for (Index k = 0; k < kl; ++k, b += kNR) {
      const Packet b0 = ei::pload<Packet>(b), b1 = ei::pload<Packet>(b + kPS);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const Packet ai = ei::pset1<Packet>(ar[i][k]);
        acc[i][0] = ei::pmadd(ai, b0, acc[i][0]);
        acc[i][1] = ei::pmadd(ai, b1, acc[i][1]);
      }
    }
  }
  finish<MR>(acc, t);
}

using TileFn = void (*)(const Tile&);
template <bool KMajor, int... I>
constexpr std::array<TileFn, sizeof...(I)> tile_table(std::integer_sequence<int, I...>) {
  return {&tile<I + 1, KMajor>...};
}
inline void run_tile(bool kmajor, int mr, const Tile& t) {
  static constexpr auto rows = tile_table<false>(std::make_integer_sequence<int, kMR>{});
  static constexpr auto kmaj = tile_table<true>(std::make_integer_sequence<int, kMR>{});
  (kmajor ? kmaj : rows)[mr - 1](t);
}
#else
inline void run_tile(bool, int, const Tile&) {}
#endif

/// The tile arguments shared by every tile of a macro-kernel call.
inline Tile tile_args(Index kl, float alpha, float beta, bool load_c, Index ldc, const GemmEpilogue<float>* ep) {
  Tile t{};
  t.kl = kl;
  t.ldc = ldc;
  t.alpha = alpha;
  t.beta = beta;
  t.load_c = load_c;
  t.ep = ep;
  return t;
}

/// Points t at the tile of rows [ic, ic + kMR) and columns [jr, jr + kNR) of the block.
inline void place_tile(Tile& t, bool ta, const float* A, Index lda, const float* Bblk, Index kl, float* C, Index ldc,
                       Index ic, Index jr, Index n, Index j0) {
  t.a = ta ? A + ic : A + ic * lda;
  t.a_is = ta ? 1 : lda;
  t.a_ks = ta ? lda : 1;
  t.i = ic;
  t.b = Bblk + (jr / kNR) * kl * kNR;
  t.c = C + ic * ldc + jr;
  t.nr = static_cast<int>(std::min<Index>(kNR, n - jr));
  t.j = j0 + jr;
}

/// Rows at most which a macro-kernel sweeps the panels of B in the outer loop (each panel, up to
/// kKc x kNR floats = 32 KB, then stays in L1 for every micro-panel of A; A, M x kl, in L1/L2):
/// the late layers of a network (few pixels, large weights that come from L3 once per pass).
inline constexpr Index kPanelOuterRows = 4 * kMR;

/// One k-block of the product: C[0:M, 0:n) = epilogue(alpha * op(A)[:, k-block] * Bblk + beta * C)
/// over the packed panels Bblk (kl x kNR each). A points at the k-block's first element of op(A)'s
/// row 0; j0 is C's column in the GEMM (for the epilogue). Either loop order computes each element
/// the same way (its k-sum runs in the same order).
inline void macro_kernel(bool ta, Index M, Index n, Index kl, const float* A, Index lda, const float* Bblk, float alpha,
                         float beta, bool load_c, float* C, Index ldc, const GemmEpilogue<float>* ep, Index j0) {
  Tile t = tile_args(kl, alpha, beta, load_c, ldc, ep);
  if (M <= kPanelOuterRows) {
    for (Index jr = 0; jr < n; jr += kNR)
      for (Index ic = 0; ic < M; ic += kMR) {
        place_tile(t, ta, A, lda, Bblk, kl, C, ldc, ic, jr, n, j0);
        run_tile(ta, static_cast<int>(std::min<Index>(kMR, M - ic)), t);
      }
    return;
  }
  // A micro-panel is read from L2/memory by its first tile and found in L1 by the others. (A software
  // prefetch of the next micro-panel, a share of its lines before each tile, made whole inference
  // passes 4-10% slower in CPU time at batch 8/32 on the AVX-512 machine: the hardware prefetcher
  // follows the kMR row streams, the prefetch instructions stalled on full fill buffers.)
  //
  // A transposed A (the weight-gradient GEMMs: op(A) = x^T, lda = the channels) is read as one
  // kMR-wide slice of each of kl rows far apart: 48 bytes of each of up to 2 * kl cache lines,
  // which the panels of B streaming through L1 evict. Its micro-panel is copied first into a
  // contiguous k-major buffer (12 x kl floats, 12-15 KB), once for the whole sweep over the panels:
  // the same products in the same order, so the same results.
  alignas(64) float apack[kMR * kKcMax];
  const bool pack_a = ta && n > kNR;
  for (Index ic = 0; ic < M; ic += kMR) {
    const int mr = static_cast<int>(std::min<Index>(kMR, M - ic));
    if (pack_a) {
      const float* src = A + ic;
      for (Index k = 0; k < kl; ++k, src += lda) std::memcpy(apack + k * kMR, src, sizeof(float) * std::size_t(mr));
    }
    for (Index jr = 0; jr < n; jr += kNR) {
      place_tile(t, ta, A, lda, Bblk, kl, C, ldc, ic, jr, n, j0);
      if (pack_a) {
        t.a = apack;
        t.a_ks = kMR;
      }
      run_tile(ta, mr, t);
    }
  }
}

/// K == 0: C = epilogue(beta * C).
inline void scale_only(Index M, Index N, float beta, float* C, Index ldc, const GemmEpilogue<float>* ep) {
  for (Index i = 0; i < M; ++i)
    for (Index j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
  if (ep) ep->apply(C, ldc, 0, M, 0, N);
}

}  // namespace gk

/// A packed op(B) [K, N] (a view: the caller owns the floats, e.g. a workspace Tensor), for any
/// number of GEMMs with it: the weights of a convolution, packed once per call and shared by all its
/// blocks and threads. Layout: k-block [pc, pc + kl) at data + pc * npad, its panel p (columns
/// [p * kNR, p * kNR + kNR)) at + p * kl * kNR, k-major, zero-padded to kNR columns.
struct PackedB {
  const float* data = nullptr;
  Index K = 0, N = 0, npad = 0;
  const float* block(Index pc, Index kl, Index j) const { return data + pc * npad + (j / gk::kNR) * kl * gk::kNR; }
  Index panels() const { return npad / gk::kNR; }
};

/// Packs panels [p0, p1) of op(B) [K, N] (every k-block) into dst (gk::packed_size(K, N) floats,
/// 64-byte aligned) and returns the view. Panels are independent: threads may pack disjoint ranges.
inline PackedB pack_b_panels(bool tb, Index K, Index N, const float* B, Index ldb, float* dst, Index p0, Index p1) {
  PackedB pb{dst, K, N, (N + gk::kNR - 1) / gk::kNR * gk::kNR};
  for (Index pc = 0, kl = 0; pc < K; pc += kl) {
    kl = gk::k_block(pc, K);
    for (Index p = p0; p < p1; ++p) {
      const Index j = p * gk::kNR;
      gk::pack_b(tb, B, ldb, pc, kl, j, std::min<Index>(gk::kNR, N - j), dst + pc * pb.npad + p * kl * gk::kNR);
    }
  }
  return pb;
}
inline PackedB pack_b_matrix(bool tb, Index K, Index N, const float* B, Index ldb, float* dst) {
  return pack_b_panels(tb, K, N, B, ldb, dst, 0, (N + gk::kNR - 1) / gk::kNR);
}

/// C[M, n0:n1] = epilogue(alpha * op(A) * B[:, n0:n1] + beta * C) with a packed B (float, own kernel
/// builds only: gk::kGemmKernel). n0 must be a multiple of gk::kNR; C and the epilogue's pointers
/// are at column n0 of the product (row 0 of C). K = B.K.
inline void gemm_packed(bool ta, Index M, float alpha, const float* A, Index lda, const PackedB& B, Index n0, Index n1,
                        float beta, float* C, Index ldc, const GemmEpilogue<float>* ep = nullptr) {
  const Index K = B.K;
  if (M <= 0 || n1 <= n0) return;
  if (ep && ep->empty()) ep = nullptr;
  if (K <= 0) return gk::scale_only(M, n1 - n0, beta, C, ldc, ep);
  for (Index jc = n0; jc < n1; jc += gk::kNc) {
    const Index nc = std::min(gk::kNc, n1 - jc);
    for (Index pc = 0, kl = 0; pc < K; pc += kl) {
      kl = gk::k_block(pc, K);
      const bool first = pc == 0, last = pc + kl == K;
      gk::macro_kernel(ta, M, nc, kl, ta ? A + pc * lda : A + pc, lda, B.block(pc, kl, jc), alpha, first ? beta : 1.0f,
                       !first || beta != 0.0f, C + (jc - n0), ldc, last ? ep : nullptr, jc - n0);
    }
  }
}

/// C[M, N] = epilogue(alpha * op(A) * op(B) + beta * C) with the own kernel, packing B block by block
/// into `buf` (gk::kKcMax * gk::kNc floats, aligned).
inline void gemm_kernel(bool ta, bool tb, Index M, Index N, Index K, float alpha, const float* A, Index lda,
                        const float* B, Index ldb, float beta, float* C, Index ldc, const GemmEpilogue<float>* ep,
                        float* buf) {
  if (M <= 0 || N <= 0) return;
  if (ep && ep->empty()) ep = nullptr;
  if (K <= 0) return gk::scale_only(M, N, beta, C, ldc, ep);
  for (Index jc = 0; jc < N; jc += gk::kNc) {
    const Index nc = std::min(gk::kNc, N - jc);
    for (Index pc = 0, kl = 0; pc < K; pc += kl) {
      kl = gk::k_block(pc, K);
      const bool first = pc == 0, last = pc + kl == K;
      gk::pack_b(tb, B, ldb, pc, kl, jc, nc, buf);
      gk::macro_kernel(ta, M, nc, kl, ta ? A + pc * lda : A + pc, lda, buf, alpha, first ? beta : 1.0f,
                       !first || beta != 0.0f, C + jc, ldc, last ? ep : nullptr, jc);
    }
  }
}

}  // namespace keras::ops
