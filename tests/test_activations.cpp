#include <catch2/catch.hpp>

#include <cmath>
#include <keras/core/random.hpp>
#include <keras/ops/activations.hpp>

#include "gradient_check.hpp"

using keras::Activation;
using keras::Index;
using keras::Tensor;

namespace {

/// Values in [-3, 3] (x-scale adjustable) kept at least `gap` away from the given kinks.
Tensor<double> sample_away_from(keras::Random& rng, const keras::Shape& shape, std::vector<double> kinks,
                                double lo = -4, double hi = 4, double gap = 0.05) {
  Tensor<double> x(shape);
  for (Index i = 0; i < x.size(); ++i) {
    double v;
    bool ok;
    do {
      v = rng.uniform(lo, hi);
      ok = true;
      for (double k : kinks) ok = ok && std::abs(v - k) > gap;
    } while (!ok);
    x[i] = v;
  }
  return x;
}

/// Gradient check of f(x) = sum(w * act(x)) with random w.
double activation_grad_error(Activation id, Tensor<double>& x, keras::Random& rng) {
  Tensor<double> w(x.shape()), y, dx;
  for (Index i = 0; i < w.size(); ++i) w[i] = rng.uniform(-1, 1);
  keras::activation_forward(id, x, y);
  keras::activation_backward(id, x, y, w, dx);
  auto f = [&] {
    Tensor<double> yy;
    keras::activation_forward(id, x, yy);
    return (yy.array() * w.array()).sum();
  };
  auto r = keras::testing::check_gradient(f, x, dx);
  INFO(keras::activation_name(id) << ": " << r.str());
  return r.max_rel_error;
}

}  // namespace

TEST_CASE("every activation's backward matches central differences", "[activations]") {
  keras::Random rng(42);
  const std::vector<std::pair<std::string, std::vector<double>>> cases = {
      {"linear", {}},         {"relu", {0}},       {"relu6", {0, 6}}, {"leaky_relu", {0}}, {"sigmoid", {}},
      {"tanh", {}},           {"softmax", {}},     {"softplus", {}},  {"softsign", {0}},   {"elu", {0}},
      {"selu", {0}},          {"swish", {}},       {"silu", {}},      {"gelu", {}},        {"hard_sigmoid", {-3, 3}},
      {"hard_silu", {-3, 3}}, {"exponential", {}},
  };
  for (const auto& [name, kinks] : cases) {
    Activation id = keras::activation_from_name(name);
    // relu6 needs samples above 6 too.
    Tensor<double> x = sample_away_from(rng, {3, 5}, kinks, name == "relu6" ? -2.0 : -4.0, name == "relu6" ? 8.0 : 4.0);
    INFO("activation " << name);
    CHECK(activation_grad_error(id, x, rng) <= 1e-6);
  }
  // Softmax on a rank-4 NHWC tensor (over channels) as well.
  Tensor<double> x4 = sample_away_from(rng, {2, 2, 3, 4}, {});
  CHECK(activation_grad_error(Activation::Softmax, x4, rng) <= 1e-6);
}

TEST_CASE("activation values match Keras formulas", "[activations]") {
  Tensor<double> x({1, 5}, {-2.0, -0.5, 0.0, 0.5, 7.0});
  Tensor<double> y;
  auto run = [&](const char* name) {
    keras::activation_forward(keras::activation_from_name(name), x, y);
    return y;
  };
  auto r = run("relu6");
  CHECK(r[0] == 0.0);
  CHECK(r[3] == 0.5);
  CHECK(r[4] == 6.0);
  r = run("gelu");  // exact (erf) form, Keras default approximate=False
  CHECK(r[3] == Approx(0.5 * 0.5 * (1 + std::erf(0.5 / std::sqrt(2.0)))).epsilon(1e-14));
  CHECK(r[0] == Approx(-0.04550026389635842).epsilon(1e-12));
  r = run("selu");
  CHECK(r[0] == Approx(1.0507009873554805 * 1.6732632423543772 * (std::exp(-2.0) - 1)).epsilon(1e-14));
  CHECK(r[4] == Approx(1.0507009873554805 * 7.0).epsilon(1e-14));
  r = run("hard_sigmoid");  // Keras 3: relu6(x + 3) / 6
  CHECK(r[0] == Approx(1.0 / 6.0));
  CHECK(r[2] == 0.5);
  CHECK(r[4] == 1.0);
  r = run("softplus");
  CHECK(r[4] == Approx(7.0 + std::log1p(std::exp(-7.0))).epsilon(1e-14));
  r = run("swish");
  CHECK(r[3] == Approx(0.5 / (1 + std::exp(-0.5))).epsilon(1e-14));
  r = run("elu");
  CHECK(r[1] == Approx(std::exp(-0.5) - 1).epsilon(1e-14));
  r = run("leaky_relu");
  CHECK(r[0] == Approx(-0.4));

  // Softmax: stable for huge logits, rows sum to 1, ties are uniform.
  Tensor<double> big({2, 3}, {1000.0, 1000.0, 1000.0, 1e4, 0.0, -1e4});
  keras::activation_forward(Activation::Softmax, big, y);
  CHECK(y[0] == Approx(1.0 / 3));
  CHECK(y[3] == 1.0);
  CHECK(y[4] == 0.0);
  Tensor<float> xf({1, 3}, {1.f, 2.f, 3.f}), yf;
  keras::activation_forward(Activation::Softmax, xf, yf);
  const double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0);
  CHECK(yf[2] == Approx(e3 / (e1 + e2 + e3)).epsilon(1e-6));

  // Sigmoid does not overflow.
  Tensor<double> ext({2}, {-800.0, 800.0});
  keras::activation_forward(Activation::Sigmoid, ext, y);
  CHECK(y[0] == 0.0);
  CHECK(y[1] == 1.0);
}

TEST_CASE("activations work in place and reuse buffers", "[activations]") {
  Tensor<float> x({2, 2}, {-1.f, 2.f, 3.f, -4.f});
  keras::activation_forward(Activation::ReLU, x, x);
  CHECK(x[0] == 0.f);
  CHECK(x[2] == 3.f);
  Tensor<float> big({1000});
  const float* p = big.data();
  Tensor<float> small({3, 3}, 1.f);
  keras::activation_forward(Activation::Tanh, small, big);
  CHECK(big.data() == p);
  CHECK(big.shape() == keras::Shape{3, 3});
  // Large tensors take the OpenMP path; results must equal the serial formula.
  Tensor<float> l({300, 300}), ly;
  for (Index i = 0; i < l.size(); ++i) l[i] = float(i % 17) - 8.f;
  keras::activation_forward(Activation::ReLU6, l, ly);
  for (Index i = 0; i < l.size(); ++i) REQUIRE(ly[i] == std::min(std::max(l[i], 0.f), 6.f));
}

TEST_CASE("unknown activation names throw ValueError naming them", "[activations]") {
  CHECK_THROWS_AS(keras::activation_from_name("foo"), keras::ValueError);
  CHECK_THROWS_WITH(keras::activation_from_name("foo"),
                    Catch::Contains("Unknown activation: 'foo'") && Catch::Contains("relu6"));
  CHECK(keras::activation_from_name("") == Activation::Linear);
  CHECK(keras::activation_from_name("silu") == Activation::Swish);
  CHECK(keras::activation_name(Activation::Swish) == "swish");
}

TEST_CASE("generalized ReLU follows the Keras ReLU layer", "[activations]") {
  Tensor<double> x({1, 7}, {-3.0, -1.0, 0.5, 1.0, 2.5, 4.0, 9.0});
  Tensor<double> y;
  // max_value 4, negative_slope 0.1, threshold 1
  keras::relu_forward(x, y, 4.0, 0.1, 1.0);
  CHECK(y[0] == Approx(0.1 * (-3.0 - 1.0)));
  CHECK(y[1] == Approx(0.1 * (-1.0 - 1.0)));
  CHECK(y[2] == Approx(0.1 * (0.5 - 1.0)));
  CHECK(y[3] == Approx(0.0));  // x == threshold: Keras's implementation (x > threshold) gives 0
  CHECK(y[4] == 2.5);
  CHECK(y[5] == 4.0);
  CHECK(y[6] == 4.0);
  // Default = plain relu; max_value 6 = relu6.
  keras::relu_forward(x, y);
  CHECK(y[0] == 0.0);
  CHECK(y[6] == 9.0);
  keras::relu_forward(x, y, keras::ReluParams{.max_value = 6.0});
  CHECK(y[6] == 6.0);
  CHECK_THROWS_AS(keras::relu_forward(x, y, -1.0), keras::ValueError);
  CHECK_THROWS_AS(keras::relu_forward(x, y, 6.0, -0.5), keras::ValueError);

  // Gradient check away from the kinks (threshold 0.7, max_value 3).
  keras::Random rng(7);
  Tensor<double> xs = sample_away_from(rng, {4, 6}, {0.7, 3.0});
  Tensor<double> w(xs.shape()), dx;
  for (Index i = 0; i < w.size(); ++i) w[i] = rng.uniform(-1, 1);
  keras::relu_backward(xs, w, dx, 3.0, 0.3, 0.7);
  auto f = [&] {
    Tensor<double> yy;
    keras::relu_forward(xs, yy, 3.0, 0.3, 0.7);
    return (yy.array() * w.array()).sum();
  };
  auto r = keras::testing::check_gradient(f, xs, dx);
  INFO(r.str());
  CHECK(r.max_rel_error <= 1e-6);
}
