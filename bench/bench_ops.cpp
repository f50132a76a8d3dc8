// Micro-benchmark of the conv kernels: GFLOP/s of a 1x1 convolution (pure GEMM), a 3x3 depthwise
// convolution, and the conv/depthwise layers of MobileNetV2 at 192x192 (batch 32) end to end.
//
//   bench_ops [threads=all] [batch=32]
#include <keras/core/core.hpp>
#include <keras/ops/conv2d.hpp>
#include <keras/ops/depthwise_conv2d.hpp>
#include <keras/ops/pooling.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

using keras::Index;
using keras::Tensor;
namespace ops = keras::ops;

namespace {

template <class F>
double best_seconds(F&& f, int reps = 5) {
  f();  // warm-up (first touch of buffers)
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

Tensor<float> filled(const keras::Shape& s, keras::Random& rng) {
  Tensor<float> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = static_cast<float>(rng.uniform(-1, 1));
  return t;
}

struct Layer {
  bool depthwise;
  Index h, w, cin, cout, k, s;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1)
    keras::set_num_threads(std::atoi(argv[1]));
  else
    keras::set_num_threads(keras::get_num_threads());
  const Index batch = argc > 2 ? std::atoi(argv[2]) : 32;
  std::printf("threads: %d, batch %ld\n", keras::get_num_threads(), long(batch));
  keras::Random rng(1);

  {  // 1x1 convolution = GEMM [N*24*24, 192] x [192, 64]
    auto x = filled({batch, 24, 24, 192}, rng), k = filled({1, 1, 192, 64}, rng), b = filled({64}, rng);
    auto g = ops::conv_geometry(24, 24, 192, 1, 1, 1, 1, "same");
    Tensor<float> y;
    ops::Conv2DWorkspace<float> ws;
    const double flop = 2.0 * batch * 24 * 24 * 192 * 64;
    double t = best_seconds([&] { ops::conv2d_forward(g, x, k, &b, y, ws); });
    std::printf("conv 1x1  [%ld,24,24,192]->64 forward : %7.2f ms  %6.1f GFLOP/s\n", long(batch), t * 1e3,
                flop / t * 1e-9);
    Tensor<float> dx, dk(k.shape(), 0.f), db({64}, 0.f);
    t = best_seconds([&] { ops::conv2d_backward(g, x, k, y, &dx, &dk, &db, ws); });
    std::printf("conv 1x1  backward (dx, dW, db)        : %7.2f ms  %6.1f GFLOP/s\n", t * 1e3, 2 * flop / t * 1e-9);
    // reference: Eigen's own (internally threaded) GEMM on the same matrices
    t = best_seconds(
        [&] { y.matrix(batch * 24 * 24, 64).noalias() = x.matrix(batch * 24 * 24, 192) * k.matrix(192, 64); });
    std::printf("  (plain Eigen GEMM, Eigen threads)    : %7.2f ms  %6.1f GFLOP/s\n", t * 1e3, flop / t * 1e-9);
  }
  {  // 3x3 convolution (im2col + GEMM)
    auto x = filled({batch, 48, 48, 32}, rng), k = filled({3, 3, 32, 64}, rng);
    auto g = ops::conv_geometry(48, 48, 32, 3, 3, 1, 1, "same");
    Tensor<float> y;
    ops::Conv2DWorkspace<float> ws;
    const double flop = 2.0 * batch * 48 * 48 * 9 * 32 * 64;
    double t = best_seconds([&] { ops::conv2d_forward<float>(g, x, k, nullptr, y, ws); });
    std::printf("conv 3x3  [%ld,48,48,32]->64 forward  : %7.2f ms  %6.1f GFLOP/s\n", long(batch), t * 1e3,
                flop / t * 1e-9);
    Tensor<float> dx, dk(k.shape(), 0.f);
    t = best_seconds([&] { ops::conv2d_backward<float>(g, x, k, y, &dx, &dk, nullptr, ws); });
    std::printf("conv 3x3  backward (dx, dW)            : %7.2f ms  %6.1f GFLOP/s\n", t * 1e3, 2 * flop / t * 1e-9);
  }
  {  // depthwise 3x3 on [N,48,48,144]
    auto x = filled({batch, 48, 48, 144}, rng), k = filled({3, 3, 144, 1}, rng), b = filled({144}, rng);
    auto g = ops::conv_geometry(48, 48, 144, 3, 3, 1, 1, "same");
    Tensor<float> y;
    const double flop = 2.0 * batch * 48 * 48 * 144 * 9;
    double t = best_seconds([&] { ops::depthwise_conv2d_forward(g, x, k, &b, y); });
    std::printf("dw 3x3    [%ld,48,48,144] forward     : %7.2f ms  %6.1f GFLOP/s  (%.1f GB/s in+out)\n", long(batch),
                t * 1e3, flop / t * 1e-9, 2.0 * x.size() * 4 / t * 1e-9);
    Tensor<float> dx, dk(k.shape(), 0.f), db({144}, 0.f);
    ops::DepthwiseConv2DWorkspace<float> ws;
    t = best_seconds([&] { ops::depthwise_conv2d_backward(g, x, k, y, &dx, &dk, &db, ws); });
    std::printf("dw 3x3    backward (dx, dW, db)        : %7.2f ms  %6.1f GFLOP/s\n", t * 1e3, 2 * flop / t * 1e-9);
    auto g2 = ops::conv_geometry(48, 48, 144, 3, 3, 2, 2, "same");
    t = best_seconds([&] { ops::depthwise_conv2d_forward(g2, x, k, &b, y); });
    std::printf("dw 3x3/2  [%ld,48,48,144] forward     : %7.2f ms  %6.1f GFLOP/s\n", long(batch), t * 1e3,
                flop / 4 / t * 1e-9);
  }

  // MobileNetV2 (alpha 1) at 192x192: every Conv2D / DepthwiseConv2D, forward only (no BN/ReLU).
  std::vector<Layer> net;
  Index hw = 96, c = 32;
  net.push_back({false, 192, 192, 3, 32, 3, 2});
  net.push_back({true, 96, 96, 32, 32, 3, 1});
  net.push_back({false, 96, 96, 32, 16, 1, 1});
  c = 16;
  const int cfg[][4] = {{6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  for (auto& bl : cfg)
    for (int i = 0; i < bl[2]; ++i) {
      const Index s = i == 0 ? bl[3] : 1, e = c * bl[0];
      net.push_back({false, hw, hw, c, e, 1, 1});
      net.push_back({true, hw, hw, e, e, 3, s});
      hw = (hw + s - 1) / s;
      net.push_back({false, hw, hw, e, bl[1], 1, 1});
      c = bl[1];
    }
  net.push_back({false, hw, hw, c, 1280, 1, 1});
  double total = 0, t_pw = 0, t_dw = 0, t_full = 0, flops = 0;
  ops::Conv2DWorkspace<float> ws;
  Tensor<float> y;
  for (const Layer& L : net) {
    auto x = filled({batch, L.h, L.w, L.cin}, rng);
    auto g = ops::conv_geometry(L.h, L.w, L.cin, L.k, L.k, L.s, L.s, "same");
    double t, fl;
    if (L.depthwise) {
      auto k = filled({L.k, L.k, L.cin, 1}, rng), b = filled({L.cin}, rng);
      t = best_seconds([&] { ops::depthwise_conv2d_forward(g, x, k, &b, y); }, 3);
      fl = 2.0 * batch * g.out_h * g.out_w * L.cin * L.k * L.k;
      t_dw += t;
    } else {
      auto k = filled({L.k, L.k, L.cin, L.cout}, rng), b = filled({L.cout}, rng);
      t = best_seconds([&] { ops::conv2d_forward(g, x, k, &b, y, ws); }, 3);
      fl = 2.0 * batch * g.out_h * g.out_w * L.cin * L.cout * L.k * L.k;
      (L.k == 1 ? t_pw : t_full) += t;
    }
    total += t;
    flops += fl;
  }
  std::printf(
      "MobileNetV2-192 conv layers, batch %ld: %.1f ms (1x1 %.1f, depthwise %.1f, 3x3 %.1f) = %.1f GFLOP/s"
      " -> %.0f images/s (convs only)\n",
      long(batch), total * 1e3, t_pw * 1e3, t_dw * 1e3, t_full * 1e3, flops / total * 1e-9, batch / total);
  return 0;
}
