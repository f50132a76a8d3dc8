// Dense: y = activation(x · kernel + bias) over the last axis (any leading dimensions).
#pragma once
#include "../ops/activations.hpp"
#include "../ops/gemm.hpp"
#include "initializers.hpp"
#include "fast_paths.hpp"
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
  Shape input_shape;                  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

template <class T = float>
class Dense : public Layer<T>, public InferenceKernel<T>, public LogitsOutput<T> {
 public:
  KERAS_LAYER(Dense)
  explicit Dense(Index units, DenseOptions o = {})
      : Layer<T>(o.name, o.input_shape),
        units_(units),
        o_(std::move(o)),
        act_(keras::activation_from_name(o_.activation)) {
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
    if (in[0].size() < 2)
      throw ShapeError("layer '" + this->name() + "' (Dense): expected input of rank >= 2, got shape " +
                       shape_str(in[0]));
    if (in[0].back() < 0)
      throw ShapeError("layer '" + this->name() + "' (Dense): the last dimension of the input must be known, got " +
                       shape_str(in[0]));
    Shape s = in[0];
    s.back() = units_;
    return s;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    Tensor<T>& z = act_ == keras::Activation::Linear ? y : z_;
    affine(*in.at(0), z);
    if (act_ != keras::Activation::Linear) keras::activation_forward(act_, z_, y);
  }
  /// Reentrant: the activation is applied in place (no stored pre-activation).
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    affine(*in.at(0), y);
    if (act_ != keras::Activation::Linear) keras::activation_forward(act_, y, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>* dz = &dy;
    if (act_ != keras::Activation::Linear) {
      keras::activation_backward(act_, z_, y, dy, dz_);
      dz = &dz_;
    }
    backward_logits(in, *dz, dx);
  }
  keras::Activation logits_activation() const override {
    return act_ == keras::Activation::Softmax || act_ == keras::Activation::Sigmoid ? act_ : keras::Activation::Linear;
  }
  const Tensor<T>& logits(const typename Layer<T>::Inputs&) const override { return z_; }
  void forward_logits(const typename Layer<T>::Inputs& in, Tensor<T>& z) override { affine(*in.at(0), z); }
  /// Gradients from d(loss)/d(x . kernel + bias).
  void backward_logits(const typename Layer<T>::Inputs& in, const Tensor<T>& dzr,
                       const typename Layer<T>::GradInputs& dx) override {
    const Tensor<T>& x = *in.at(0);
    const Tensor<T>* dz = &dzr;
    const Index K = x.dim(-1), M = x.size() / K, U = units_;
    if (this->needs_variable_grads()) {
      ops::gemm<T>(true, false, K, U, M, T(1), x.data(), K, dz->data(), U, T(1), kernel().grad.data(), U);
      if (o_.use_bias) {
        T* bg = bias().grad.data();
        for (Index r = 0; r < M; ++r)
          for (Index u = 0; u < U; ++u) bg[u] += dz->data()[r * U + u];
      }
    }
    if (dx.at(0)) {
      dx[0]->resize(x.shape());
      ops::gemm<T>(false, true, M, K, U, T(1), dz->data(), U, kernel().value.data(), U, T(0), dx[0]->data(), K);
    }
  }
  /// The weights, for the config keys of their options (initializers::WeightOption).
  static constexpr initializers::WeightOption<DenseOptions> kWeights[] = {{"kernel", &DenseOptions::kernel_initializer},
                                                                          {"bias", &DenseOptions::bias_initializer}};
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["units"] = units_;
    c["activation"] = o_.activation;
    c["use_bias"] = o_.use_bias;
    initializers::write_weight_options(c, o_, kWeights);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    DenseOptions o;
    o.name = config::name(c, "Dense");
    const std::string who = "Dense '" + o.name + "'";
    o.activation = config::get_string(c, "activation", "linear", who);
    o.use_bias = config::get_bool(c, "use_bias", true, who);
    initializers::read_weight_options(c, o, kWeights);
    return std::make_shared<Dense>(config::to_int(config::require(c, "units", who), who, "units", 1, config::kMaxDim),
                                   o);
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

  /// z = x · kernel + bias (one GEMM over all leading dimensions).
  void affine(const Tensor<T>& x, Tensor<T>& z) {
    Shape s = x.shape();
    s.back() = units_;
    z.resize(s);
    const Index K = x.dim(-1), M = x.size() / K, U = units_;
    ops::gemm<T>(false, false, M, U, K, T(1), x.data(), K, kernel().value.data(), U, T(0), z.data(), U);
    if (o_.use_bias) {
      const T* b = bias().value.data();
      for (Index r = 0; r < M; ++r) {
        T* zr = z.data() + r * U;
        for (Index u = 0; u < U; ++u) zr[u] += b[u];
      }
    }
  }
  DenseOptions o_;
  keras::Activation act_;
  Tensor<T> z_, dz_;
};

}  // namespace keras::layers
