// 1-D layers over [batch, steps, channels]: Conv1D (kernel [k, in, filters]; padding valid, same or
// causal), MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D and GlobalMaxPooling1D. Each runs
// the 2-d kernels on a 1 x steps image: the memory of [N, steps, C] is that of [N, 1, steps, C],
// and a [k, C, F] kernel is a [1, k, C, F] one. Causal padding is k-1 (dilated) zeros before.
#pragma once
#include "pooling.hpp"

namespace keras::layers {

struct Conv1DOptions {
  Index strides = 1;
  std::string padding = "valid";  ///< "valid", "same" or "causal"
  Index dilation_rate = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Initializer kernel_initializer = "glorot_uniform";
  initializers::Initializer bias_initializer = "zeros";
  std::string name;
  std::optional<std::uint64_t> seed;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

namespace detail {
/// The geometry of a 1-d window over `steps` as a 1 x steps image (causal: (k-1)*d zeros before).
inline ops::Conv2DGeometry window_1d_geometry(Index steps, Index C, Index k, Index s, const std::string& padding,
                                              Index d) {
  if (padding != "causal") return ops::conv_geometry(1, steps, C, 1, k, 1, s, padding, 1, d);
  const Index pad = (k - 1) * d;
  auto g = ops::conv_geometry(1, steps + pad, C, 1, k, 1, s, ops::Padding::Valid, 1, d);
  g.in_w = steps;
  g.pad_left = pad;
  return g;
}
}  // namespace detail

template <class T = float>
class Conv1D : public Layer<T>, public InferenceKernel<T> {
 public:
  KERAS_LAYER(Conv1D)
  Conv1D(Index filters, Index kernel_size, Conv1DOptions o = {})
      : Layer<T>(o.name, o.input_shape),
        filters_(filters),
        k_(kernel_size),
        o_(std::move(o)),
        act_(activation_from_name(o_.activation)) {
    if (filters <= 0) throw ValueError("Conv1D: filters must be positive, got " + std::to_string(filters));
    detail::check_positive("Conv1D", "kernel_size, strides and dilation_rate",
                           Size2(std::min({k_, o_.strides, o_.dilation_rate}), 1));
    if (o_.padding != "causal") ops::parse_padding(o_.padding);
    if (o_.strides > 1 && o_.dilation_rate > 1)
      throw ValueError("Conv1D '" + o_.name + "': strides > 1 are not supported with dilation_rate > 1 (as Keras)");
  }
  Variable<T>& kernel() { return *this->variables_.at(0); }
  Variable<T>* bias() { return o_.use_bias ? this->variables_.at(1).get() : nullptr; }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 3);
    if (in[0][2] < 0)
      throw ShapeError("layer '" + this->name() + "' (Conv1D): the channel dimension must be known, got " +
                       shape_str(in[0]));
    Index steps = -1;
    if (in[0][1] >= 0)
      steps = detail::window_1d_geometry(in[0][1], in[0][2], k_, o_.strides, o_.padding, o_.dilation_rate).out_w;
    return {in[0][0], steps, filters_};
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    g_ = geometry(x);
    run(g_, x, act_ == keras::Activation::Linear ? y : z_, ws_);
    if (act_ != keras::Activation::Linear) activation_forward(act_, z_, y);
  }
  /// Reentrant: local geometry, the calling thread's workspace, activation applied in place.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    const Tensor<T>& x = *in.at(0);
    run(geometry(x), x, y, ops::thread_workspace<T>());
    if (act_ != keras::Activation::Linear) activation_forward(act_, y, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    const Tensor<T>* dz = &dy;
    if (act_ != keras::Activation::Linear) {
      activation_backward(act_, z_, y, dy, dz_);
      dz = &dz_;
    }
    const bool vg = this->needs_variable_grads();
    if (dx.at(0)) dx[0]->resize(x.shape());
    ops::conv2d_backward<T>(g_, filters_, x.data(), kernel().value.data(), dz->data(), dx[0] ? dx[0]->data() : nullptr,
                            vg ? kernel().grad.data() : nullptr, vg && bias() ? bias()->grad.data() : nullptr, ws_);
  }
  /// The weights, for the config keys of their options (initializers::WeightOption).
  static constexpr initializers::WeightOption<Conv1DOptions> kWeights[] = {
      {"kernel", &Conv1DOptions::kernel_initializer}, {"bias", &Conv1DOptions::bias_initializer}};
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["filters"] = filters_;
    c["groups"] = 1;
    detail::write_conv_config(c, k_, o_, kWeights);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    auto o = detail::read_conv_options(c, "Conv1D", kWeights);
    const std::string who = config::where("Conv1D", c);
    detail::read_groups(c, who);
    if (o.padding != "valid" && o.padding != "same" && o.padding != "causal")
      throw ValueError(who + ": padding '" + o.padding + "' is not one of 'valid', 'same', 'causal'");
    config::require(c, "kernel_size", who);
    return std::make_shared<Conv1D>(detail::read_filters(c, who), detail::one_int(c, "kernel_size", 1, who), o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    const Index cin = in[0][2];
    auto& k = this->add_weight("kernel", {k_, cin, filters_});
    o_.kernel_initializer.fill(k.value, static_cast<double>(k_ * cin), static_cast<double>(k_ * filters_),
                               o_.seed ? *o_.seed : next_global_seed());
    if (o_.use_bias) o_.bias_initializer.fill(this->add_weight("bias", {filters_}).value, 1, 1, next_global_seed());
  }

 private:
  Index filters_, k_;
  Conv1DOptions o_;
  keras::Activation act_;
  ops::Conv2DGeometry g_;
  ops::Conv2DWorkspace<T> ws_;
  Tensor<T> z_, dz_;
  ops::Conv2DGeometry geometry(const Tensor<T>& x) const {
    if (x.rank() != 3)
      throw ShapeError("layer '" + this->name() + "' (Conv1D): expected a 3-d input, got " + shape_str(x.shape()));
    auto g = detail::window_1d_geometry(x.dim(1), x.dim(2), k_, o_.strides, o_.padding, o_.dilation_rate);
    g.batch = x.dim(0);
    return g;
  }
  void run(const ops::Conv2DGeometry& g, const Tensor<T>& x, Tensor<T>& z, ops::Conv2DWorkspace<T>& ws) {
    z.resize({g.batch, g.out_w, filters_});
    ops::conv2d_forward<T>(g, filters_, x.data(), kernel().value.data(), bias() ? bias()->value.data() : nullptr,
                           z.data(), ws);
  }
};

struct Pooling1DOptions {
  std::optional<Index> strides;  ///< default: pool_size
  std::string padding = "valid";
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

namespace detail {
/// MaxPooling1D / AveragePooling1D over [N, steps, C] windows.
template <class T, bool Max>
class Pooling1D : public Layer<T>, public InferenceKernel<T> {
 public:
  Pooling1D(Index pool_size, Pooling1DOptions o) : Layer<T>(o.name, o.input_shape), pool_(pool_size), o_(std::move(o)) {
    const char* cls = Max ? "MaxPooling1D" : "AveragePooling1D";
    check_positive(cls, "pool_size and strides", Size2(std::min(pool_, strides()), 1));
    ops::parse_padding(o_.padding);
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 3);
    Index steps = -1;
    if (in[0][1] >= 0)
      steps = ops::pool_geometry(1, in[0][1], std::max<Index>(in[0][2], 1), 1, pool_, 1, strides(), o_.padding).out_w;
    return {in[0][0], steps, in[0][2]};
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    if (x.rank() != 3)
      throw ShapeError("layer '" + this->name() + "': expected a 3-d input, got " + shape_str(x.shape()));
    g_ = ops::pool_geometry(1, x.dim(1), x.dim(2), 1, pool_, 1, strides(), o_.padding);
    g_.batch = x.dim(0);
    run(g_, x, y);
  }
  /// Reentrant: local geometry.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    const Tensor<T>& x = *in.at(0);
    if (x.rank() != 3)
      throw ShapeError("layer '" + this->name() + "': expected a 3-d input, got " + shape_str(x.shape()));
    auto g = ops::pool_geometry(1, x.dim(1), x.dim(2), 1, pool_, 1, strides(), o_.padding);
    g.batch = x.dim(0);
    run(g, x, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    dx[0]->resize(in[0]->shape());
    if constexpr (Max)
      ops::max_pool2d_backward(g_, in[0]->data(), dy.data(), dx[0]->data());
    else
      ops::avg_pool2d_backward(g_, dy.data(), dx[0]->data());
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["pool_size"] = json::array({pool_});
    c["strides"] = json::array({strides()});
    c["padding"] = o_.padding;
    c["data_format"] = "channels_last";
    return c;
  }
  template <class L>
  static std::shared_ptr<Layer<T>> create(const json& c, const char* cls) {
    Pooling1DOptions o;
    o.name = config::name(c, cls);
    const std::string who = config::where(cls, c);
    if (c.contains("strides") && !c["strides"].is_null()) o.strides = one_int(c, "strides", 1, who);
    o.padding = config::get_string(c, "padding", "valid", who);
    config::check_channels_last(c, who);
    return std::make_shared<L>(one_int(c, "pool_size", 2, who), o);
  }

 private:
  Index pool_;
  Pooling1DOptions o_;
  ops::Pool2DGeometry g_;
  Index strides() const { return o_.strides ? *o_.strides : pool_; }
  static void run(const ops::Pool2DGeometry& g, const Tensor<T>& x, Tensor<T>& y) {
    y.resize({g.batch, g.out_w, g.in_c});
    if constexpr (Max)
      ops::max_pool2d_forward(g, x.data(), y.data());
    else
      ops::avg_pool2d_forward(g, x.data(), y.data());
  }
};
}  // namespace detail

template <class T = float>
class MaxPooling1D : public detail::Pooling1D<T, true> {
 public:
  KERAS_LAYER(MaxPooling1D)
  explicit MaxPooling1D(Index pool_size = 2, Pooling1DOptions o = {})
      : detail::Pooling1D<T, true>(pool_size, std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return detail::Pooling1D<T, true>::template create<MaxPooling1D>(c, "MaxPooling1D");
  }
};

template <class T = float>
class AveragePooling1D : public detail::Pooling1D<T, false> {
 public:
  KERAS_LAYER(AveragePooling1D)
  explicit AveragePooling1D(Index pool_size = 2, Pooling1DOptions o = {})
      : detail::Pooling1D<T, false>(pool_size, std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return detail::Pooling1D<T, false>::template create<AveragePooling1D>(c, "AveragePooling1D");
  }
};

template <class T = float>
class GlobalAveragePooling1D : public detail::GlobalPooling2D<T, false, 3> {
 public:
  KERAS_LAYER(GlobalAveragePooling1D)
  explicit GlobalAveragePooling1D(GlobalPoolingOptions o = {}) : detail::GlobalPooling2D<T, false, 3>(std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("GlobalAveragePooling1D", c);
    config::check_channels_last(c, who);
    return std::make_shared<GlobalAveragePooling1D>(GlobalPoolingOptions{
        config::get_bool(c, "keepdims", false, who), config::name(c, "GlobalAveragePooling1D"), {}});
  }
};

template <class T = float>
class GlobalMaxPooling1D : public detail::GlobalPooling2D<T, true, 3> {
 public:
  KERAS_LAYER(GlobalMaxPooling1D)
  explicit GlobalMaxPooling1D(GlobalPoolingOptions o = {}) : detail::GlobalPooling2D<T, true, 3>(std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("GlobalMaxPooling1D", c);
    config::check_channels_last(c, who);
    return std::make_shared<GlobalMaxPooling1D>(
        GlobalPoolingOptions{config::get_bool(c, "keepdims", false, who), config::name(c, "GlobalMaxPooling1D"), {}});
  }
};

}  // namespace keras::layers
