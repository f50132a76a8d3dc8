// DepthwiseConv2D: one k x k filter per input channel (times depth_multiplier), NHWC,
// kernel [kh, kw, C, multiplier], output channel c*multiplier + m (Keras/TF order).
// Direct loops vectorised over the channel axis (ops/depthwise_conv2d.hpp).
#pragma once
#include "../ops/depthwise_conv2d.hpp"
#include "conv2d.hpp"

namespace keras::layers {

struct DepthwiseConv2DOptions {
  Size2 strides = 1;
  std::string padding = "valid";
  Index depth_multiplier = 1;
  Size2 dilation_rate = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Initializer depthwise_initializer = "glorot_uniform";
  initializers::Initializer bias_initializer = "zeros";
  std::string name;
  std::optional<std::uint64_t> seed;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

template <class T = float>
class DepthwiseConv2D : public Layer<T>, public FusableConv<T>, public FusableTrainingConv<T> {
 public:
  KERAS_LAYER(DepthwiseConv2D)
  explicit DepthwiseConv2D(Size2 kernel_size, DepthwiseConv2DOptions o = {})
      : Layer<T>(o.name, o.input_shape), k_(kernel_size), o_(std::move(o)), act_(activation_from_name(o_.activation)) {
    if (o_.depth_multiplier <= 0)
      throw ValueError("DepthwiseConv2D: depth_multiplier must be positive, got " +
                       std::to_string(o_.depth_multiplier));
    detail::check_window_args("DepthwiseConv2D", k_, o_.strides, o_.dilation_rate, o_.padding);
  }
  Variable<T>& depthwise_kernel() { return *this->variables_.at(0); }
  Variable<T>& kernel() { return depthwise_kernel(); }
  Variable<T>* bias() { return o_.use_bias ? this->variables_.at(1).get() : nullptr; }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    Shape out = detail::conv_output_shape(this->name(), "DepthwiseConv2D", in[0], k_, o_.strides, o_.padding,
                                          o_.dilation_rate, in[0].size() == 4 ? in[0][3] * o_.depth_multiplier : -1);
    if (in[0][3] < 0)
      throw ShapeError("layer '" + this->name() +
                       "' (DepthwiseConv2D): the channel dimension of the input must be known, got " +
                       shape_str(in[0]));
    return out;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    detail::update_window_geometry(geom_, x, this->name(), "DepthwiseConv2D", k_, o_.strides, o_.padding,
                                   o_.dilation_rate);
    Tensor<T>& z = act_ == keras::Activation::Linear ? y : z_;
    ops::depthwise_conv2d_forward(geom_, x, kernel().value, bias() ? &bias()->value : nullptr, z);
    if (act_ != keras::Activation::Linear) activation_forward(act_, z_, y);
  }
  /// Reentrant: local geometry, activation applied in place.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override { inference(in, y, nullptr); }
  void forward_fused(const typename Layer<T>::Inputs& in, Tensor<T>& y, const ops::Epilogue<T>& ep) override {
    inference(in, y, &ep);
  }
  void inference(const typename Layer<T>::Inputs& in, Tensor<T>& y, const ops::Epilogue<T>* ep) {
    const Tensor<T>& x = *in.at(0);
    ops::Conv2DGeometry g;
    detail::update_window_geometry(g, x, this->name(), "DepthwiseConv2D", k_, o_.strides, o_.padding, o_.dilation_rate);
    ops::depthwise_conv2d_forward(g, x, kernel().value, bias() ? &bias()->value : nullptr, y,
                                  act_ == keras::Activation::Linear ? ep : nullptr);
    if (act_ != keras::Activation::Linear) activation_forward(act_, y, y);
  }
  bool accepts_epilogue() const override { return act_ == keras::Activation::Linear; }
  /// Reads through a preceding zero padding (engine/fusion.hpp): its pad joins the window's.
  bool accepts_input_padding() const override { return accepts_epilogue(); }
  void forward_fused_padded(const typename Layer<T>::Inputs& in, Tensor<T>& y, const ops::Epilogue<T>& ep,
                            const std::array<Index, 4>& pad) override {
    const Tensor<T>& x = *in.at(0);
    if (x.rank() != 4)
      throw ShapeError("layer '" + this->name() + "' (DepthwiseConv2D): expected a 4-d input, got " +
                       shape_str(x.shape()));
    const ops::Conv2DGeometry padded =
        ops::conv_geometry(x.dim(1) + pad[0] + pad[1], x.dim(2) + pad[2] + pad[3], x.dim(3), k_.h, k_.w, o_.strides.h,
                           o_.strides.w, o_.padding, o_.dilation_rate.h, o_.dilation_rate.w);
    ops::depthwise_conv2d_forward(ops::through_zero_padding(padded, pad), x, kernel().value,
                                  bias() ? &bias()->value : nullptr, y, &ep);
  }
  /// Training chain conv -> frozen BN -> [ReLU] (engine/fusion.hpp; only when accepts_epilogue()).
  void forward_train_fused(const typename Layer<T>::Inputs& in, Tensor<T>& y, const ops::Epilogue<T>& ep) override {
    const Tensor<T>& x = *in.at(0);
    detail::update_window_geometry(geom_, x, this->name(), "DepthwiseConv2D", k_, o_.strides, o_.padding,
                                   o_.dilation_rate);
    ops::depthwise_conv2d_forward(geom_, x, kernel().value, bias() ? &bias()->value : nullptr, y, &ep);
  }
  void backward_train_fused(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                            const ops::Epilogue<T>& ep, const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    dz_.resize(y.shape());
    ops::epilogue_backward(ep, y.data(), dy.data(), dz_.data(), y.size() / y.dim(-1), y.dim(-1));
    bool vg = this->needs_variable_grads();
    ops::depthwise_conv2d_backward(geom_, x, kernel().value, dz_, dx.at(0), vg ? &kernel().grad : nullptr,
                                   vg && bias() ? &bias()->grad : nullptr, ws_);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    const Tensor<T>* dz = &dy;
    if (act_ != keras::Activation::Linear) {
      activation_backward(act_, z_, y, dy, dz_);
      dz = &dz_;
    }
    bool vg = this->needs_variable_grads();
    ops::depthwise_conv2d_backward(geom_, x, kernel().value, *dz, dx.at(0), vg ? &kernel().grad : nullptr,
                                   vg && bias() ? &bias()->grad : nullptr, ws_);
  }
  /// The weights, for the config keys of their options (initializers::WeightOption).
  static constexpr initializers::WeightOption<DepthwiseConv2DOptions> kWeights[] = {
      {"depthwise", &DepthwiseConv2DOptions::depthwise_initializer},
      {"bias", &DepthwiseConv2DOptions::bias_initializer}};
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["depth_multiplier"] = o_.depth_multiplier;
    detail::write_conv_config(c, k_, o_, kWeights);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    auto o = detail::read_conv_options(c, "DepthwiseConv2D", kWeights);
    const std::string who = config::where("DepthwiseConv2D", c);
    o.depth_multiplier = config::get_int(c, "depth_multiplier", o.depth_multiplier, who, 1, config::kMaxDim);
    return std::make_shared<DepthwiseConv2D>(
        Size2::from_json(config::require(c, "kernel_size", who), who, "kernel_size"), o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    Index cin = in[0][3];
    const Index M = o_.depth_multiplier;
    auto& k = this->add_weight("depthwise_kernel", {k_.h, k_.w, cin, M});
    double rf = static_cast<double>(k_.h * k_.w);  // Keras: fan_in = kh*kw*C, fan_out = kh*kw*M
    o_.depthwise_initializer.fill(k.value, rf * cin, rf * M, o_.seed ? *o_.seed : next_global_seed());
    if (o_.use_bias) o_.bias_initializer.fill(this->add_weight("bias", {cin * M}).value, 1, 1, next_global_seed());
  }

 private:
  Size2 k_;
  DepthwiseConv2DOptions o_;
  keras::Activation act_;
  ops::Conv2DGeometry geom_;
  ops::DepthwiseConv2DWorkspace<T> ws_;
  Tensor<T> z_, dz_;
};

}  // namespace keras::layers
