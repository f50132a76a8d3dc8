// The own SGEMM micro-kernel (ops/gemm_kernel.hpp) against Eigen's gebp on the GEMM shapes of
// MobileNetV2-192 and of the top-blocks training step, single-threaded, interleaved rep by rep in
// one process (the machine is shared: only the ratios of one run mean anything).
//
//   bench_gemm [seconds_per_shape=0.6]
//
// Per shape [M x K] * [K x N] (op: n = as is, t = transposed): GFLOP/s of Eigen (its kernel with
// kerascpp's packing buffers, the path gemm_block took before), of the own kernel packing B per
// call (gemm_kernel) and with B packed beforehand (gemm_packed: the convolution's weights), medians
// over interleaved repetitions; the ratios own / Eigen.
#include <keras/ops/gemm.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using keras::Index;
namespace ops = keras::ops;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
struct Shape {
  const char* what;
  bool ta, tb;
  Index M, N, K;
};
}  // namespace

int main(int argc, char** argv) {
  const double budget = argc > 1 ? std::atof(argv[1]) : 0.6;
  std::printf("own kernel: %s (MR %d, NR %d, kc %ld, nc %ld)\n", ops::gk::kIsa, ops::gk::kMR, ops::gk::kNR,
              long(ops::gk::kKc), long(ops::gk::kNc));
  const std::vector<Shape> shapes = {
      {"Conv1 im2col b1", false, false, 9216, 32, 27},
      {"expanded_conv_project", false, false, 9216, 16, 32},
      {"block_1_expand", false, false, 9216, 96, 16},
      {"block_2_project", false, false, 2304, 24, 144},
      {"block_2_expand", false, false, 2304, 144, 24},
      {"block_5_expand", false, false, 576, 192, 32},
      {"block_5_project", false, false, 576, 32, 192},
      {"block_10_expand", false, false, 144, 384, 64},
      {"block_12_expand", false, false, 144, 576, 96},
      {"block_12_project", false, false, 144, 96, 576},
      {"block_15_expand", false, false, 36, 960, 160},
      {"block_15_project", false, false, 36, 160, 960},
      {"Conv_1 b1", false, false, 36, 1280, 320},
      {"Conv_1 block 128", false, false, 128, 1280, 320},
      {"top: expand 128 rows", false, false, 128, 960, 160},
      {"top: dx expand", false, true, 128, 160, 960},
      {"top: dW expand", true, false, 160, 960, 128},
      {"top: dx Conv_1", false, true, 128, 320, 1280},
      {"top: dW Conv_1", true, false, 320, 1280, 128},
      {"top: dW project", true, false, 960, 160, 128},
      {"top: dW project 272 rows", true, false, 960, 160, 272},
      {"top: dW Conv_1 200 rows", true, false, 320, 1280, 200},
      {"top: Conv_1 200 rows", false, false, 200, 1280, 320},
      {"top: dW expand 272 rows", true, false, 160, 960, 272},
  };
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> U(-1, 1);
  float* buf = static_cast<float*>(Eigen::internal::aligned_malloc(sizeof(float) * ops::gk::kKcMax * ops::gk::kNc));
  std::printf("| shape | op | M | N | K | Eigen GFLOP/s | own | own prepacked | own / Eigen | prepacked / Eigen |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Shape& s : shapes) {
    std::vector<float> A(std::size_t(s.M * s.K)), B(std::size_t(s.K * s.N)), C(std::size_t(s.M * s.N));
    for (auto& v : A) v = U(rng);
    for (auto& v : B) v = U(rng);
    const Index lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
    std::vector<float, Eigen::aligned_allocator<float>> packed(std::size_t(ops::gk::packed_size(s.K, s.N)));
    const ops::PackedB pb = ops::pack_b_matrix(s.tb, s.K, s.N, B.data(), ldb, packed.data());
    const double flops = 2.0 * double(s.M) * double(s.N) * double(s.K);
    const int inner = std::max(1, int(2e7 / flops));
    auto eigen = [&] {
      constexpr int R = Eigen::RowMajor, Cm = Eigen::ColMajor;
      for (int i = 0; i < inner; ++i) {
        if (!s.ta && !s.tb)
          ops::detail::gemm_eigen<float, R, R>(s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N);
        else if (!s.ta)
          ops::detail::gemm_eigen<float, R, Cm>(s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N);
        else
          ops::detail::gemm_eigen<float, Cm, R>(s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N);
      }
    };
    auto own = [&] {
      for (int i = 0; i < inner; ++i)
        ops::gemm_kernel(s.ta, s.tb, s.M, s.N, s.K, 1.f, A.data(), lda, B.data(), ldb, 0.f, C.data(), s.N, nullptr,
                         buf);
    };
    auto pre = [&] {
      for (int i = 0; i < inner; ++i) ops::gemm_packed(s.ta, s.M, 1.f, A.data(), lda, pb, 0, s.N, 0.f, C.data(), s.N);
    };
    std::vector<double> te, to, tp;
    const double t_end = now() + budget;
    for (int r = 0; r < 3 || (now() < t_end && r < 200); ++r) {
      double t0 = now();
      eigen();
      double t1 = now();
      own();
      double t2 = now();
      pre();
      double t3 = now();
      te.push_back(flops * inner / (t1 - t0) * 1e-9);
      to.push_back(flops * inner / (t2 - t1) * 1e-9);
      tp.push_back(flops * inner / (t3 - t2) * 1e-9);
    }
    const double e = median(te), o = median(to), p = median(tp);
    std::printf("| %s | %c%c | %ld | %ld | %ld | %.1f | %.1f | %.1f | %.2f | %.2f |\n", s.what, s.ta ? 't' : 'n',
                s.tb ? 't' : 'n', long(s.M), long(s.N), long(s.K), e, o, p, o / e, p / e);
  }
  Eigen::internal::aligned_free(buf);
}
