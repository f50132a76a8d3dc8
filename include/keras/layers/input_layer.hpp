// InputLayer: the entry point of a model; keras::Input(shape) creates one and its symbolic tensor.
#pragma once
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

struct InputLayerOptions {
  Shape shape;            ///< per-sample shape, without the batch dimension
  Index batch_size = -1;  ///< fixed batch size, or -1 (None)
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

  Shape compute_output_shape(const std::vector<Shape>& /*in*/) const override { return batch_input_shape(); }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& out, bool) override { out = *in.at(0); }
  void backward(const typename Layer<T>::Inputs&, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) *dx[0] = dy;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    InputLayerOptions o;
    o.name = config::name(c, "InputLayer");
    const std::string who = "InputLayer '" + o.name + "'";
    const json* bis = c.contains("batch_input_shape") ? &c["batch_input_shape"]
                      : c.contains("batch_shape")     ? &c["batch_shape"]
                                                      : nullptr;
    if (!bis || !bis->is_array() || bis->empty()) throw ValueError(who + ": config has no batch_input_shape");
    if (bis->size() > 9)
      throw ValueError(who + ": batch_input_shape " + bis->dump().substr(0, 80) + " has rank " +
                       std::to_string(bis->size()) + ", at most 9 is supported");
    auto dim = [&](const json& d) {
      return d.is_null() ? Index(-1) : config::to_int(d, who, "batch_input_shape", -1, config::kMaxDim);
    };
    o.batch_size = dim((*bis)[0]);
    for (std::size_t i = 1; i < bis->size(); ++i) o.shape.push_back(dim((*bis)[i]));
    Shape known;
    for (Index d : o.shape) known.push_back(d < 0 ? 1 : d);
    try {
      num_elements(known);
    } catch (const ValueError& e) {
      throw ValueError(who + ": batch_input_shape " + shape_str(with_batch(o.shape, o.batch_size)) +
                       ": one sample would have more than 2^48 elements");
    }
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
