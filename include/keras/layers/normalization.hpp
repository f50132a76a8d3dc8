// LayerNormalization (over the last axis, learned gamma/beta) and Normalization (a fixed
// per-feature mean and variance over the last axis: Keras's adapted state, or given in the config).
#pragma once
#include <cmath>

#include "fast_paths.hpp"
#include "initializers.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

namespace detail {
/// Keras's axis argument for a normalization over the last axis: -1, the last axis (known at build)
/// or a list of one of those. Returns the value as given; anything else is refused.
inline int last_axis_arg(const json& c, const std::string& who) {
  if (!c.is_object() || !c.contains("axis")) return -1;
  json a = c["axis"];
  if (a.is_array() && a.size() == 1) a = a[0];
  if (!a.is_number_integer())
    throw ValueError(who + ": 'axis' must be -1 (the last axis), got " + a.dump().substr(0, 80));
  return static_cast<int>(config::to_int(a, who, "axis", -1, 8));
}
inline void check_last_axis(int axis, const Shape& in, const std::string& who) {
  if (axis != -1 && axis != static_cast<int>(in.size()) - 1)
    throw ValueError(who + ": only the last axis is supported (axis -1), got axis " + std::to_string(axis) +
                     " for input " + shape_str(in));
  if (in.size() < 2 || in.back() < 0)
    throw ShapeError(who + ": the last axis of the input must be known, got " + shape_str(in));
}
}  // namespace detail

struct LayerNormalizationOptions {
  int axis = -1;
  double epsilon = 1e-3;
  bool center = true;
  bool scale = true;
  initializers::Initializer beta_initializer = "zeros";
  initializers::Initializer gamma_initializer = "ones";
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

/// y = (x - mean) / sqrt(var + epsilon) * gamma + beta, mean and (biased) variance over the last axis.
template <class T = float>
class LayerNormalization : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(LayerNormalization)
  explicit LayerNormalization(LayerNormalizationOptions o = {}) : Layer<T>(o.name, o.input_shape), o_(std::move(o)) {
    if (!(o_.epsilon > 0)) throw ValueError("LayerNormalization: epsilon must be > 0, got " + json(o_.epsilon).dump());
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    detail::check_last_axis(o_.axis, in[0], "layer '" + this->name() + "' (LayerNormalization)");
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    y.resize(x.shape());
    const Index D = x.dim(-1), rows = x.size() / D;
    const T* g = o_.scale ? gamma().value.data() : nullptr;
    const T* b = o_.center ? beta().value.data() : nullptr;
    for (Index r = 0; r < rows; ++r) {
      const T* xr = x.data() + r * D;
      T* yr = y.data() + r * D;
      T mean, rstd;
      stats(xr, D, mean, rstd);
      for (Index i = 0; i < D; ++i) yr[i] = (xr[i] - mean) * rstd * (g ? g[i] : T(1)) + (b ? b[i] : T(0));
    }
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in[0];
    const Index D = x.dim(-1), rows = x.size() / D;
    const bool vg = this->needs_variable_grads();
    const T* g = o_.scale ? gamma().value.data() : nullptr;
    T* dg = vg && o_.scale ? gamma().grad.data() : nullptr;
    T* db = vg && o_.center ? beta().grad.data() : nullptr;
    if (dx.at(0)) dx[0]->resize(x.shape());
    for (Index r = 0; r < rows; ++r) {
      const T* xr = x.data() + r * D;
      const T* gr = dy.data() + r * D;
      T mean, rstd;
      stats(xr, D, mean, rstd);
      T s1 = 0, s2 = 0;  // mean of dxhat and of dxhat * xhat
      for (Index i = 0; i < D; ++i) {
        const T xhat = (xr[i] - mean) * rstd, dxh = gr[i] * (g ? g[i] : T(1));
        s1 += dxh;
        s2 += dxh * xhat;
        if (dg) dg[i] += gr[i] * xhat;
        if (db) db[i] += gr[i];
      }
      s1 /= static_cast<T>(D);
      s2 /= static_cast<T>(D);
      if (!dx[0]) continue;
      T* d = dx[0]->data() + r * D;
      for (Index i = 0; i < D; ++i) d[i] = rstd * (gr[i] * (g ? g[i] : T(1)) - s1 - (xr[i] - mean) * rstd * s2);
    }
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["axis"] = json::array({o_.axis});
    c["epsilon"] = o_.epsilon;
    c["center"] = o_.center;
    c["scale"] = o_.scale;
    c["beta_initializer"] = o_.beta_initializer.to_json();
    c["gamma_initializer"] = o_.gamma_initializer.to_json();
    for (const char* k : {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"})
      c[k] = nullptr;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    LayerNormalizationOptions o;
    o.name = config::name(c, "LayerNormalization");
    const std::string who = config::where("LayerNormalization", c);
    o.axis = detail::last_axis_arg(c, who);
    o.epsilon = config::get_number(c, "epsilon", 1e-3, who, 0.0);
    o.center = config::get_bool(c, "center", true, who);
    o.scale = config::get_bool(c, "scale", true, who);
    if (c.contains("beta_initializer") && !c["beta_initializer"].is_null())
      o.beta_initializer = initializers::Initializer::from_json(c["beta_initializer"]);
    if (c.contains("gamma_initializer") && !c["gamma_initializer"].is_null())
      o.gamma_initializer = initializers::Initializer::from_json(c["gamma_initializer"]);
    for (const char* k : {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"})
      if (c.contains(k) && !c[k].is_null()) throw ValueError(who + ": '" + k + "' is not supported (must be null)");
    if (config::get_bool(c, "rms_scaling", false, who)) throw ValueError(who + ": rms_scaling=True is not supported");
    return std::make_shared<LayerNormalization>(o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    const Index D = in[0].back();
    if (o_.scale) o_.gamma_initializer.fill(this->add_weight("gamma", {D}).value, 1, 1, next_global_seed());
    if (o_.center) o_.beta_initializer.fill(this->add_weight("beta", {D}).value, 1, 1, next_global_seed());
  }

 private:
  LayerNormalizationOptions o_;
  Variable<T>& gamma() { return *this->variables_.at(0); }
  Variable<T>& beta() { return *this->variables_.at(o_.scale ? 1 : 0); }
  void stats(const T* x, Index D, T& mean, T& rstd) const {
    T m = 0;
    for (Index i = 0; i < D; ++i) m += x[i];
    m /= static_cast<T>(D);
    T v = 0;
    for (Index i = 0; i < D; ++i) v += (x[i] - m) * (x[i] - m);
    v /= static_cast<T>(D);
    mean = m;
    rstd = T(1) / std::sqrt(v + static_cast<T>(o_.epsilon));
  }
};

struct NormalizationOptions {
  int axis = -1;
  std::vector<double> mean;      ///< empty: the adapted state is in the weights mean / variance / count
  std::vector<double> variance;  ///< with mean: constants (one value, or one per feature), no weights
  bool invert = false;
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

/// Normalization: (x - mean) / max(sqrt(variance), 1e-7) per feature of the last axis (invert:
/// mean + x * max(sqrt(variance), 1e-7)). The state is Keras's non-trainable weights mean, variance
/// and count (adapt(data) computes them from one tensor, or set them, or load an adapted model).
template <class T = float>
class Normalization : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Normalization)
  explicit Normalization(NormalizationOptions o = {}) : Layer<T>(o.name, o.input_shape), o_(std::move(o)) {
    if (o_.mean.empty() != o_.variance.empty())
      throw ValueError("Normalization: when setting values directly, both mean and variance must be set");
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    const std::string who = "layer '" + this->name() + "' (Normalization)";
    detail::check_last_axis(o_.axis, in[0], who);
    for (auto* v : {&o_.mean, &o_.variance})
      if (v->size() > 1 && static_cast<Index>(v->size()) != in[0].back())
        throw ShapeError(who + ": mean/variance of " + std::to_string(v->size()) + " values for input " +
                         shape_str(in[0]));
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    y.resize(x.shape());
    const Index D = x.dim(-1);
    for (Index i = 0; i < x.size(); ++i) {
      const Index f = i % D;
      y[i] = o_.invert ? mean(f) + x[i] * std_dev(f) : (x[i] - mean(f)) / std_dev(f);
    }
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    const Index D = in[0]->dim(-1);
    dx[0]->resize(dy.shape());
    for (Index i = 0; i < dy.size(); ++i) (*dx[0])[i] = o_.invert ? dy[i] * std_dev(i % D) : dy[i] / std_dev(i % D);
  }
  /// Keras's adapt() on one tensor: the per-feature mean and (biased) variance over every axis but
  /// the last, and the number of samples per feature, into the weights mean, variance and count.
  void adapt(const Tensor<T>& data) {
    const std::string who = "layer '" + this->name() + "' (Normalization)";
    if (!o_.mean.empty())
      throw ValueError(who + ": cannot adapt a layer whose mean and variance are set in its config");
    if (this->built())
      this->check_input_shapes({this->with_unknown_batch(data.shape())});
    else
      this->build(this->with_unknown_batch(data.shape()));
    const Index D = data.dim(-1), rows = data.size() / D;
    if (rows == 0) throw ValueError(who + ": adapt() needs at least one sample, got shape " + shape_str(data.shape()));
    std::vector<double> mean(D, 0.0), var(D, 0.0);
    for (Index i = 0; i < data.size(); ++i) mean[i % D] += static_cast<double>(data[i]) / static_cast<double>(rows);
    for (Index i = 0; i < data.size(); ++i) {
      const double d = static_cast<double>(data[i]) - mean[i % D];
      var[i % D] += d * d / static_cast<double>(rows);
    }
    for (Index f = 0; f < D; ++f) {
      this->variables_[0]->value[f] = static_cast<T>(mean[f]);
      this->variables_[1]->value[f] = static_cast<T>(var[f]);
    }
    this->variables_[2]->value[0] = static_cast<T>(rows);
    for (auto& v : this->variables_) v->changed();
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["axis"] = json::array({o_.axis});
    c["mean"] = o_.mean.empty() ? json(nullptr) : (o_.mean.size() == 1 ? json(o_.mean[0]) : json(o_.mean));
    c["variance"] =
        o_.variance.empty() ? json(nullptr) : (o_.variance.size() == 1 ? json(o_.variance[0]) : json(o_.variance));
    c["invert"] = o_.invert;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    NormalizationOptions o;
    o.name = config::name(c, "Normalization");
    const std::string who = config::where("Normalization", c);
    o.axis = detail::last_axis_arg(c, who);
    o.invert = config::get_bool(c, "invert", false, who);
    auto values = [&](const char* key, std::vector<double>& out) {
      if (!c.contains(key) || c[key].is_null()) return;
      const json& v = c[key];
      if (v.is_number())
        out.push_back(config::get_number(c, key, 0, who));
      else if (v.is_array())
        for (auto& e : v) out.push_back(config::get_number(json{{"v", e}}, "v", 0, who + " " + key));
      else
        throw ValueError(who + ": '" + key + "' must be null, a number or a list of numbers, got " +
                         v.dump().substr(0, 80));
    };
    values("mean", o.mean);
    values("variance", o.variance);
    return std::make_shared<Normalization>(o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    if (!o_.mean.empty()) return;
    const Index D = in[0].back();
    this->add_weight("mean", {D}, false).value.setZero();
    this->add_weight("variance", {D}, false).value.setConstant(T(1));
    this->add_weight("count", {}, false).value.setZero();
  }

 private:
  NormalizationOptions o_;
  T mean(Index f) const {
    if (o_.mean.empty()) return this->variables_.at(0)->value[f];
    return static_cast<T>(o_.mean.size() == 1 ? o_.mean[0] : o_.mean[f]);
  }
  T std_dev(Index f) const {
    const T v = o_.variance.empty() ? this->variables_.at(1)->value[f]
                                    : static_cast<T>(o_.variance.size() == 1 ? o_.variance[0] : o_.variance[f]);
    return std::max(std::sqrt(v), static_cast<T>(1e-7));
  }
};

}  // namespace keras::layers
