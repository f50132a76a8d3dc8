// The Functional API's symbols: keras::Input, KerasTensor (a layer call's symbolic output) and
// call_layer, what y = layer(x) does on them. Graphs are built from these (engine/topology.hpp).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../layers/input_layer.hpp"
#include "../layers/layer.hpp"

namespace keras {

template <class T>
class KerasTensor;

/// One layer call in a symbolic graph.
template <class T>
struct SymbolicNode {
  std::shared_ptr<layers::Layer<T>> layer;
  std::vector<KerasTensor<T>> inputs;
  Shape shape;
};

/// The symbolic output of a layer call (Keras's KerasTensor): shape and provenance, no data.
template <class T = float>
class KerasTensor {
 public:
  KerasTensor() = default;
  explicit KerasTensor(std::shared_ptr<SymbolicNode<T>> n) : node_(std::move(n)) {}
  const Shape& shape() const { return node_->shape; }
  const std::shared_ptr<SymbolicNode<T>>& node() const { return node_; }
  layers::Layer<T>& layer() const { return *node_->layer; }

 private:
  std::shared_ptr<SymbolicNode<T>> node_;
};

/// keras.Input(shape): a symbolic input; shape excludes the batch dimension.
template <class T = float>
KerasTensor<T> Input(const Shape& shape, const std::string& name = "", Index batch_size = -1) {
  auto layer = std::make_shared<layers::InputLayer<T>>(layers::InputLayerOptions{shape, batch_size, name});
  auto node = std::make_shared<SymbolicNode<T>>();
  node->layer = layer;
  node->shape = layer->batch_input_shape();
  return KerasTensor<T>(node);
}

namespace detail {
template <class T>
KerasTensor<T> call_symbolic(std::shared_ptr<layers::Layer<T>> layer, const std::vector<KerasTensor<T>>& xs) {
  if (xs.empty()) throw ValueError("layer '" + layer->name() + "' called on no inputs");
  std::vector<Shape> shapes;
  for (auto& x : xs) {
    if (!x.node()) throw ValueError("layer '" + layer->name() + "' called on an empty KerasTensor");
    shapes.push_back(x.shape());
  }
  layer->build(shapes);
  auto node = std::make_shared<SymbolicNode<T>>();
  node->layer = std::move(layer);
  node->inputs = xs;
  node->shape = node->layer->compute_output_shape(shapes);
  return KerasTensor<T>(node);
}
}  // namespace detail

/// y = layer(xs): the layer joins the graph. A layer owned by a std::shared_ptr joins as itself;
/// a temporary (Dense(4)(x)) is moved into one; a named local that is not shared cannot join.
template <class T>
KerasTensor<T> call_layer(layers::Layer<T>& layer, bool temporary, const std::vector<KerasTensor<T>>& xs) {
  auto self = layer.weak_from_this().lock();
  if (!self && !temporary)
    throw StateError(
        "layer '" + layer.name() +
        "' is not owned by a std::shared_ptr: call it as a temporary (Dense(4)(x)) or create it with std::make_shared");
  return detail::call_symbolic<T>(self ? self : layer.move_to_shared(), xs);
}
template <class T>
KerasTensor<T> call_layer(layers::Layer<T>& layer, bool temporary, const KerasTensor<T>& x) {
  return call_layer(layer, temporary, std::vector<KerasTensor<T>>{x});
}

}  // namespace keras
