// Conv2DTranspose: the adjoint of a Conv2D (the gradient of a convolution with respect to its
// input), NHWC, Keras kernel [kh, kw, filters, in_channels]. That kernel is exactly the Conv2D
// kernel [KH, KW, C, F] of the convolution that maps the transpose's output (C = filters) back to
// its input (F = in_channels), so forward is conv2d_backward's dx and backward is conv2d_forward
// (d/dx) and conv2d_backward's dkernel (ops/conv2d.hpp).
// Output size (Keras's deconv_output_length, k = dilated kernel size):
//   valid: in * s + max(k - s, 0); same: in * s; with output_padding p: (in - 1) * s + k - 2 * pad + p,
//   pad = k / 2 (same) or 0 (valid). The padding of that convolution is TF's rule on the output size.
#pragma once
#include "conv2d.hpp"

namespace keras::layers {

struct Conv2DTransposeOptions {
  Size2 strides = 1;
  std::string padding = "valid";
  std::optional<Size2> output_padding;  ///< None: Keras's default output size
  Size2 dilation_rate = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Initializer kernel_initializer = "glorot_uniform";
  initializers::Initializer bias_initializer = "zeros";
  std::string name;
  std::optional<std::uint64_t> seed;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

namespace detail {
/// Keras's deconv_output_length for one axis (-1 stays -1).
inline Index deconv_length(Index in, Index k, const std::string& padding, std::optional<Index> out_pad, Index s,
                           Index d) {
  if (in < 0) return -1;
  const Index kd = k + (k - 1) * (d - 1);
  if (!out_pad) return padding == "valid" ? in * s + std::max<Index>(kd - s, 0) : in * s;
  const Index pad = padding == "same" ? kd / 2 : 0;
  return (in - 1) * s + kd - 2 * pad + *out_pad;
}
}  // namespace detail

template <class T = float>
class Conv2DTranspose : public Layer<T>, public InferenceKernel<T> {
 public:
  KERAS_LAYER(Conv2DTranspose)
  Conv2DTranspose(Index filters, Size2 kernel_size, Conv2DTransposeOptions o = {})
      : Layer<T>(o.name, o.input_shape),
        filters_(filters),
        k_(kernel_size),
        o_(std::move(o)),
        act_(activation_from_name(o_.activation)) {
    if (filters <= 0) throw ValueError("Conv2DTranspose: filters must be positive, got " + std::to_string(filters));
    detail::check_window_args("Conv2DTranspose", k_, o_.strides, o_.dilation_rate, o_.padding);
    if (o_.output_padding && (o_.output_padding->h >= o_.strides.h || o_.output_padding->w >= o_.strides.w))
      throw ValueError("Conv2DTranspose '" + o_.name + "': output_padding must be smaller than the strides, got (" +
                       std::to_string(o_.output_padding->h) + ", " + std::to_string(o_.output_padding->w) +
                       ") for strides (" + std::to_string(o_.strides.h) + ", " + std::to_string(o_.strides.w) + ")");
  }
  Variable<T>& kernel() { return *this->variables_.at(0); }
  Variable<T>* bias() { return o_.use_bias ? this->variables_.at(1).get() : nullptr; }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 4);
    if (in[0][3] < 0)
      throw ShapeError("layer '" + this->name() + "' (Conv2DTranspose): the channel dimension must be known, got " +
                       shape_str(in[0]));
    if (in[0][1] >= 0 && in[0][2] >= 0)
      geometry(in[0][1], in[0][2], in[0][3]);  // refuses sizes without a valid geometry
    return {in[0][0], out_len(in[0][1], 0), out_len(in[0][2], 1), filters_};
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    g_ = geometry(x.dim(1), x.dim(2), x.dim(3));
    g_.batch = x.dim(0);
    run(g_, x, act_ == keras::Activation::Linear ? y : z_, ws_);
    if (act_ != keras::Activation::Linear) activation_forward(act_, z_, y);
  }
  /// Reentrant: local geometry, the calling thread's workspace, activation applied in place.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    const Tensor<T>& x = *in.at(0);
    ops::Conv2DGeometry g = geometry(x.dim(1), x.dim(2), x.dim(3));
    g.batch = x.dim(0);
    run(g, x, y, ops::thread_workspace<T>());
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
    if (dx.at(0)) {
      dx[0]->resize(x.shape());
      ops::conv2d_forward<T>(g_, x.dim(3), dz->data(), kernel().value.data(), nullptr, dx[0]->data(), ws_);
    }
    if (!this->needs_variable_grads()) return;
    ops::conv2d_backward<T>(g_, x.dim(3), dz->data(), kernel().value.data(), x.data(), nullptr, kernel().grad.data(),
                            nullptr, ws_);
    if (bias()) {
      T* db = bias()->grad.data();
      for (Index i = 0; i < dz->size(); ++i) db[i % filters_] += (*dz)[i];
    }
  }
  /// The weights, for the config keys of their options (initializers::WeightOption).
  static constexpr initializers::WeightOption<Conv2DTransposeOptions> kWeights[] = {
      {"kernel", &Conv2DTransposeOptions::kernel_initializer}, {"bias", &Conv2DTransposeOptions::bias_initializer}};
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["filters"] = filters_;
    c["groups"] = 1;
    detail::write_conv_config(c, k_, o_, kWeights);
    c["output_padding"] = o_.output_padding ? o_.output_padding->to_json() : json(nullptr);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    auto o = detail::read_conv_options(c, "Conv2DTranspose", kWeights);
    const std::string who = config::where("Conv2DTranspose", c);
    detail::read_groups(c, who);
    if (c.contains("output_padding") && !c["output_padding"].is_null()) {
      auto v = [&](const json& e) { return config::to_int(e, who, "output_padding", 0, config::kMaxDim); };
      const json& p = c["output_padding"];
      if (p.is_number())
        o.output_padding = Size2(v(p), v(p));
      else if (p.is_array() && p.size() == 2)
        o.output_padding = Size2(v(p[0]), v(p[1]));
      else
        throw ValueError(who + ": 'output_padding' must be null, an int or a pair of ints, got " +
                         p.dump().substr(0, 80));
    }
    return std::make_shared<Conv2DTranspose>(
        detail::read_filters(c, who), Size2::from_json(config::require(c, "kernel_size", who), who, "kernel_size"), o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    const Index cin = in[0][3];
    auto& k = this->add_weight("kernel", {k_.h, k_.w, filters_, cin});
    const double rf = static_cast<double>(k_.h * k_.w);  // Keras's fans of [kh, kw, filters, in]
    o_.kernel_initializer.fill(k.value, rf * filters_, rf * cin, o_.seed ? *o_.seed : next_global_seed());
    if (o_.use_bias) o_.bias_initializer.fill(this->add_weight("bias", {filters_}).value, 1, 1, next_global_seed());
  }

 private:
  Index filters_;
  Size2 k_;
  Conv2DTransposeOptions o_;
  keras::Activation act_;
  ops::Conv2DGeometry g_;
  ops::Conv2DWorkspace<T> ws_;
  Tensor<T> z_, dz_;

  /// z = conv_transpose(x) + bias (before the activation).
  void run(const ops::Conv2DGeometry& g, const Tensor<T>& x, Tensor<T>& z, ops::Conv2DWorkspace<T>& ws) {
    z.resize({g.batch, g.in_h, g.in_w, filters_});
    ops::conv2d_backward<T>(g, x.dim(3), nullptr, kernel().value.data(), x.data(), z.data(), nullptr, nullptr, ws);
    if (!bias()) return;
    const T* b = bias()->value.data();
    for (Index i = 0; i < z.size(); ++i) z[i] += b[i % filters_];
  }
  Index out_len(Index in, int axis) const {
    std::optional<Index> op;
    if (o_.output_padding) op = axis == 0 ? o_.output_padding->h : o_.output_padding->w;
    return axis == 0 ? detail::deconv_length(in, k_.h, o_.padding, op, o_.strides.h, o_.dilation_rate.h)
                     : detail::deconv_length(in, k_.w, o_.padding, op, o_.strides.w, o_.dilation_rate.w);
  }
  /// The geometry of the convolution from the transpose's output [out_h, out_w, filters] to its input.
  ops::Conv2DGeometry geometry(Index in_h, Index in_w, Index cin) const {
    if (cin <= 0) throw ShapeError("layer '" + this->name() + "' (Conv2DTranspose): input channels must be positive");
    const Index oh = out_len(in_h, 0), ow = out_len(in_w, 1);
    const std::string who = "layer '" + this->name() + "' (Conv2DTranspose): ";
    if (oh <= 0 || ow <= 0)
      throw ShapeError(who + "the output would be empty for input " + shape_str({-1, in_h, in_w, cin}));
    auto g = ops::conv_geometry(oh, ow, filters_, k_.h, k_.w, o_.strides.h, o_.strides.w, o_.padding,
                                o_.dilation_rate.h, o_.dilation_rate.w);
    if (g.out_h != in_h || g.out_w != in_w)
      throw ShapeError(who + "output_padding gives an output " + shape_str({-1, oh, ow, filters_}) +
                       " whose convolution does not map back to the input " + shape_str({-1, in_h, in_w, cin}));
    return g;
  }
};

}  // namespace keras::layers
