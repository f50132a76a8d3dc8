// Generic gradient checker for any Layer<double>: compares backward() with central differences
// of L = sum(w ⊙ layer(x)) for random x and w, w.r.t. every input and every variable.
#pragma once
#include <catch2/catch.hpp>
#include <cmath>
#include <keras/keras.hpp>

namespace testing {

using keras::Index;
using keras::Shape;
using keras::Tensor;

inline Tensor<double> random_tensor(const Shape& s, keras::Random& rng, double lo = -1, double hi = 1) {
  Tensor<double> t(s);
  for (auto& v : t) v = rng.uniform(lo, hi);
  return t;
}

/// Relative error of an analytic gradient against a numeric one: max |a-n| over the elements,
/// divided by max(max |n|, max |a|, 1e-6) (the gradient's scale), so tiny entries do not blow up.
inline double rel_error(const Tensor<double>& a, const Tensor<double>& n) {
  double diff = 0, scale = 1e-6;
  for (Index i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - n[i]));
    scale = std::max({scale, std::abs(a[i]), std::abs(n[i])});
  }
  return diff / scale;
}

struct GradCheckResult {
  std::vector<double> input_errors;
  std::vector<std::pair<std::string, double>> variable_errors;
  double max() const {
    double m = 0;
    for (double e : input_errors) m = std::max(m, e);
    for (auto& p : variable_errors) m = std::max(m, p.second);
    return m;
  }
};

/// Checks d/dx and d/dvariables of a built-or-buildable layer on inputs of the given shapes
/// (batch included). `inputs` may be supplied to avoid kinks (e.g. for ReLU, max pooling ties).
inline GradCheckResult check_layer_gradients(keras::layers::Layer<double>& layer, std::vector<Tensor<double>> inputs,
                                             bool training = false, std::uint64_t seed = 42, double eps = 1e-6) {
  keras::Random rng(seed);
  std::vector<Shape> shapes;
  for (auto& x : inputs) {
    Shape s = x.shape();
    s[0] = -1;
    shapes.push_back(s);
  }
  layer.build(shapes);
  // Randomise variables too (zeros/ones initialisers would hide errors).
  for (auto* v : layer.variables())
    for (auto& e : v->value) e = rng.uniform(0.5, 1.5) * (rng.uniform() < 0.5 ? -1 : 1);
  std::vector<const Tensor<double>*> in;
  for (auto& x : inputs) in.push_back(&x);
  Tensor<double> y;
  layer.forward(in, y, training);
  Tensor<double> w = random_tensor(y.shape(), rng);
  auto loss = [&]() {
    Tensor<double> yy;
    layer.forward(in, yy, training);
    double s = 0;
    for (Index i = 0; i < yy.size(); ++i) s += w[i] * yy[i];
    return s;
  };
  // Analytic.
  layer.forward(in, y, training);
  auto vars = layer.trainable_variables();
  for (auto* v : vars) v->grad.setZero();
  std::vector<Tensor<double>> dx(inputs.size());
  std::vector<Tensor<double>*> dxp;
  for (auto& d : dx) dxp.push_back(&d);
  layer.backward(in, y, w, dxp);
  auto numeric = [&](Tensor<double>& p) {
    Tensor<double> g(p.shape());
    for (Index i = 0; i < p.size(); ++i) {
      double old = p[i];
      p[i] = old + eps;
      double fp = loss();
      p[i] = old - eps;
      double fm = loss();
      p[i] = old;
      g[i] = (fp - fm) / (2 * eps);
    }
    return g;
  };
  GradCheckResult r;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    REQUIRE(dx[k].shape() == inputs[k].shape());
    r.input_errors.push_back(rel_error(dx[k], numeric(inputs[k])));
  }
  for (auto* v : vars) r.variable_errors.push_back({v->name, rel_error(v->grad, numeric(v->value))});
  return r;
}

inline void require_gradients_ok(keras::layers::Layer<double>& layer, std::vector<Tensor<double>> inputs, bool training = false,
                                 double tol = 1e-6) {
  auto r = check_layer_gradients(layer, std::move(inputs), training);
  INFO("layer " << layer.name() << " (" << layer.class_name() << ")");
  for (std::size_t k = 0; k < r.input_errors.size(); ++k) {
    INFO("d/d input " << k << " relative error " << r.input_errors[k]);
    CHECK(r.input_errors[k] <= tol);
  }
  for (auto& [name, e] : r.variable_errors) {
    INFO("d/d " << name << " relative error " << e);
    CHECK(e <= tol);
  }
}

}  // namespace testing
