// Catch2 glue over keras/testing/layer_check.hpp (the checker users run on their own layers):
// require_gradients_ok runs every check of keras::testing::check_layer (gradients with the one
// error formula, backward adds, NaN prefill, 1 vs 2 threads, inference path, config round trip)
// and reports each failure as a failed CHECK.
#pragma once
#include <catch2/catch.hpp>
#include <keras/keras.hpp>
#include <keras/testing/layer_check.hpp>

// In keras::testing, so that `testing::` resolves one way in tests that use namespace keras.
namespace keras::testing {

inline Tensor<double> random_tensor(const Shape& s, keras::Random& rng, double lo = -1, double hi = 1) {
  return detail::random_like(s, rng, lo, hi);
}

/// How far apart two computations are (max |a-b| / scale); not a gradient check.
inline double rel_error(const Tensor<double>& a, const Tensor<double>& b) { return keras::testing::max_rel_diff(a, b); }

inline keras::testing::LayerCheckReport require_layer_passes(keras::layers::Layer<double>& layer,
                                                             std::vector<Tensor<double>> inputs,
                                                             keras::testing::LayerCheckOptions opt = {}) {
  auto r = keras::testing::check_layer(layer, std::move(inputs), opt);
  INFO(r.str());
  CHECK(r.ok());
  for (auto& f : r.failures) {
    INFO(f);
    CHECK(false);
  }
  return r;
}

/// Every check of check_layer, in training or inference mode, with the gradient tolerance `tol`.
inline keras::testing::LayerCheckReport require_gradients_ok(keras::layers::Layer<double>& layer,
                                                             std::vector<Tensor<double>> inputs, bool training = false,
                                                             double tol = 1e-6) {
  keras::testing::LayerCheckOptions opt;
  opt.training = training;
  opt.tolerance = tol;
  return require_layer_passes(layer, std::move(inputs), opt);
}

}  // namespace keras::testing
