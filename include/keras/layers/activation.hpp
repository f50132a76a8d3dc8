// Activation(name), ReLU(max_value, negative_slope, threshold) and Softmax(axis=-1) layers.
#pragma once
#include <limits>

#include "../ops/activations.hpp"
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

/// Applies an activation function by Keras name.
template <class T = float>
class Activation : public Layer<T>, public ReentrantInference, public ClampActivation<T>, public LogitsOutput<T> {
 public:
  KERAS_LAYER(Activation)
  explicit Activation(std::string activation, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)),
        activation_(std::move(activation)),
        act_(keras::activation_from_name(activation_)) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    keras::activation_forward(act_, *in[0], y);
  }
  bool clamp_range(T& lo, T& hi) const override {
    if (act_ != keras::Activation::ReLU && act_ != keras::Activation::ReLU6) return false;
    lo = T(0);
    hi = act_ == keras::Activation::ReLU6 ? T(6) : std::numeric_limits<T>::infinity();
    return true;
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) keras::activation_backward(act_, *in[0], y, dy, *dx[0]);
  }
  keras::Activation logits_activation() const override {
    return act_ == keras::Activation::Softmax || act_ == keras::Activation::Sigmoid ? act_ : keras::Activation::Linear;
  }
  const Tensor<T>& logits(const typename Layer<T>::Inputs& in) const override { return *in.at(0); }
  void forward_logits(const typename Layer<T>::Inputs& in, Tensor<T>& z) override { z = *in.at(0); }
  void backward_logits(const typename Layer<T>::Inputs&, const Tensor<T>& dz,
                       const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) *dx[0] = dz;
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["activation"] = activation_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("Activation", c);
    if (!config::require(c, "activation", who).is_string())
      throw ValueError(who + ": 'activation' must be a string, got " + c["activation"].dump().substr(0, 80));
    return std::make_shared<Activation>(c["activation"].get<std::string>(),
                                        LayerOptions{config::name(c, "Activation"), {}});
  }

 private:
  std::string activation_;
  keras::Activation act_;
};

struct ReLUOptions {
  std::optional<double> max_value;  ///< None: unbounded
  double negative_slope = 0.0;
  double threshold = 0.0;
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

/// Keras ReLU: max_value if x >= max_value; x if threshold <= x < max_value; else negative_slope*(x-threshold).
template <class T = float>
class ReLU : public Layer<T>, public ReentrantInference, public ClampActivation<T> {
 public:
  KERAS_LAYER(ReLU)
  explicit ReLU(ReLUOptions o = {}) : Layer<T>(o.name, o.input_shape), o_(o) {
    if (o_.max_value && *o_.max_value < 0)
      throw ValueError("ReLU: max_value must be >= 0, got " + std::to_string(*o_.max_value));
    if (o_.negative_slope < 0)
      throw ValueError("ReLU: negative_slope must be >= 0, got " + std::to_string(o_.negative_slope));
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    keras::relu_forward(*in[0], y, max_value(), static_cast<T>(o_.negative_slope), static_cast<T>(o_.threshold));
  }
  bool clamp_range(T& lo, T& hi) const override {
    if (o_.negative_slope != 0.0 || o_.threshold != 0.0) return false;
    lo = T(0);
    hi = max_value();
    return true;
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0))
      keras::relu_backward(*in[0], dy, *dx[0], max_value(), static_cast<T>(o_.negative_slope),
                           static_cast<T>(o_.threshold));
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["max_value"] = o_.max_value ? json(*o_.max_value) : json(nullptr);
    c["negative_slope"] = o_.negative_slope;
    c["threshold"] = o_.threshold;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    ReLUOptions o;
    o.name = config::name(c, "ReLU");
    const std::string who = "ReLU '" + o.name + "'";
    if (c.contains("max_value") && !c["max_value"].is_null())
      o.max_value = config::get_number(c, "max_value", 0.0, who);
    o.negative_slope = config::get_number(c, "negative_slope", 0.0, who);
    o.threshold = config::get_number(c, "threshold", 0.0, who);
    return std::make_shared<ReLU>(o);
  }

 private:
  ReLUOptions o_;
  T max_value() const { return o_.max_value ? static_cast<T>(*o_.max_value) : std::numeric_limits<T>::infinity(); }
};

/// Softmax over the last axis.
template <class T = float>
class Softmax : public Layer<T>, public ReentrantInference, public LogitsOutput<T> {
 public:
  KERAS_LAYER(Softmax)
  explicit Softmax(int axis = -1, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), axis_(axis) {}
  /// Softmax({.name = "probs"}): the default axis with options.
  explicit Softmax(LayerOptions o) : Softmax(-1, std::move(o)) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    if (axis_ != -1 && axis_ != static_cast<int>(in[0].size()) - 1)
      throw ValueError("layer '" + this->name() + "' (Softmax): only the last axis is supported, got axis " +
                       std::to_string(axis_));
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    keras::activation_forward(keras::Activation::Softmax, *in[0], y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) keras::activation_backward(keras::Activation::Softmax, *in[0], y, dy, *dx[0]);
  }
  keras::Activation logits_activation() const override { return keras::Activation::Softmax; }
  const Tensor<T>& logits(const typename Layer<T>::Inputs& in) const override { return *in.at(0); }
  void forward_logits(const typename Layer<T>::Inputs& in, Tensor<T>& z) override { z = *in.at(0); }
  void backward_logits(const typename Layer<T>::Inputs&, const Tensor<T>& dz,
                       const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) *dx[0] = dz;
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["axis"] = axis_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const json& a = c.is_object() && c.contains("axis") && c["axis"].is_array() && c["axis"].size() == 1
                        ? c["axis"][0]
                        : c.value("axis", json(-1));
    int axis = a.is_null() ? -1 : static_cast<int>(config::to_int(a, config::where("Softmax", c), "axis", -9, 9));
    return std::make_shared<Softmax>(axis, LayerOptions{config::name(c, "Softmax"), {}});
  }

 private:
  int axis_;
};

}  // namespace keras::layers
