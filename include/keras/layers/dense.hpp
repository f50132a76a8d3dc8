// Dense: y = activation(x · kernel + bias) over the last axis (any leading dimensions).
#pragma once
#include "../ops/activations.hpp"
#include "initializers.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

struct DenseOptions {
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Initializer kernel_initializer = "glorot_uniform";
  initializers::Initializer bias_initializer = "zeros";
  std::string name;
  std::optional<std::uint64_t> seed;  ///< seed for the kernel initializer (default: global seed)
};

template <class T = float>
class Dense : public Layer<T> {
 public:
  KERAS_LAYER(Dense)
  explicit Dense(Index units, DenseOptions o = {})
      : Layer<T>(o.name), units_(units), o_(std::move(o)), act_(keras::activation_from_name(o_.activation)) {
    if (units <= 0) throw ValueError("Dense: units must be positive, got " + std::to_string(units));
  }

  Index units() const { return units_; }
  Variable<T>& kernel() { return *this->variables_.at(0); }
  Variable<T>& bias() {
    if (!o_.use_bias) throw ValueError("Dense '" + this->name() + "' has no bias");
    return *this->variables_.at(1);
  }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    if (in[0].size() < 2) throw ShapeError("layer '" + this->name() + "' (Dense): expected input of rank >= 2, got shape " + shape_str(in[0]));
    if (in[0].back() < 0) throw ShapeError("layer '" + this->name() + "' (Dense): the last dimension of the input must be known, got " + shape_str(in[0]));
    Shape s = in[0];
    s.back() = units_;
    return s;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    Shape s = x.shape();
    s.back() = units_;
    Tensor<T>& z = act_ == keras::Activation::Linear ? y : z_;
    z.resize(s);
    auto X = x.matrix();
    auto Z = z.matrix();
    Z.noalias() = X * kernel().value.matrix();
    if (o_.use_bias) Z.rowwise() += bias().value.matrix(1, units_).row(0);
    if (act_ != keras::Activation::Linear) keras::activation_forward(act_, z_, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    const Tensor<T>* dz = &dy;
    if (act_ != keras::Activation::Linear) {
      keras::activation_backward(act_, z_, y, dy, dz_);
      dz = &dz_;
    }
    auto DZ = dz->matrix();
    if (this->needs_variable_grads()) {
      kernel().grad.matrix().noalias() += x.matrix().transpose() * DZ;
      if (o_.use_bias) bias().grad.matrix(1, units_).row(0) += DZ.colwise().sum();
    }
    if (dx.at(0)) {
      dx[0]->resize(x.shape());
      dx[0]->matrix().noalias() = DZ * kernel().value.matrix().transpose();
    }
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["units"] = units_;
    c["activation"] = o_.activation;
    c["use_bias"] = o_.use_bias;
    c["kernel_initializer"] = o_.kernel_initializer.to_json();
    c["bias_initializer"] = o_.bias_initializer.to_json();
    for (const char* k : {"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"})
      c[k] = nullptr;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    DenseOptions o;
    o.name = c.value("name", "");
    o.activation = c.value("activation", "linear");
    o.use_bias = c.value("use_bias", true);
    if (c.contains("kernel_initializer") && !c["kernel_initializer"].is_null())
      o.kernel_initializer = initializers::Initializer::from_json(c["kernel_initializer"]);
    if (c.contains("bias_initializer") && !c["bias_initializer"].is_null())
      o.bias_initializer = initializers::Initializer::from_json(c["bias_initializer"]);
    return std::make_shared<Dense>(c.at("units").get<Index>(), o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    Index fan_in = in[0].back();
    auto& k = this->add_weight("kernel", {fan_in, units_});
    o_.kernel_initializer.fill(k.value, double(fan_in), double(units_), o_.seed ? *o_.seed : next_global_seed());
    if (o_.use_bias) {
      auto& b = this->add_weight("bias", {units_});
      o_.bias_initializer.fill(b.value, double(fan_in), double(units_), next_global_seed());
    }
  }

 private:
  Index units_;
  DenseOptions o_;
  keras::Activation act_;
  Tensor<T> z_, dz_;
};

KERAS_REGISTER_LAYER(Dense)

}  // namespace keras::layers
