// Keras's advanced activation layers: LeakyReLU(alpha), PReLU (a learned alpha per element, shared
// over shared_axes) and ELU(alpha). Element-wise; tf.keras 2 / TF.js names and defaults.
#pragma once
#include <cmath>

#include "fast_paths.hpp"
#include "initializers.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

/// LeakyReLU: x >= 0 ? x : alpha * x. Keras 3 calls alpha `negative_slope` (read too).
template <class T = float>
class LeakyReLU : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(LeakyReLU)
  explicit LeakyReLU(double alpha = 0.3, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), alpha_(alpha) {
    if (!std::isfinite(alpha) || alpha < 0)
      throw ValueError("LeakyReLU: alpha must be >= 0, got " + json(alpha).dump());
  }
  explicit LeakyReLU(LayerOptions o) : LeakyReLU(0.3, std::move(o)) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    y.resize(x.shape());
    const T a = static_cast<T>(alpha_);
    for (Index i = 0; i < x.size(); ++i) y[i] = x[i] > T(0) ? x[i] : a * x[i];
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    const Tensor<T>& x = *in[0];
    dx[0]->resize(x.shape());
    const T a = static_cast<T>(alpha_);
    for (Index i = 0; i < x.size(); ++i) (*dx[0])[i] = x[i] > T(0) ? dy[i] : a * dy[i];
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["alpha"] = alpha_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("LeakyReLU", c);
    const char* key =
        c.is_object() && c.contains("negative_slope") && !c.contains("alpha") ? "negative_slope" : "alpha";
    return std::make_shared<LeakyReLU>(config::get_number(c, key, 0.3, who, 0.0),
                                       LayerOptions{config::name(c, "LeakyReLU"), {}});
  }

 private:
  double alpha_;
};

/// ELU: x > 0 ? x : alpha * (exp(x) - 1).
template <class T = float>
class ELU : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(ELU)
  explicit ELU(double alpha = 1.0, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), alpha_(alpha) {
    if (!std::isfinite(alpha)) throw ValueError("ELU: alpha must be a finite number, got " + json(alpha).dump());
  }
  explicit ELU(LayerOptions o) : ELU(1.0, std::move(o)) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    y.resize(x.shape());
    const T a = static_cast<T>(alpha_);
    for (Index i = 0; i < x.size(); ++i) y[i] = x[i] > T(0) ? x[i] : a * std::expm1(x[i]);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    const Tensor<T>& x = *in[0];
    dx[0]->resize(x.shape());
    const T a = static_cast<T>(alpha_);
    for (Index i = 0; i < x.size(); ++i) (*dx[0])[i] = x[i] > T(0) ? dy[i] : a * std::exp(x[i]) * dy[i];
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["alpha"] = alpha_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<ELU>(config::get_number(c, "alpha", 1.0, config::where("ELU", c)),
                                 LayerOptions{config::name(c, "ELU"), {}});
  }

 private:
  double alpha_;
};

struct PReLUOptions {
  initializers::Initializer alpha_initializer = "zeros";
  std::vector<int> shared_axes;  ///< axes (1 = first non-batch axis) along which alpha is shared
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

/// PReLU: x >= 0 ? x : alpha * x, with a learned alpha of shape input_shape[1:] (1 on shared_axes).
template <class T = float>
class PReLU : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(PReLU)
  explicit PReLU(PReLUOptions o = {}) : Layer<T>(o.name, o.input_shape), o_(std::move(o)) {}
  Variable<T>& alpha() { return *this->variables_.at(0); }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    alpha_shape(in[0]);
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    y.resize(x.shape());
    const T* a = alpha().value.data();
    for (Index i = 0; i < x.size(); ++i) y[i] = x[i] > T(0) ? x[i] : a[alpha_index(x, i)] * x[i];
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in[0];
    const T* a = alpha().value.data();
    if (dx.at(0)) {
      dx[0]->resize(x.shape());
      for (Index i = 0; i < x.size(); ++i) (*dx[0])[i] = x[i] > T(0) ? dy[i] : a[alpha_index(x, i)] * dy[i];
    }
    if (!this->needs_variable_grads()) return;
    T* da = alpha().grad.data();
    for (Index i = 0; i < x.size(); ++i)
      if (!(x[i] > T(0))) da[alpha_index(x, i)] += x[i] * dy[i];
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["alpha_initializer"] = o_.alpha_initializer.to_json();
    c["alpha_regularizer"] = nullptr;
    c["alpha_constraint"] = nullptr;
    c["shared_axes"] = o_.shared_axes.empty() ? json(nullptr) : json(o_.shared_axes);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    PReLUOptions o;
    o.name = config::name(c, "PReLU");
    const std::string who = config::where("PReLU", c);
    for (const char* k : {"alpha_regularizer", "alpha_constraint"})
      if (c.contains(k) && !c[k].is_null()) throw ValueError(who + ": '" + k + "' is not supported (must be null)");
    if (c.contains("alpha_initializer") && !c["alpha_initializer"].is_null())
      o.alpha_initializer = initializers::Initializer::from_json(c["alpha_initializer"]);
    const json sa = c.value("shared_axes", json(nullptr));
    if (sa.is_number())
      o.shared_axes.push_back(static_cast<int>(config::to_int(sa, who, "shared_axes", 1, 8)));
    else if (sa.is_array())
      for (auto& e : sa) o.shared_axes.push_back(static_cast<int>(config::to_int(e, who, "shared_axes", 1, 8)));
    else if (!sa.is_null())
      throw ValueError(who + ": 'shared_axes' must be null, an int or a list of ints, got " + sa.dump());
    return std::make_shared<PReLU>(o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    Shape s = alpha_shape(in[0]);
    auto& a = this->add_weight("alpha", s);
    o_.alpha_initializer.fill(a.value, 1, 1, next_global_seed());
    strides_.assign(s.size(), 0);  // element strides of x's axes into alpha (0 on shared axes)
    Index st = 1;
    for (int d = static_cast<int>(s.size()) - 1; d >= 0; --d) {
      strides_[d] = s[d] == 1 ? 0 : st;
      st *= s[d];
    }
  }

 private:
  PReLUOptions o_;
  std::vector<Index> strides_;
  Shape alpha_shape(const Shape& in) const {
    Shape s(in.begin() + 1, in.end());
    for (int ax : o_.shared_axes) {
      if (ax < 1 || ax >= static_cast<int>(in.size()))
        throw ValueError("layer '" + this->name() + "' (PReLU): shared axis " + std::to_string(ax) +
                         " is out of range for input " + shape_str(in));
      s[ax - 1] = 1;
    }
    for (Index d : s)
      if (d < 0)
        throw ShapeError("layer '" + this->name() + "' (PReLU): the non-shared axes of the input must be known, got " +
                         shape_str(in));
    return s;
  }
  /// Index into alpha of x's flat element i.
  Index alpha_index(const Tensor<T>& x, Index i) const {
    Index r = 0;
    for (int d = x.rank() - 1; d >= 1; --d) {
      const Index n = x.dim(d);
      r += (i % n) * strides_[d - 1];
      i /= n;
    }
    return r;
  }
};

}  // namespace keras::layers
