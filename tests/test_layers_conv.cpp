// Gradient checks of the convolutional layer set (every layer MobileNetV2 needs) in double.
#include "layer_check.hpp"

#include <cmath>
#include <cstring>
#include <vector>

#include <keras/layers/conv2d.hpp>
#include <keras/layers/depthwise_conv2d.hpp>
#include <keras/layers/pooling.hpp>
#include <keras/layers/batch_normalization.hpp>
#include <keras/layers/merge.hpp>
#include <keras/layers/reshaping.hpp>

using namespace keras;
using testing::random_tensor;
using testing::require_gradients_ok;

TEST_CASE("Conv2D gradients: kernels, strides, paddings, bias, activation", "[layers][conv][gradcheck]") {
  Random rng(10);
  struct Case {
    Index k_h, k_w, s_h, s_w;
    const char* padding;
    bool bias;
    const char* act;
    Index h, w;
  };
  for (auto c : {Case{3, 3, 1, 1, "same", true, "linear", 5, 5}, Case{3, 3, 2, 2, "same", false, "linear", 6, 6},
                 Case{3, 3, 2, 2, "valid", true, "tanh", 7, 6}, Case{1, 1, 1, 1, "same", false, "linear", 4, 3},
                 Case{1, 1, 2, 2, "valid", true, "linear", 5, 5}, Case{2, 3, 2, 1, "same", true, "sigmoid", 5, 4},
                 Case{5, 5, 1, 1, "same", true, "linear", 4, 4}}) {
    layers::Conv2D<double> conv(
        3, {c.k_h, c.k_w}, {.strides = {c.s_h, c.s_w}, .padding = c.padding, .activation = c.act, .use_bias = c.bias});
    INFO("kernel " << c.k_h << "x" << c.k_w << " stride " << c.s_h << "," << c.s_w << " " << c.padding);
    // Conv2D's backward adds per-thread partial sums of dkernel and dbias in thread order: equal
    // across thread counts to rounding, not bit for bit (not promised; docs/performance.md).
    testing::LayerCheckOptions opt;
    opt.thread_tolerance = 1e-13;
    testing::require_layer_passes(conv, {random_tensor({2, c.h, c.w, 2}, rng)}, opt);
  }
}

TEST_CASE("DepthwiseConv2D gradients, depth_multiplier 1 and 2", "[layers][conv][gradcheck]") {
  Random rng(11);
  for (Index m : {1, 2})
    for (Index s : {1, 2})
      for (const char* pad : {"same", "valid"}) {
        layers::DepthwiseConv2D<double> dw(
            3, {.strides = {s, s}, .padding = pad, .depth_multiplier = m, .use_bias = (m == 2)});
        INFO("multiplier " << m << " stride " << s << " " << pad);
        require_gradients_ok(dw, {random_tensor({2, 6, 5, 3}, rng)});
      }
}

TEST_CASE("BatchNormalization gradients in training and inference mode, and frozen", "[layers][gradcheck]") {
  Random rng(12);
  layers::BatchNormalization<double> bn_train;
  require_gradients_ok(bn_train, {random_tensor({3, 2, 2, 4}, rng)}, /*training=*/true);
  layers::BatchNormalization<double> bn_infer({.center = false});
  require_gradients_ok(bn_infer, {random_tensor({3, 2, 2, 4}, rng)}, false);
  layers::BatchNormalization<double> bn2({.scale = false});
  require_gradients_ok(bn2, {random_tensor({5, 3}, rng)}, true);
}

TEST_CASE("BatchNormalization: batch statistics in training, moving statistics when frozen", "[layers]") {
  layers::BatchNormalization<double> bn({.momentum = 0.5, .epsilon = 0.0});
  Tensor<double> x({4, 1}, {1, 2, 3, 6});  // mean 3, variance 3.5
  bn.build(Shape{-1, 1});
  Tensor<double> y;
  bn.forward({&x}, y, true);
  CHECK(y[0] == Approx((1 - 3) / std::sqrt(3.5)));
  CHECK(bn.moving_mean().value[0] == Approx(0.5 * 0 + 0.5 * 3));
  CHECK(bn.moving_variance().value[0] == Approx(0.5 * 1 + 0.5 * 3.5));
  bn.set_trainable(false);  // frozen: inference mode even when training
  bn.forward({&x}, y, true);
  CHECK(y[0] == Approx((1 - 1.5) / std::sqrt(2.25)));
  CHECK(bn.moving_mean().value[0] == Approx(1.5));
}

TEST_CASE(
    "BatchNormalization in float on large batches: statistics, output and gradients match a double reference, "
    "for any thread count",
    "[layers]") {
  // Big enough for the threaded, chunked reductions; a mean far from zero relative to the spread
  // (100 +- 0.5) is where a one-pass E[x^2] - E[x]^2 in float would fail.
  const Index N = 8, H = 40, W = 40, C = 24, M = N * H * W;
  Random rng(13);
  Tensor<float> x({N, H, W, C}), dy({N, H, W, C});
  for (Index i = 0; i < x.size(); ++i) {
    x[i] = static_cast<float>(100.0 + (i % C) + rng.uniform(-0.5, 0.5) * (1 + i % 3));
    dy[i] = static_cast<float>(rng.uniform(-1, 1));
  }
  // double reference, two passes
  std::vector<double> mean(C, 0.0), var(C, 0.0), sd(C, 0.0), sdx(C, 0.0);
  for (Index r = 0; r < M; ++r)
    for (Index c = 0; c < C; ++c) mean[c] += x[r * C + c] / double(M);
  for (Index r = 0; r < M; ++r)
    for (Index c = 0; c < C; ++c) var[c] += (x[r * C + c] - mean[c]) * (x[r * C + c] - mean[c]) / double(M);
  const double eps = 1e-3;
  std::vector<double> gamma(C), beta(C);
  for (Index c = 0; c < C; ++c) gamma[c] = 0.5 + 0.1 * c, beta[c] = 0.2 * c - 1;
  auto xhat = [&](Index r, Index c) { return (x[r * C + c] - mean[c]) / std::sqrt(var[c] + eps); };
  for (Index r = 0; r < M; ++r)
    for (Index c = 0; c < C; ++c) sd[c] += dy[r * C + c], sdx[c] += dy[r * C + c] * xhat(r, c);

  std::vector<Tensor<float>> ys, dxs, dgammas, dbetas;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    layers::BatchNormalization<float> bn({.momentum = 0.0});
    bn.build(Shape{-1, H, W, C});
    for (Index c = 0; c < C; ++c) bn.gamma()->value[c] = float(gamma[c]), bn.beta()->value[c] = float(beta[c]);
    Tensor<float> y, dx;
    bn.forward({&x}, y, true);
    bn.gamma()->grad.setZero();
    bn.beta()->grad.setZero();
    bn.backward({&x}, y, dy, {&dx});
    INFO(threads << " threads");
    for (Index c = 0; c < C; ++c) {
      REQUIRE(bn.moving_mean().value[c] == Approx(mean[c]).epsilon(1e-6));
      REQUIRE(bn.moving_variance().value[c] == Approx(var[c]).epsilon(1e-4));
      REQUIRE(bn.beta()->grad[c] == Approx(sd[c]).epsilon(1e-4).margin(1e-2));
      REQUIRE(bn.gamma()->grad[c] == Approx(sdx[c]).epsilon(1e-3).margin(1e-1));
    }
    double worst_y = 0, worst_dx = 0;
    for (Index r = 0; r < M; ++r)
      for (Index c = 0; c < C; ++c) {
        const double a = gamma[c] / std::sqrt(var[c] + eps);
        worst_y = std::max(worst_y, std::abs(y[r * C + c] - (gamma[c] * xhat(r, c) + beta[c])));
        const double ref = a * (dy[r * C + c] - sd[c] / M - xhat(r, c) * sdx[c] / M);
        worst_dx = std::max(worst_dx, std::abs(dx[r * C + c] - ref));
      }
    CHECK(worst_y < 1e-3);
    CHECK(worst_dx < 1e-3);
    ys.push_back(y), dxs.push_back(dx), dgammas.push_back(bn.gamma()->grad), dbetas.push_back(bn.beta()->grad);
  }
  set_num_threads(2);
  for (std::size_t k = 1; k < ys.size(); ++k) {
    CHECK(std::memcmp(ys[0].data(), ys[k].data(), sizeof(float) * ys[0].size()) == 0);
    CHECK(std::memcmp(dxs[0].data(), dxs[k].data(), sizeof(float) * dxs[0].size()) == 0);
    CHECK(std::memcmp(dgammas[0].data(), dgammas[k].data(), sizeof(float) * C) == 0);
    CHECK(std::memcmp(dbetas[0].data(), dbetas[k].data(), sizeof(float) * C) == 0);
  }
}

TEST_CASE("Pooling, padding, merge and reshaping gradients", "[layers][gradcheck]") {
  Random rng(13);
  // distinct values so max pooling has no ties
  Tensor<double> x({2, 6, 5, 3});
  std::vector<double> vals(x.size());
  for (Index i = 0; i < x.size(); ++i) vals[i] = 0.01 * static_cast<double>(i);
  std::shuffle(vals.begin(), vals.end(), rng.engine());
  std::copy(vals.begin(), vals.end(), x.data());
  for (const char* pad : {"valid", "same"}) {
    layers::MaxPooling2D<double> mp({2, 2}, {.padding = pad});
    require_gradients_ok(mp, {x});
    layers::AveragePooling2D<double> ap({3, 3}, {.strides = {{2, 2}}, .padding = pad});
    require_gradients_ok(ap, {x});
  }
  layers::GlobalAveragePooling2D<double> gap;
  require_gradients_ok(gap, {x});
  layers::GlobalMaxPooling2D<double> gmp;
  require_gradients_ok(gmp, {x});
  layers::ZeroPadding2D<double> zp(layers::Padding2D({0, 1}, {2, 1}));
  require_gradients_ok(zp, {x});
  CHECK(zp.compute_output_shape({{-1, 6, 5, 3}}) == Shape{-1, 7, 8, 3});
  layers::Add<double> add;
  require_gradients_ok(add, {random_tensor({2, 3}, rng), random_tensor({2, 3}, rng), random_tensor({2, 3}, rng)});
  layers::Concatenate<double> cat;
  require_gradients_ok(cat, {random_tensor({2, 2, 3}, rng), random_tensor({2, 2, 1}, rng)});
  layers::Concatenate<double> cat1(1);
  require_gradients_ok(cat1, {random_tensor({2, 2, 3}, rng), random_tensor({2, 4, 3}, rng)});
  layers::Reshape<double> rs({-1, 2});
  require_gradients_ok(rs, {random_tensor({2, 3, 2}, rng)});
  layers::Rescaling<double> sc(1.0 / 127.5, -1.0);
  require_gradients_ok(sc, {random_tensor({2, 4}, rng)});
}

TEST_CASE("Merge and reshape layers report bad shapes", "[layers][errors]") {
  layers::Add<float> add({.name = "my_add"});
  CHECK_THROWS_AS(add.compute_output_shape({{-1, 3}, {-1, 4}}), ShapeError);
  layers::Reshape<float> rs({5});
  CHECK_THROWS_AS(rs.compute_output_shape({{-1, 2, 3}}), ShapeError);
  layers::Conv2D<float> conv(4, 3, {.name = "c"});
  CHECK_THROWS_AS(conv.compute_output_shape({{-1, 5, 5}}), ShapeError);
  CHECK_THROWS_AS(layers::Conv2D<float>(4, 3, {.padding = "full"}), ValueError);
  layers::Conv2D<float> big(4, 7, {.padding = "valid"});
  CHECK_THROWS_AS(big.compute_output_shape({{-1, 5, 5, 3}}), ValueError);
}

// Conv2D's inference path caches its kernel packed for the GEMM micro-kernel, keyed on the kernel
// variable's version: every way the library changes the kernel must reach the next prediction.
TEST_CASE("Conv2D inference sees every change of its kernel (packed-kernel cache)", "[layers][conv][gemm]") {
  set_random_seed(3);
  auto in = Input<float>({6, 6, 40});
  auto conv = std::make_shared<layers::Conv2D<float>>(48, layers::Size2(1), layers::Conv2DOptions{.use_bias = false});
  auto out = (*conv)(in);
  Model<float> m(in, out);
  Tensor<float> x({2, 6, 6, 40});
  Random rng(11);
  for (Index i = 0; i < x.size(); ++i) x[i] = float(rng.uniform(-1.0, 1.0));
  // the reference: a fresh layer-by-layer pass (training mode packs per call, never the cache)
  auto fresh = [&] { return m(x, true); };
  auto same = [](const Tensor<float>& a, const Tensor<float>& b) {
    REQUIRE(a.shape() == b.shape());
    double d = 0;
    for (Index i = 0; i < a.size(); ++i) d = std::max(d, double(std::abs(a[i] - b[i])));
    return d;
  };
  Tensor<float> p0 = m.predict(x);
  CHECK(same(p0, fresh()) < 1e-5);
  // 1. through Conv2D::kernel()
  conv->kernel().value[5] += 1.0f;
  Tensor<float> p1 = m.predict(x);
  CHECK(same(p1, p0) > 1e-3);
  CHECK(same(p1, fresh()) < 1e-5);
  // 2. through variables()
  m.variables()[0]->value[7] -= 2.0f;
  Tensor<float> p2 = m.predict(x);
  CHECK(same(p2, p1) > 1e-3);
  CHECK(same(p2, fresh()) < 1e-5);
  // 3. a kept Variable& written after a prediction, then changed()
  Variable<float>& k = conv->kernel();
  (void)m.predict(x);
  k.value[9] += 3.0f;
  k.changed();
  Tensor<float> p3 = m.predict(x);
  CHECK(same(p3, p2) > 1e-3);
  CHECK(same(p3, fresh()) < 1e-5);
  // 4. an optimizer step
  m.compile(optimizers::SGD<float>({.learning_rate = 0.5}), losses::MeanSquaredError<float>());
  Tensor<float> y({2, 6, 6, 48}, 0.0f);
  m.train_on_batch(x, y);
  Tensor<float> p4 = m.predict(x);
  CHECK(same(p4, p3) > 1e-3);
  CHECK(same(p4, fresh()) < 1e-5);
}
