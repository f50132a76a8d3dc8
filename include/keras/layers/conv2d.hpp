// Conv2D: 2-d convolution over NHWC inputs with a [kh, kw, in, filters] kernel (Keras layout).
// k x k kernels run as im2col + GEMM, 1 x 1 kernels as one GEMM (ops/conv2d.hpp).
#pragma once
#include <mutex>
#include <type_traits>

#include "../ops/activations.hpp"
#include "../ops/conv2d.hpp"
#include "initializers.hpp"
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

/// A (height, width) pair: Size2(3) is 3x3, Size2(2, 1) is 2x1.
struct Size2 {
  Index h = 1, w = 1;
  Size2() = default;
  Size2(Index k) : h(k), w(k) {}  // NOLINT: allows kernel_size = 3
  Size2(Index h_, Index w_) : h(h_), w(w_) {}
  json to_json() const { return json::array({h, w}); }
  /// From an int or a list of one or two ints, each in [1, 2^31 - 1]; `who`/`key` name the
  /// layer and the config key in the error.
  static Size2 from_json(const json& j, const std::string& who = "layer", const std::string& key = "size") {
    auto v = [&](const json& e) { return config::to_int(e, who, key, 1, config::kMaxDim); };
    if (j.is_number()) return Size2(v(j));
    if (j.is_array() && j.size() == 1) return Size2(v(j[0]));
    if (j.is_array() && j.size() == 2) return Size2(v(j[0]), v(j[1]));
    throw ValueError(who + ": '" + key + "' must be an int or a pair of ints, got " + j.dump().substr(0, 80));
  }
};

namespace detail {
/// Output spatial shape for a conv/pool window; -1 stays -1.
inline Shape conv_output_shape(const std::string& layer, const std::string& cls, const Shape& in, Size2 k, Size2 s,
                               const std::string& padding, Size2 d, Index out_channels) {
  if (in.size() != 4)
    throw ShapeError("layer '" + layer + "' (" + cls +
                     "): expected input of rank 4 (batch, rows, cols, channels), got shape " + shape_str(in));
  Shape out{in[0], -1, -1, out_channels};
  if (in[1] >= 0 && in[2] >= 0) {
    auto g = ops::conv_geometry(in[1], in[2], std::max<Index>(in[3], 1), k.h, k.w, s.h, s.w, padding, d.h, d.w);
    out[1] = g.out_h;
    out[2] = g.out_w;
  }
  return out;
}
inline void check_positive(const std::string& cls, const char* what, Size2 v) {
  if (v.h <= 0 || v.w <= 0)
    throw ValueError(cls + ": " + what + " must be positive, got (" + std::to_string(v.h) + ", " + std::to_string(v.w) +
                     ")");
}
/// Constructor checks shared by the windowed layers (Conv2D, DepthwiseConv2D).
inline void check_window_args(const std::string& cls, Size2 k, Size2 strides, Size2 dilation,
                              const std::string& padding) {
  check_positive(cls, "kernel_size", k);
  check_positive(cls, "strides", strides);
  check_positive(cls, "dilation_rate", dilation);
  ops::parse_padding(padding);
}
/// Recomputes `g` when x's spatial shape or channels differ from the last call's.
template <class T>
void update_window_geometry(ops::Conv2DGeometry& g, const Tensor<T>& x, const std::string& layer,
                            const std::string& cls, Size2 k, Size2 strides, const std::string& padding,
                            Size2 dilation) {
  if (x.rank() != 4)
    throw ShapeError("layer '" + layer + "' (" + cls + "): expected a 4-d input, got " + shape_str(x.shape()));
  if (g.in_h != x.dim(1) || g.in_w != x.dim(2) || g.in_c != x.dim(3))
    g = ops::conv_geometry(x.dim(1), x.dim(2), x.dim(3), k.h, k.w, strides.h, strides.w, padding, dilation.h,
                           dilation.w);
}
/// An int or a list of one int (Keras saves 1-d sizes as one-element tuples).
inline Index one_int(const json& c, const char* key, Index def, const std::string& who) {
  if (!c.is_object() || !c.contains(key) || c[key].is_null()) return def;
  const json& v = c[key];
  if (v.is_array() && v.size() == 1) return config::to_int(v[0], who, key, 1, config::kMaxDim);
  if (v.is_number()) return config::to_int(v, who, key, 1, config::kMaxDim);
  throw ValueError(who + ": '" + key + "' must be an int or a list of one int, got " + v.dump().substr(0, 80));
}
/// A window size in a config: a list of one int (1-d layers, Index) or a pair (Size2).
inline json size_json(Index v) { return json::array({v}); }
inline json size_json(Size2 v) { return v.to_json(); }
/// c[key] into v when present and not null.
inline void read_size(const json& c, const char* key, const std::string& who, Index& v) { v = one_int(c, key, v, who); }
inline void read_size(const json& c, const char* key, const std::string& who, Size2& v) {
  if (c.contains(key) && !c[key].is_null()) v = Size2::from_json(c[key], who, key);
}
/// The Keras config keys every convolution writes and reads one way: kernel_size, strides,
/// padding, data_format, dilation_rate, activation, use_bias, and those of its table of weights
/// (initializers::WeightOption). The layer adds its own (filters, groups, depth_multiplier, ...).
template <class K, class O, std::size_t N>
void write_conv_config(json& c, K kernel_size, const O& o, const initializers::WeightOption<O> (&weights)[N]) {
  c["kernel_size"] = size_json(kernel_size);
  c["strides"] = size_json(o.strides);
  c["padding"] = o.padding;
  c["data_format"] = "channels_last";
  c["dilation_rate"] = size_json(o.dilation_rate);
  c["activation"] = o.activation;
  c["use_bias"] = o.use_bias;
  initializers::write_weight_options(c, o, weights);
}
template <class O, std::size_t N>
O read_conv_options(const json& c, const char* cls, const initializers::WeightOption<O> (&weights)[N]) {
  O o;
  o.name = config::name(c, cls);
  const std::string who = config::where(cls, c);
  read_size(c, "strides", who, o.strides);
  o.padding = config::get_string(c, "padding", "valid", who);
  read_size(c, "dilation_rate", who, o.dilation_rate);
  if (c.contains("activation") && c["activation"].is_string()) o.activation = c["activation"];
  o.use_bias = config::get_bool(c, "use_bias", true, who);
  config::check_channels_last(c, who);
  initializers::read_weight_options(c, o, weights);
  return o;
}
/// The positional `filters` of a config.
inline Index read_filters(const json& c, const std::string& who) {
  return config::to_int(config::require(c, "filters", who), who, "filters", 1, config::kMaxDim);
}
/// Keras's `groups` (grouped convolution): only 1 is supported.
inline void read_groups(const json& c, const std::string& who) {
  if (config::get_int(c, "groups", 1, who, 1, config::kMaxDim) != 1)
    throw ValueError(who + ": groups != 1 is not supported");
}
}  // namespace detail

struct Conv2DOptions {
  Size2 strides = 1;
  std::string padding = "valid";
  Size2 dilation_rate = 1;
  std::string activation = "linear";
  bool use_bias = true;
  initializers::Initializer kernel_initializer = "glorot_uniform";
  initializers::Initializer bias_initializer = "zeros";
  std::string name;
  std::optional<std::uint64_t> seed;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

template <class T = float>
class Conv2D : public Layer<T>, public FusableConv<T>, public FusableTrainingConv<T> {
 public:
  KERAS_LAYER(Conv2D)
  Conv2D(Index filters, Size2 kernel_size, Conv2DOptions o = {})
      : Layer<T>(o.name, o.input_shape),
        filters_(filters),
        k_(kernel_size),
        o_(std::move(o)),
        act_(activation_from_name(o_.activation)) {
    if (filters <= 0) throw ValueError("Conv2D: filters must be positive, got " + std::to_string(filters));
    detail::check_window_args("Conv2D", k_, o_.strides, o_.dilation_rate, o_.padding);
  }
  /// The kernel variable (its version is bumped: the caller may write it, see Variable::version).
  Variable<T>& kernel() {
    Variable<T>& k = *this->variables_.at(0);
    k.changed();
    return k;
  }
  Variable<T>* bias() { return o_.use_bias ? this->variables_.at(1).get() : nullptr; }
  Index filters() const { return filters_; }

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    Shape out = detail::conv_output_shape(this->name(), "Conv2D", in[0], k_, o_.strides, o_.padding, o_.dilation_rate,
                                          filters_);
    if (in[0][3] < 0)
      throw ShapeError("layer '" + this->name() + "' (Conv2D): the channel dimension of the input must be known, got " +
                       shape_str(in[0]));
    return out;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    detail::update_window_geometry(geom_, x, this->name(), "Conv2D", k_, o_.strides, o_.padding, o_.dilation_rate);
    Tensor<T>& z = act_ == keras::Activation::Linear ? y : z_;
    ops::conv2d_forward(geom_, x, kvar().value, bias() ? &bias()->value : nullptr, z, ws_);
    if (act_ != keras::Activation::Linear) activation_forward(act_, z_, y);
  }
  /// Reentrant: local geometry, the calling thread's workspace, activation applied in place.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override { inference(in, y, nullptr); }
  void forward_fused(const typename Layer<T>::Inputs& in, Tensor<T>& y, const ops::Epilogue<T>& ep) override {
    inference(in, y, &ep);
  }
  void inference(const typename Layer<T>::Inputs& in, Tensor<T>& y, const ops::Epilogue<T>* ep) {
    const Tensor<T>& x = *in.at(0);
    ops::Conv2DGeometry g;
    detail::update_window_geometry(g, x, this->name(), "Conv2D", k_, o_.strides, o_.padding, o_.dilation_rate);
    ops::conv2d_forward(g, x, kvar().value, bias() ? &bias()->value : nullptr, y, ops::thread_workspace<T>(),
                        act_ == keras::Activation::Linear ? ep : nullptr, packed_kernel());
    if (act_ != keras::Activation::Linear) activation_forward(act_, y, y);
  }
  bool accepts_epilogue() const override { return act_ == keras::Activation::Linear; }
  /// Training chain conv -> frozen BN -> [ReLU] (engine/fusion.hpp; only when accepts_epilogue()).
  void forward_train_fused(const typename Layer<T>::Inputs& in, Tensor<T>& y, const ops::Epilogue<T>& ep) override {
    const Tensor<T>& x = *in.at(0);
    detail::update_window_geometry(geom_, x, this->name(), "Conv2D", k_, o_.strides, o_.padding, o_.dilation_rate);
    ops::conv2d_forward(geom_, x, kvar().value, bias() ? &bias()->value : nullptr, y, ws_, &ep);
  }
  void backward_train_fused(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                            const ops::Epilogue<T>& ep, const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    bool vg = this->needs_variable_grads();
    const ops::Conv2DGeometry g = ops::with_input(geom_, x, "Conv2D backward");
    if (g.is_pointwise() && dy.shape() == y.shape() && y.shape() == Shape{g.batch, g.out_h, g.out_w, filters_}) {
      if (dx.at(0)) dx[0]->resize(x.shape());
      ops::conv2d_backward_pointwise_fused(g, filters_, x.data(), kvar().value.data(), y.data(), dy.data(), ep,
                                           dx[0] ? dx[0]->data() : nullptr, vg ? kvar().grad.data() : nullptr,
                                           vg && bias() ? bias()->grad.data() : nullptr, ws_);
      return;
    }
    dz_.resize(y.shape());
    ops::epilogue_backward(ep, y.data(), dy.data(), dz_.data(), y.size() / y.dim(-1), y.dim(-1));
    ops::conv2d_backward(geom_, x, kvar().value, dz_, dx.at(0), vg ? &kvar().grad : nullptr,
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
    ops::conv2d_backward(geom_, x, kvar().value, *dz, dx.at(0), vg ? &kvar().grad : nullptr,
                         vg && bias() ? &bias()->grad : nullptr, ws_);
  }
  /// The weights, for the config keys of their options (initializers::WeightOption).
  static constexpr initializers::WeightOption<Conv2DOptions> kWeights[] = {
      {"kernel", &Conv2DOptions::kernel_initializer}, {"bias", &Conv2DOptions::bias_initializer}};
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["filters"] = filters_;
    c["groups"] = 1;
    detail::write_conv_config(c, k_, o_, kWeights);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    auto o = detail::read_conv_options(c, "Conv2D", kWeights);
    const std::string who = config::where("Conv2D", c);
    detail::read_groups(c, who);
    return std::make_shared<Conv2D>(detail::read_filters(c, who),
                                    Size2::from_json(config::require(c, "kernel_size", who), who, "kernel_size"), o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    Index cin = in[0][3];
    auto& k = this->add_weight("kernel", {k_.h, k_.w, cin, filters_});
    double rf = static_cast<double>(k_.h * k_.w);
    o_.kernel_initializer.fill(k.value, rf * cin, rf * filters_, o_.seed ? *o_.seed : next_global_seed());
    if (o_.use_bias) o_.bias_initializer.fill(this->add_weight("bias", {filters_}).value, 1, 1, next_global_seed());
  }

 private:
  Variable<T>& kvar() { return *this->variables_.at(0); }
  /// Inference: the kernel packed once for the own GEMM micro-kernel (float builds that have it),
  /// repacked when the kernel variable's version or storage changes; nullptr: conv2d_forward packs
  /// per call. Slices of one pass call this concurrently (the weights do not change during a pass).
  const ops::PackedB* packed_kernel() {
    if constexpr (std::is_same_v<T, float> && ops::gk::kGemmKernel) {
      const Variable<T>& k = kvar();
      const Index P = k.value.size() / filters_;
      std::lock_guard<std::mutex> lock(pack_.mutex);
      if (pack_.src != k.value.data() || pack_.version != k.version || pack_.size != k.value.size()) {
        pack_.data.resize({ops::gk::packed_size(P, filters_)});
        pack_.view = ops::pack_b_matrix(false, P, filters_, k.value.data(), filters_, pack_.data.data());
        pack_.src = k.value.data();
        pack_.version = k.version;
        pack_.size = k.value.size();
      }
      return &pack_.view;
    } else {
      return nullptr;
    }
  }
  struct PackCache {  ///< copies and moves of the layer start with an empty cache
    PackCache() = default;
    PackCache(const PackCache&) {}
    PackCache& operator=(const PackCache&) {
      src = nullptr;
      return *this;
    }
    std::mutex mutex;
    Tensor<float> data;
    ops::PackedB view;
    const T* src = nullptr;
    std::uint64_t version = 0;
    Index size = -1;
  };
  PackCache pack_;
  Index filters_;
  Size2 k_;
  Conv2DOptions o_;
  keras::Activation act_;
  ops::Conv2DGeometry geom_;
  ops::Conv2DWorkspace<T> ws_;
  Tensor<T> z_, dz_;
};

}  // namespace keras::layers
