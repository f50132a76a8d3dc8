// SeparableConv2D: a depthwise convolution (kernel [kh, kw, C, depth_multiplier], with the strides,
// padding and dilation, no bias) then a pointwise 1x1 convolution (kernel [1, 1, C * multiplier,
// filters]) plus bias, then the activation: Keras's weights depthwise_kernel, pointwise_kernel,
// bias, in that order. Runs ops/depthwise_conv2d.hpp then the 1x1 GEMM of ops/conv2d.hpp.
#pragma once
#include "../ops/depthwise_conv2d.hpp"
#include "conv2d.hpp"

namespace keras::layers {

struct SeparableConv2DOptions {
  Size2 strides = 1;
  std::string padding = "valid";
  Size2 dilation_rate = 1;
  Index depth_multiplier = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Initializer depthwise_initializer = "glorot_uniform";
  initializers::Initializer pointwise_initializer = "glorot_uniform";
  initializers::Initializer bias_initializer = "zeros";
  std::string name;
  std::optional<std::uint64_t> seed;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

template <class T = float>
class SeparableConv2D : public Layer<T>, public InferenceKernel<T> {
 public:
  KERAS_LAYER(SeparableConv2D)
  SeparableConv2D(Index filters, Size2 kernel_size, SeparableConv2DOptions o = {})
      : Layer<T>(o.name, o.input_shape),
        filters_(filters),
        k_(kernel_size),
        o_(std::move(o)),
        act_(activation_from_name(o_.activation)) {
    if (filters <= 0) throw ValueError("SeparableConv2D: filters must be positive, got " + std::to_string(filters));
    if (o_.depth_multiplier <= 0)
      throw ValueError("SeparableConv2D: depth_multiplier must be positive, got " +
                       std::to_string(o_.depth_multiplier));
    detail::check_window_args("SeparableConv2D", k_, o_.strides, o_.dilation_rate, o_.padding);
  }
  Variable<T>& depthwise_kernel() { return *this->variables_.at(0); }
  Variable<T>& pointwise_kernel() { return *this->variables_.at(1); }
  Variable<T>* bias() { return o_.use_bias ? this->variables_.at(2).get() : nullptr; }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    Shape out = detail::conv_output_shape(this->name(), "SeparableConv2D", in[0], k_, o_.strides, o_.padding,
                                          o_.dilation_rate, filters_);
    if (in[0][3] < 0)
      throw ShapeError("layer '" + this->name() + "' (SeparableConv2D): the channel dimension must be known, got " +
                       shape_str(in[0]));
    return out;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    detail::update_window_geometry(geom_, x, this->name(), "SeparableConv2D", k_, o_.strides, o_.padding,
                                   o_.dilation_rate);
    pw_ = run(geom_, x, mid_, act_ == keras::Activation::Linear ? y : z_, ws_);
    if (act_ != keras::Activation::Linear) activation_forward(act_, z_, y);
  }
  /// Reentrant: local geometry, the calling thread's workspace and depthwise output buffer.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    const Tensor<T>& x = *in.at(0);
    ops::Conv2DGeometry g;
    detail::update_window_geometry(g, x, this->name(), "SeparableConv2D", k_, o_.strides, o_.padding, o_.dilation_rate);
    thread_local Tensor<T> mid;
    run(g, x, mid, y, ops::thread_workspace<T>());
    if (act_ != keras::Activation::Linear) activation_forward(act_, y, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>* dz = &dy;
    if (act_ != keras::Activation::Linear) {
      activation_backward(act_, z_, y, dy, dz_);
      dz = &dz_;
    }
    const bool vg = this->needs_variable_grads();
    ops::conv2d_backward(pw_, mid_, pointwise_kernel().value, *dz, &dmid_, vg ? &pointwise_kernel().grad : nullptr,
                         vg && bias() ? &bias()->grad : nullptr, ws_);
    ops::depthwise_conv2d_backward(geom_, *in.at(0), depthwise_kernel().value, dmid_, dx.at(0),
                                   vg ? &depthwise_kernel().grad : nullptr, nullptr, dws_);
  }
  /// The weights, for the config keys of their options (initializers::WeightOption).
  static constexpr initializers::WeightOption<SeparableConv2DOptions> kWeights[] = {
      {"depthwise", &SeparableConv2DOptions::depthwise_initializer},
      {"pointwise", &SeparableConv2DOptions::pointwise_initializer},
      {"bias", &SeparableConv2DOptions::bias_initializer}};
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["filters"] = filters_;
    c["depth_multiplier"] = o_.depth_multiplier;
    detail::write_conv_config(c, k_, o_, kWeights);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    auto o = detail::read_conv_options(c, "SeparableConv2D", kWeights);
    const std::string who = config::where("SeparableConv2D", c);
    o.depth_multiplier = config::get_int(c, "depth_multiplier", 1, who, 1, config::kMaxDim);
    return std::make_shared<SeparableConv2D>(
        detail::read_filters(c, who), Size2::from_json(config::require(c, "kernel_size", who), who, "kernel_size"), o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    const Index cin = in[0][3], M = o_.depth_multiplier;
    const double rf = static_cast<double>(k_.h * k_.w);
    auto& dk = this->add_weight("depthwise_kernel", {k_.h, k_.w, cin, M});
    o_.depthwise_initializer.fill(dk.value, rf * cin, rf * M, o_.seed ? *o_.seed : next_global_seed());
    auto& pk = this->add_weight("pointwise_kernel", {1, 1, cin * M, filters_});
    o_.pointwise_initializer.fill(pk.value, static_cast<double>(cin * M), static_cast<double>(filters_),
                                  next_global_seed());
    if (o_.use_bias) o_.bias_initializer.fill(this->add_weight("bias", {filters_}).value, 1, 1, next_global_seed());
  }

 private:
  /// mid = depthwise(x), z = pointwise(mid) + bias; returns the pointwise geometry.
  ops::Conv2DGeometry run(const ops::Conv2DGeometry& g, const Tensor<T>& x, Tensor<T>& mid, Tensor<T>& z,
                          ops::Conv2DWorkspace<T>& ws) {
    ops::depthwise_conv2d_forward(g, x, depthwise_kernel().value, nullptr, mid);
    const auto pw = ops::conv_geometry(mid.dim(1), mid.dim(2), mid.dim(3), 1, 1, 1, 1, ops::Padding::Valid);
    ops::conv2d_forward(pw, mid, pointwise_kernel().value, bias() ? &bias()->value : nullptr, z, ws);
    return pw;
  }
  Index filters_;
  Size2 k_;
  SeparableConv2DOptions o_;
  keras::Activation act_;
  ops::Conv2DGeometry geom_, pw_;
  ops::Conv2DWorkspace<T> ws_;
  ops::DepthwiseConv2DWorkspace<T> dws_;
  Tensor<T> mid_, dmid_, z_, dz_;
};

}  // namespace keras::layers
