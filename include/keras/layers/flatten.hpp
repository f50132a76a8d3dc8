// Flatten: [N, d1, d2, ...] -> [N, d1*d2*...] (row-major, as channels_last Keras).
#pragma once
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

template <class T = float>
class Flatten : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Flatten)
  explicit Flatten(LayerOptions o = {}) : Layer<T>(std::move(o.name), std::move(o.input_shape)) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    if (in[0].size() < 2)
      throw ShapeError("layer '" + this->name() + "' (Flatten): expected input of rank >= 2, got " + shape_str(in[0]));
    for (std::size_t i = 1; i < in[0].size(); ++i)
      if (in[0][i] < 0) return {in[0][0], -1};
    return {in[0][0], num_elements(without_batch(in[0]))};  // (checked: throws past 2^48 elements)
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    y = x;
    y.reshape({x.dim(0), x.dim(0) ? x.size() / x.dim(0) : 0});
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    *dx[0] = dy;
    dx[0]->reshape(in[0]->shape());
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["data_format"] = "channels_last";
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<Flatten>(LayerOptions{config::name(c, "Flatten"), {}});
  }
};

}  // namespace keras::layers
