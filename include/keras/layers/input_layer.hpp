// InputLayer: the entry point of a model; keras::Input(shape) creates one and its symbolic tensor.
#pragma once
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

struct InputLayerOptions {
  Shape shape;             ///< per-sample shape, without the batch dimension
  Index batch_size = -1;   ///< fixed batch size, or -1 (None)
  std::string name;
};

template <class T = float>
class InputLayer : public Layer<T> {
 public:
  KERAS_LAYER(InputLayer)
  explicit InputLayer(InputLayerOptions o = {}) : Layer<T>(o.name), shape_(o.shape), batch_size_(o.batch_size) {
    for (Index d : shape_)
      if (d == 0 || d < -1) throw ValueError("InputLayer: invalid shape " + shape_str(shape_));
    this->build(batch_input_shape());
  }
  /// (batch, *shape) as Keras's batch_input_shape.
  Shape batch_input_shape() const { return with_batch(shape_, batch_size_); }

  Shape compute_output_shape(const std::vector<Shape>& in) const override { return batch_input_shape(); }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& out, bool) override { out = *in.at(0); }
  void backward(const typename Layer<T>::Inputs&, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) *dx[0] = dy;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    InputLayerOptions o;
    o.name = c.value("name", "");
    const json* bis = c.contains("batch_input_shape") ? &c["batch_input_shape"] : c.contains("batch_shape") ? &c["batch_shape"] : nullptr;
    if (!bis || !bis->is_array() || bis->empty()) throw ValueError("InputLayer '" + o.name + "': config has no batch_input_shape");
    o.batch_size = (*bis)[0].is_null() ? -1 : (*bis)[0].get<Index>();
    for (std::size_t i = 1; i < bis->size(); ++i) o.shape.push_back((*bis)[i].is_null() ? -1 : (*bis)[i].get<Index>());
    return std::make_shared<InputLayer>(o);
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    json bis = json::array();
    for (Index d : batch_input_shape()) bis.push_back(d < 0 ? json(nullptr) : json(d));
    c["batch_input_shape"] = bis;
    c["sparse"] = false;
    c["ragged"] = false;
    return c;
  }

 private:
  Shape shape_;
  Index batch_size_;
};


}  // namespace keras::layers
