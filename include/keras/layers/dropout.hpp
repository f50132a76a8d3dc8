// Dropout: in training, zeroes each input with probability `rate` and scales the rest by
// 1/(1-rate) (inverted dropout); identity in inference.
#pragma once
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

struct DropoutOptions {
  std::optional<std::uint64_t> seed;  ///< mask seed (default: drawn from the global seed)
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

template <class T = float>
class Dropout : public Layer<T>, public InferenceKernel<T> {
 public:
  KERAS_LAYER(Dropout)
  explicit Dropout(double rate, DropoutOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)),
        rate_(rate),
        seed_(o.seed),
        rng_(o.seed ? *o.seed : next_global_seed()) {
    if (rate < 0 || rate >= 1) throw ValueError("Dropout: rate must be in [0, 1), got " + std::to_string(rate));
  }
  double rate() const { return rate_; }
  bool cacheable() const override { return rate_ == 0; }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    return in[0];
  }
  /// Inference: the identity (reentrant).
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override { y = *in.at(0); }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool training) override {
    const Tensor<T>& x = *in.at(0);
    applied_ = training && rate_ > 0;
    if (!applied_) {
      y = x;
      return;
    }
    mask_.resize(x.shape());
    y.resize(x.shape());
    const T scale = static_cast<T>(1.0 / (1.0 - rate_));
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (Index i = 0; i < x.size(); ++i) mask_[i] = u(rng_.engine()) >= rate_ ? scale : T(0);
    y.array() = x.array() * mask_.array();
  }
  void backward(const typename Layer<T>::Inputs& /*in*/, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    if (!applied_) {
      *dx[0] = dy;
      return;
    }
    dx[0]->resize(dy.shape());
    dx[0]->array() = dy.array() * mask_.array();
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["rate"] = rate_;
    c["noise_shape"] = nullptr;
    c["seed"] = seed_ ? json(*seed_) : json(nullptr);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    std::optional<std::uint64_t> seed;
    if (c.contains("seed") && c["seed"].is_number_integer()) seed = c["seed"].get<std::uint64_t>();
    const std::string who = config::where("Dropout", c);
    config::require(c, "rate", who);
    return std::make_shared<Dropout>(config::get_number(c, "rate", 0.0, who, 0.0, 1.0),
                                     DropoutOptions{seed, config::name(c, "Dropout"), {}});
  }

 private:
  double rate_;
  std::optional<std::uint64_t> seed_;
  Random rng_;
  Tensor<T> mask_;
  bool applied_ = false;
};

}  // namespace keras::layers
