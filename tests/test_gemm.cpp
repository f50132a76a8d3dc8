// The GEMM paths (ops/gemm.hpp, ops/gemm_kernel.hpp) against a naive double reference: every
// transpose, alpha/beta, every epilogue part, odd sizes around the micro-tile (1, 7, 17, 33, 100+)
// and across the k-blocks (K > gk::kKc), a packed B with column ranges, float (the own micro-kernel
// where the build has it) and double (Eigen); results independent of the thread count.
#include <catch2/catch.hpp>
#include <keras/core/core.hpp>
#include <keras/ops/gemm.hpp>

#include <cmath>
#include <vector>

using keras::Index;
namespace ops = keras::ops;

namespace {

template <class T>
std::vector<T> random_vec(Index n, keras::Random& rng) {
  std::vector<T> v(static_cast<std::size_t>(std::max<Index>(n, 1)));
  for (auto& x : v) x = static_cast<T>(rng.uniform(-1.0, 1.0));
  return v;
}

struct EpParts {
  bool bias, scale, shift, clamp, residual;
};

/// The reference: C = epilogue(alpha op(A) op(B) + beta C0) in double.
template <class T>
std::vector<double> reference(bool ta, bool tb, Index M, Index N, Index K, double alpha, const std::vector<T>& A,
                              Index lda, const std::vector<T>& B, Index ldb, double beta, const std::vector<T>& C0,
                              const ops::GemmEpilogue<T>* ep) {
  std::vector<double> r(static_cast<std::size_t>(M * N));
  for (Index i = 0; i < M; ++i)
    for (Index j = 0; j < N; ++j) {
      double s = 0;
      for (Index k = 0; k < K; ++k)
        s += double(ta ? A[k * lda + i] : A[i * lda + k]) * double(tb ? B[j * ldb + k] : B[k * ldb + j]);
      double v = alpha * s + (beta != 0 ? beta * double(C0[i * N + j]) : 0.0);
      if (ep) {
        if (ep->bias) v += ep->bias[j];
        if (ep->scale) v *= ep->scale[j];
        if (ep->shift) v += ep->shift[j];
        if (ep->clamp) v = std::min(std::max(v, double(ep->lo)), double(ep->hi));
        if (ep->residual) v += ep->residual[i * ep->ldr + j];
      }
      r[i * N + j] = v;
    }
  return r;
}

/// Max |got - ref| relative to sqrt(K) (rounding of a K-term sum) and the magnitude.
template <class T>
double max_err(const std::vector<T>& got, const std::vector<double>& ref, Index K) {
  double e = 0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    e = std::max(e, std::abs(double(got[i]) - ref[i]) / ((1.0 + std::abs(ref[i])) * std::sqrt(double(K) + 1.0)));
  return e;
}

template <class T>
void check_shapes(double tol) {
  keras::Random rng(42);
  const std::vector<Index> ms = {1, 7, 13, 33, 100}, ns = {1, 7, 17, 33, 100}, ks = {1, 7, 17, 300};
  const std::vector<EpParts> eps = {{false, false, false, false, false}, {true, false, false, false, false},
                                    {false, true, true, false, false},   {true, true, true, true, false},
                                    {false, false, true, true, true},    {true, true, false, false, true}};
  int n = 0;
  for (Index M : ms)
    for (Index N : ns)
      for (Index K : ks)
        for (int t = 0; t < 4; ++t) {
          const bool ta = t & 1, tb = t & 2;
          const EpParts e = eps[static_cast<std::size_t>(n % eps.size())];
          const double alpha = n % 3 == 0 ? 1.0 : 0.75, beta = n % 4 == 0 ? 0.0 : (n % 4 == 1 ? 1.0 : -0.5);
          ++n;
          const Index lda = (ta ? M : K) + (n % 2), ldb = (tb ? K : N) + (n % 3 == 0 ? 3 : 0);
          auto A = random_vec<T>((ta ? K : M) * lda, rng);
          auto B = random_vec<T>((tb ? N : K) * ldb, rng);
          auto C0 = random_vec<T>(M * N, rng);
          auto bias = random_vec<T>(N, rng), scale = random_vec<T>(N, rng), shift = random_vec<T>(N, rng);
          auto res = random_vec<T>(M * N, rng);
          ops::GemmEpilogue<T> ep;
          if (e.bias) ep.bias = bias.data();
          if (e.scale) ep.scale = scale.data();
          if (e.shift) ep.shift = shift.data();
          if (e.clamp) {
            ep.clamp = true;
            ep.lo = T(-0.5);
            ep.hi = T(0.6);
          }
          if (e.residual) {
            ep.residual = res.data();
            ep.ldr = N;
          }
          const auto ref = reference<T>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, &ep);
          INFO("M " << M << " N " << N << " K " << K << " ta " << ta << " tb " << tb << " alpha " << alpha << " beta "
                    << beta << " bias " << e.bias << " scale " << e.scale << " shift " << e.shift << " clamp "
                    << e.clamp << " res " << e.residual);
          // the serial block with the fused epilogue (own kernel or Eigen + the scalar epilogue)
          auto C = C0;
          ops::detail::gemm_block_ep<T>(ta, tb, M, N, K, T(alpha), A.data(), lda, B.data(), ldb, T(beta), C.data(), N,
                                        &ep);
          CHECK(max_err(C, ref, K) <= tol);
          if (ep.empty()) {
            // the parallel gemm (no epilogue)
            auto C2 = C0;
            ops::gemm<T>(ta, tb, M, N, K, T(alpha), A.data(), lda, B.data(), ldb, T(beta), C2.data(), N);
            CHECK(max_err(C2, ref, K) <= tol);
          }
          if constexpr (std::is_same_v<T, float>) {
            // the micro-kernel itself (also where gemm_block picks Eigen for this size)
            if (ops::gk::kGemmKernel) {
              std::vector<float, Eigen::aligned_allocator<float>> buf(std::size_t(ops::gk::kKcMax * ops::gk::kNc));
              auto C3 = C0;
              ops::gemm_kernel(ta, tb, M, N, K, float(alpha), A.data(), lda, B.data(), ldb, float(beta), C3.data(), N,
                               &ep, buf.data());
              CHECK(max_err(C3, ref, K) <= tol);
              // a packed B, by column ranges starting on panel boundaries
              std::vector<float, Eigen::aligned_allocator<float>> packed(std::size_t(ops::gk::packed_size(K, N)));
              const ops::PackedB pb = ops::pack_b_matrix(tb, K, N, B.data(), ldb, packed.data());
              auto C4 = C0;
              const Index cut = std::min<Index>(N, ops::gk::kNR);
              for (auto [n0, n1] : {std::pair<Index, Index>{0, cut}, {cut, N}}) {
                ops::GemmEpilogue<float> epr = ep;
                if (epr.bias) epr.bias += n0;
                if (epr.scale) epr.scale += n0;
                if (epr.shift) epr.shift += n0;
                if (epr.residual) epr.residual += n0;
                ops::gemm_packed(ta, M, float(alpha), A.data(), lda, pb, n0, n1, float(beta), C4.data() + n0, N, &epr);
              }
              CHECK(max_err(C4, ref, K) <= tol);
            }
          }
        }
}

}  // namespace

TEST_CASE("GEMM with fused epilogue matches a double reference on many shapes (float)", "[ops][gemm]") {
  keras::set_num_threads(2);
  check_shapes<float>(2e-6);
}

TEST_CASE("GEMM with fused epilogue matches a double reference on many shapes (double)", "[ops][gemm]") {
  keras::set_num_threads(2);
  check_shapes<double>(1e-14);
}

TEST_CASE("GEMM: K across several k-blocks, N across column blocks, M edge tiles", "[ops][gemm]") {
  keras::Random rng(5);
  // K > kKc (k-blocks accumulate in C, the epilogue runs once after the last), N > kNc; a short
  // k tail joins the block before it (513: 256 + 257; 320: one block; 600: 256 + 256 + 88)
  for (auto [M, N, K] : {std::tuple<Index, Index, Index>{37, 1100, 600},
                         {130, 45, 513},
                         {5, 2049, 260},
                         {29, 70, Index(ops::gk::kKcMax)},
                         {61, 40, Index(ops::gk::kKcMax) + 1}}) {
    auto A = random_vec<float>(M * K, rng), B = random_vec<float>(K * N, rng), C0 = random_vec<float>(M * N, rng);
    auto bias = random_vec<float>(N, rng);
    ops::GemmEpilogue<float> ep;
    ep.bias = bias.data();
    ep.clamp = true;
    ep.lo = 0.0f;
    ep.hi = 6.0f;
    const auto ref = reference<float>(false, false, M, N, K, 1.0, A, K, B, N, 1.0, C0, &ep);
    auto C = C0;
    ops::detail::gemm_block_ep<float>(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 1.0f, C.data(), N, &ep);
    INFO("M " << M << " N " << N << " K " << K);
    CHECK(max_err(C, ref, K) <= 2e-6);
  }
}

TEST_CASE("GEMM: K = 0 scales C and applies the epilogue; NaN propagates through the clamp", "[ops][gemm]") {
  std::vector<float> C = {1, 2, 3, 4, 5, 6}, bias = {10, 20, 30};
  ops::GemmEpilogue<float> ep;
  ep.bias = bias.data();
  ops::detail::gemm_block_ep<float>(false, false, 2, 3, 0, 1.0f, nullptr, 1, nullptr, 3, 0.5f, C.data(), 3, &ep);
  CHECK(C == std::vector<float>{10.5f, 21, 31.5f, 12, 22.5f, 33});
  // NaN in A: the clamped output is NaN, as std::min(std::max(v, lo), hi) gives
  const Index M = 16, N = 40, K = 20;
  keras::Random rng(1);
  auto A = random_vec<float>(M * K, rng), B = random_vec<float>(K * N, rng);
  A[3 * K + 2] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> D(M * N);
  ops::GemmEpilogue<float> relu6;
  relu6.clamp = true;
  relu6.lo = 0;
  relu6.hi = 6;
  ops::detail::gemm_block_ep<float>(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, D.data(), N, &relu6);
  for (Index j = 0; j < N; ++j) CHECK(std::isnan(D[3 * N + j]));
  CHECK(std::isfinite(D[2 * N]));
}

TEST_CASE("gemm: the result does not depend on the thread count", "[ops][gemm]") {
  keras::Random rng(9);
  for (auto [M, N, K] : {std::tuple<Index, Index, Index>{500, 96, 160}, {36, 1280, 320}, {9, 700, 90}}) {
    auto A = random_vec<float>(M * K, rng), B = random_vec<float>(K * N, rng);
    std::vector<std::vector<float>> out;
    for (int t : {1, 2, 3}) {
      keras::set_num_threads(t);
      std::vector<float> C(std::size_t(M * N));
      ops::gemm<float>(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
      out.push_back(C);
    }
    CHECK(out[0] == out[1]);
    CHECK(out[0] == out[2]);
  }
  keras::set_num_threads(2);
}
