#include <catch2/catch.hpp>

#include <cmath>
#include <keras/core/random.hpp>
#include <keras/losses/losses.hpp>

#include "gradient_check.hpp"

using keras::Index;
using keras::Shape;
using keras::Tensor;
namespace losses = keras::losses;

namespace {

Tensor<double> uniform(keras::Random& rng, const Shape& s, double lo, double hi) {
  Tensor<double> t(s);
  for (Index i = 0; i < t.size(); ++i) t[i] = rng.uniform(lo, hi);
  return t;
}

Tensor<double> one_hot_rows(keras::Random& rng, const Shape& s) {
  Tensor<double> t(s, 0.0);
  const Index C = s.back();
  for (Index r = 0; r < t.size() / C; ++r) t[r * C + static_cast<Index>(rng.index(C))] = 1.0;
  return t;
}

/// Gradient check of loss.compute(y_true, .) at y_pred.
double loss_grad_error(const losses::Loss<double>& loss, const Tensor<double>& y_true, Tensor<double> y_pred) {
  Tensor<double> g;
  loss.compute(y_true, y_pred, &g);
  REQUIRE(g.shape() == y_pred.shape());
  auto f = [&] { return loss.compute(y_true, y_pred, nullptr); };
  auto r = keras::testing::check_gradient(f, y_pred, g);
  INFO(loss.name() << ": " << r.str());
  CHECK(r.max_rel_error <= 1e-6);
  return r.max_rel_error;
}

}  // namespace

TEST_CASE("CategoricalCrossentropy known values", "[losses]") {
  losses::CategoricalCrossentropy<double> cce;
  CHECK(cce.name() == "categorical_crossentropy");
  // Keras docstring example: [0.05, 0.95, 0] has an exact 0, clipped to 1e-7 (unused: its label is 0).
  Tensor<double> yt({2, 3}, {0, 1, 0, 0, 0, 1});
  Tensor<double> yp({2, 3}, {0.05, 0.95, 0.0, 0.1, 0.8, 0.1});
  CHECK(cce(yt, yp) == Approx((-std::log(0.95) - std::log(0.1)) / 2).epsilon(1e-12));
  CHECK(cce(yt, yp) == Approx(1.1769392).epsilon(1e-6));

  // Unnormalized probabilities are normalized along the axis first: [1, 2, 1] -> [0.25, 0.5, 0.25].
  CHECK(cce(Tensor<double>({1, 3}, {0, 1, 0}), Tensor<double>({1, 3}, {1, 2, 1})) == Approx(std::log(2.0)));

  // Clipping: p = 0 on the true class gives -log(1e-7); the gradient is zero there (clipped) and zero elsewhere
  // (targets 0), so the whole gradient is 0.
  Tensor<double> g;
  double l = cce.compute(Tensor<double>({1, 3}, {1, 0, 0}), Tensor<double>({1, 3}, {0.0, 0.5, 0.5}), &g);
  CHECK(l == Approx(-std::log(1e-7)).epsilon(1e-12));
  CHECK(g[0] == 0.0);
  CHECK(g[1] == 0.0);
  CHECK(g[2] == 0.0);
  // p = 1 on the true class is clipped to 1 - 1e-7.
  l = cce.compute(Tensor<double>({1, 3}, {1, 0, 0}), Tensor<double>({1, 3}, {1.0, 0.0, 0.0}), &g);
  CHECK(l == Approx(-std::log(1 - 1e-7)).epsilon(1e-9));
  CHECK(g[0] == 0.0);

  // Label smoothing 0.1 over 3 classes: [0, 1, 0] -> [1/30, 28/30, 1/30].
  losses::CategoricalCrossentropy<double> smooth({.label_smoothing = 0.1});
  const double a = 0.1 / 3, b = 0.9 + 0.1 / 3;
  CHECK(smooth(Tensor<double>({1, 3}, {0, 1, 0}), Tensor<double>({1, 3}, {0.2, 0.7, 0.1})) ==
        Approx(-(a * std::log(0.2) + b * std::log(0.7) + a * std::log(0.1))).epsilon(1e-12));

  // from_logits: -log softmax([1, 2, 3])[2]; gradient softmax - y, averaged over 1 row.
  losses::CategoricalCrossentropy<double> logits({.from_logits = true});
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  l = logits.compute(Tensor<double>({1, 3}, {0, 0, 1}), Tensor<double>({1, 3}, {1, 2, 3}), &g);
  CHECK(l == Approx(std::log(z) - 3.0).epsilon(1e-12));
  CHECK(g[0] == Approx(std::exp(1.0) / z).epsilon(1e-12));
  CHECK(g[2] == Approx(std::exp(3.0) / z - 1.0).epsilon(1e-12));
  // Huge logits stay finite.
  CHECK(std::isfinite(logits(Tensor<double>({1, 2}, {1, 0}), Tensor<double>({1, 2}, {-1000.0, 1000.0}))));
  CHECK(logits(Tensor<double>({1, 2}, {1, 0}), Tensor<double>({1, 2}, {-1000.0, 1000.0})) == Approx(2000.0));

  // float instantiation.
  losses::CategoricalCrossentropy<float> cf;
  CHECK(cf(Tensor<float>({2, 3}, {0, 1, 0, 0, 0, 1}), Tensor<float>({2, 3}, {0.05f, 0.95f, 0.f, 0.1f, 0.8f, 0.1f})) ==
        Approx(1.1769392).epsilon(1e-5));
}

TEST_CASE("SparseCategoricalCrossentropy known values and label checks", "[losses]") {
  losses::SparseCategoricalCrossentropy<double> scce;
  CHECK(scce.accepts_sparse_labels());
  Tensor<double> yp({2, 3}, {0.05, 0.95, 0.0, 0.1, 0.8, 0.1});
  // TF semantics: clip, then renormalize by the clipped sum (row 0 sums to 1 + 1e-7 after clipping the 0).
  const double expect = (-std::log(0.95) + std::log(1.0 + 1e-7) - std::log(0.1)) / 2;
  CHECK(scce(Tensor<double>({2}, {1, 2}), yp) == Approx(expect).epsilon(1e-12));
  CHECK(scce(Tensor<double>({2, 1}, {1, 2}), yp) == Approx(expect).epsilon(1e-12));
  CHECK(scce(Tensor<double>({2}, {1, 2}), yp) == Approx(1.1769392).epsilon(1e-6));

  // Matches CCE on one-hot labels with normalized predictions.
  losses::CategoricalCrossentropy<double> cce;
  Tensor<double> p2({2, 3}, {0.2, 0.5, 0.3, 0.6, 0.3, 0.1});
  CHECK(scce(Tensor<double>({2}, {2, 0}), p2) ==
        Approx(cce(Tensor<double>({2, 3}, {0, 0, 1, 1, 0, 0}), p2)).epsilon(1e-12));

  // from_logits.
  losses::SparseCategoricalCrossentropy<double> sl({.from_logits = true});
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(sl(Tensor<double>({1}, {0}), Tensor<double>({1, 3}, {1, 2, 3})) == Approx(std::log(z) - 1.0).epsilon(1e-12));

  // Bad labels name the label.
  CHECK_THROWS_AS(scce(Tensor<double>({2}, {1, 3}), yp), keras::ValueError);
  CHECK_THROWS_WITH(scce(Tensor<double>({2}, {1, 3}), yp), Catch::Contains("label 3") && Catch::Contains("[0, 3)"));
  CHECK_THROWS_WITH(scce(Tensor<double>({2}, {-1, 0}), yp), Catch::Contains("label -1"));
  CHECK_THROWS_WITH(scce(Tensor<double>({2}, {0.5, 0}), yp), Catch::Contains("label 0.5"));
  // Wrong label shape.
  CHECK_THROWS_AS(scce(Tensor<double>({3}, {0, 1, 2}), yp), keras::ShapeError);
  CHECK_THROWS_AS(scce(Tensor<double>({2, 3}, 0.0), yp), keras::ShapeError);
}

TEST_CASE("MeanSquaredError and BinaryCrossentropy known values", "[losses]") {
  losses::MeanSquaredError<double> mse;
  CHECK(mse.name() == "mean_squared_error");
  Tensor<double> g;
  // Keras docstring: 0.5
  double l = mse.compute(Tensor<double>({2, 2}, {0, 1, 0, 0}), Tensor<double>({2, 2}, {1, 1, 1, 0}), &g);
  CHECK(l == 0.5);
  CHECK(g[0] == 2.0 * 1.0 / 4);
  CHECK(g[1] == 0.0);
  // y_true [N] against y_pred [N, 1] (Keras squeezes the trailing 1).
  CHECK(mse(Tensor<double>({3}, {1, 2, 3}), Tensor<double>({3, 1}, {1, 2, 5})) == Approx(4.0 / 3));

  losses::BinaryCrossentropy<double> bce;
  // Keras docstring: 0.815
  l = bce(Tensor<double>({2, 2}, {0, 1, 0, 0}), Tensor<double>({2, 2}, {0.6, 0.4, 0.4, 0.6}));
  CHECK(l == Approx((-std::log(0.4) * 3 - std::log(0.6)) / 4).epsilon(1e-12));
  CHECK(l == Approx(0.815).epsilon(1e-3));
  // from_logits docstring: 0.865
  losses::BinaryCrossentropy<double> bl({.from_logits = true});
  l = bl(Tensor<double>({4}, {0, 1, 0, 0}), Tensor<double>({4}, {-18.6, 0.51, 2.94, -12.8}));
  auto sp = [](double x) { return std::log1p(std::exp(-std::abs(x))) + std::max(x, 0.0); };  // softplus
  CHECK(l == Approx((sp(-18.6) + sp(-0.51) + sp(2.94) + sp(-12.8)) / 4).epsilon(1e-12));
  CHECK(l == Approx(0.865).epsilon(1e-3));
  // Clipping: p = 0 with label 1 gives -log(1e-7) and zero gradient.
  l = bce.compute(Tensor<double>({1}, {1}), Tensor<double>({1}, {0.0}), &g);
  CHECK(l == Approx(-std::log(1e-7)));
  CHECK(g[0] == 0.0);
  // label_smoothing 0.2: 1 -> 0.9, 0 -> 0.1.
  losses::BinaryCrossentropy<double> bs({.label_smoothing = 0.2});
  CHECK(bs(Tensor<double>({1}, {1}), Tensor<double>({1}, {0.7})) ==
        Approx(-(0.9 * std::log(0.7) + 0.1 * std::log(0.3))).epsilon(1e-12));
}

TEST_CASE("every loss's gradient matches central differences", "[losses]") {
  keras::Random rng(3);
  SECTION("categorical crossentropy on unnormalized positive inputs") {
    losses::CategoricalCrossentropy<double> cce;
    loss_grad_error(cce, one_hot_rows(rng, {4, 5}), uniform(rng, {4, 5}, 0.2, 2.0));
    // soft targets
    loss_grad_error(cce, uniform(rng, {3, 4}, 0.0, 1.0), uniform(rng, {3, 4}, 0.2, 2.0));
    // NHWC: class axis last, per-pixel loss averaged over N*H*W
    loss_grad_error(cce, one_hot_rows(rng, {2, 2, 3, 4}), uniform(rng, {2, 2, 3, 4}, 0.2, 2.0));
    // axis = 1 on [N, C, W]
    losses::CategoricalCrossentropy<double> ax1({.axis = 1});
    loss_grad_error(ax1, uniform(rng, {2, 3, 4}, 0.0, 1.0), uniform(rng, {2, 3, 4}, 0.2, 2.0));
    // label smoothing
    losses::CategoricalCrossentropy<double> ls({.label_smoothing = 0.2});
    loss_grad_error(ls, one_hot_rows(rng, {4, 5}), uniform(rng, {4, 5}, 0.2, 2.0));
  }
  SECTION("categorical crossentropy with a clipped entry") {
    // The zero entry is clipped (no gradient through clip), but it still receives the normalization gradient
    // from the other entries; central differences with h = 1e-5 on an entry at 0.3 are unaffected.
    losses::CategoricalCrossentropy<double> cce;
    Tensor<double> yt({1, 3}, {0.5, 0.5, 0.0});
    Tensor<double> yp({1, 3}, {0.3, 0.6, 1e-12});
    Tensor<double> g;
    cce.compute(yt, yp, &g);
    // analytic: q = p / S, S ~ 0.9; dL/dp_k = (g_k - sum g_j q_j) / S with g = -t / q (not clipped) and g_2 = 0.
    const double S = 0.9 + 1e-12, q0 = 0.3 / S, q1 = 0.6 / S;
    const double g0 = -0.5 / q0, g1 = -0.5 / q1, gq = g0 * q0 + g1 * q1;
    CHECK(g[0] == Approx((g0 - gq) / S).epsilon(1e-10));
    CHECK(g[2] == Approx((0.0 - gq) / S).epsilon(1e-10));
  }
  SECTION("categorical crossentropy from logits") {
    losses::CategoricalCrossentropy<double> l({.from_logits = true});
    loss_grad_error(l, one_hot_rows(rng, {4, 5}), uniform(rng, {4, 5}, -3, 3));
    losses::CategoricalCrossentropy<double> ls({.from_logits = true, .label_smoothing = 0.1});
    loss_grad_error(ls, uniform(rng, {4, 5}, 0, 1), uniform(rng, {4, 5}, -3, 3));
  }
  SECTION("sparse categorical crossentropy") {
    Tensor<double> labels({6}, {0, 3, 2, 1, 3, 0});
    losses::SparseCategoricalCrossentropy<double> s;
    loss_grad_error(s, labels, uniform(rng, {6, 4}, 0.05, 0.9));
    losses::SparseCategoricalCrossentropy<double> sl({.from_logits = true});
    loss_grad_error(sl, labels, uniform(rng, {6, 4}, -3, 3));
    Tensor<double> labels4({2, 2, 2, 1}, {0, 1, 2, 0, 1, 2, 2, 1});
    loss_grad_error(sl, labels4, uniform(rng, {2, 2, 2, 3}, -3, 3));
  }
  SECTION("mse and binary crossentropy") {
    losses::MeanSquaredError<double> mse;
    loss_grad_error(mse, uniform(rng, {3, 4}, -1, 1), uniform(rng, {3, 4}, -1, 1));
    losses::BinaryCrossentropy<double> bce;
    loss_grad_error(bce, uniform(rng, {3, 4}, 0, 1), uniform(rng, {3, 4}, 0.05, 0.95));
    losses::BinaryCrossentropy<double> bl({.from_logits = true, .label_smoothing = 0.1});
    loss_grad_error(bl, uniform(rng, {3, 4}, 0, 1), uniform(rng, {3, 4}, -4, 4));
    losses::BinaryCrossentropy<double> bs({.label_smoothing = 0.3});
    loss_grad_error(bs, uniform(rng, {5, 1}, 0, 1), uniform(rng, {5, 1}, 0.05, 0.95));
  }
}

TEST_CASE("losses reject mismatched shapes and unknown names", "[losses]") {
  losses::CategoricalCrossentropy<float> cce;
  Tensor<float> a({2, 3}, 0.f), b({2, 4}, 0.25f);
  CHECK_THROWS_AS(cce(a, b), keras::ShapeError);
  CHECK_THROWS_WITH(
      cce(a, b), Catch::Contains("CategoricalCrossentropy") && Catch::Contains("(2, 3)") && Catch::Contains("(2, 4)"));
  losses::MeanSquaredError<float> mse;
  CHECK_THROWS_WITH(mse(a, b), Catch::Contains("MeanSquaredError") && Catch::Contains("(2, 4)"));
  losses::BinaryCrossentropy<float> bce;
  CHECK_THROWS_AS(bce(a, b), keras::ShapeError);

  CHECK(losses::get<float>("categorical_crossentropy")->name() == "categorical_crossentropy");
  CHECK(losses::get<float>("sparse_categorical_crossentropy")->accepts_sparse_labels());
  CHECK(losses::get<float>("mse")->name() == "mean_squared_error");
  CHECK(losses::get<float>("mean_squared_error")->class_name() == "MeanSquaredError");
  CHECK(losses::get<double>("binary_crossentropy")->class_name() == "BinaryCrossentropy");
  CHECK(losses::get<double>("CategoricalCrossentropy")->name() == "categorical_crossentropy");
  CHECK_THROWS_AS(losses::get<float>("hinge_loss"), keras::ValueError);
  CHECK_THROWS_WITH(losses::get<float>("hinge_loss"), Catch::Contains("Unknown loss function: 'hinge_loss'"));
  CHECK_THROWS_AS(losses::CategoricalCrossentropy<float>({.label_smoothing = 1.5}), keras::ValueError);
  CHECK(losses::CategoricalCrossentropy<float>({.from_logits = true}).get_config()["from_logits"] == true);
}
