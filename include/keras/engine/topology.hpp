// What a model is: the directed acyclic graph of its layer calls, in topological order. Built from
// symbolic tensors (the Functional API) or as a chain (Sequential). Nothing here runs a layer; the
// executor (engine/executor.hpp) does.
#pragma once
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../layers/fast_paths.hpp"
#include "keras_tensor.hpp"

namespace keras::engine {

/// One layer call: its layer, its producers, its output shape, and the layer's optional fast
/// paths (layers/fast_paths.hpp), found once here.
template <class T>
struct Node {
  std::shared_ptr<layers::Layer<T>> layer;
  std::vector<int> inputs;  ///< producer node indices (in topological order, always < own index)
  int consumers = 0;        ///< number of input edges that read this node (+1 per model output)
  Shape shape;
  int input_index = -1;     ///< >= 0 for the model's inputs
  // optional interfaces of the layer (nullptr/false when it does not implement them)
  bool reentrant = false;
  layers::InferenceKernel<T>* kernel = nullptr;
  layers::FusableConv<T>* conv = nullptr;
  layers::FusableTrainingConv<T>* train_conv = nullptr;
  layers::AffineInference<T>* affine = nullptr;
  layers::ClampActivation<T>* clamp = nullptr;
  bool elementwise_sum = false;
  layers::LogitsOutput<T>* logits = nullptr;
};

template <class T>
class Topology {
 public:
  Topology() = default;
  /// The graph between symbolic inputs and outputs; throws if an output depends on an input that
  /// is not listed ("graph disconnected"), or if two distinct layers share a name (Keras's check:
  /// saved models refer to layers by name).
  Topology(const std::vector<KerasTensor<T>>& inputs, const std::vector<KerasTensor<T>>& outputs) {
    std::unordered_map<const SymbolicNode<T>*, int> index;
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      auto* sn = inputs[k].node().get();
      if (!dynamic_cast<layers::InputLayer<T>*>(sn->layer.get()))
        throw ValueError("Model inputs must come from keras::Input(); got the output of layer '" + sn->layer->name() + "'");
      index[sn] = add_node(sn->layer, {}, sn->shape, static_cast<int>(k));
    }
    std::unordered_set<const SymbolicNode<T>*> visiting;
    std::function<int(const KerasTensor<T>&)> visit = [&](const KerasTensor<T>& t) -> int {
      auto* sn = t.node().get();
      if (auto it = index.find(sn); it != index.end()) return it->second;
      if (dynamic_cast<layers::InputLayer<T>*>(sn->layer.get()))
        throw ValueError("Graph disconnected: cannot obtain value for input '" + sn->layer->name() +
                         "': it is not among the model's inputs");
      if (!visiting.insert(sn).second) throw ValueError("the layer graph has a cycle at '" + sn->layer->name() + "'");
      std::vector<int> ins;
      for (auto& x : sn->inputs) ins.push_back(visit(x));
      int id = add_node(sn->layer, ins, sn->shape, -1);
      index[sn] = id;
      return id;
    };
    for (auto& o : outputs) outputs_.push_back(visit(o));
    for (std::size_t k = 0; k < inputs.size(); ++k) inputs_.push_back(index.at(inputs[k].node().get()));
    for (int o : outputs_) nodes_[o].consumers++;  // the loss reads outputs too
    check_unique_names();
  }

  /// A chain: input -> layers[0] -> layers[1] -> ... (Sequential).
  static Topology chain(std::shared_ptr<layers::InputLayer<T>> input, const std::vector<std::shared_ptr<layers::Layer<T>>>& ls) {
    Topology g;
    int prev = g.add_node(input, {}, input->batch_input_shape(), 0);
    g.inputs_.push_back(prev);
    Shape shape = input->batch_input_shape();
    for (auto& l : ls) {
      l->build(std::vector<Shape>{shape});
      shape = l->compute_output_shape({shape});
      prev = g.add_node(l, {prev}, shape, -1);
    }
    g.outputs_.push_back(prev);
    g.nodes_[prev].consumers++;
    return g;
  }

  const std::vector<Node<T>>& nodes() const { return nodes_; }
  const std::vector<int>& inputs() const { return inputs_; }
  const std::vector<int>& outputs() const { return outputs_; }
  bool empty() const { return nodes_.empty(); }

  /// Distinct layers in topological order (InputLayers included), like Functional.layers.
  std::vector<std::shared_ptr<layers::Layer<T>>> layers() const {
    std::vector<std::shared_ptr<layers::Layer<T>>> r;
    std::unordered_set<layers::Layer<T>*> seen;
    for (auto& n : nodes_)
      if (seen.insert(n.layer.get()).second) r.push_back(n.layer);
    return r;
  }

  /// The frozen leading part of a single-input graph: the last node k such that every node up to
  /// k has no trainable variables and is cacheable, and every later node reads only nodes >= k.
  /// Nodes after k then depend on the input only through node k. Returns -1 if there is none.
  int frozen_prefix_end() const {
    if (inputs_.size() != 1 || outputs_.size() != 1) return -1;
    int best = -1;
    for (int k = 0; k < static_cast<int>(nodes_.size()); ++k) {
      auto& nd = nodes_[k];
      if (nd.input_index < 0 && (!nd.layer->trainable_variables().empty() || !nd.layer->cacheable())) break;
      if (k == outputs_[0]) break;
      bool cut = nd.input_index < 0;
      for (std::size_t i = k + 1; cut && i < nodes_.size(); ++i)
        for (int j : nodes_[i].inputs)
          if (j < k) cut = false;
      if (cut) best = k;
    }
    return best;
  }

 private:
  std::vector<Node<T>> nodes_;
  std::vector<int> inputs_, outputs_;

  void check_unique_names() const {
    std::unordered_map<std::string, int> count;
    std::vector<std::string> order;
    for (auto& l : layers())
      if (count[l->name()]++ == 0) order.push_back(l->name());
    for (auto& name : order)
      if (count[name] != 1)
        throw ValueError("The name \"" + name + "\" is used " + std::to_string(count[name]) +
                         " times in the model. All layer names should be unique.");
  }

  int add_node(std::shared_ptr<layers::Layer<T>> layer, std::vector<int> ins, Shape shape, int input_index) {
    for (int j : ins) nodes_[j].consumers++;
    Node<T> n;
    n.layer = std::move(layer);
    n.inputs = std::move(ins);
    n.shape = std::move(shape);
    n.input_index = input_index;
    layers::Layer<T>* l = n.layer.get();
    n.reentrant = dynamic_cast<layers::ReentrantInference*>(l) != nullptr;
    n.kernel = dynamic_cast<layers::InferenceKernel<T>*>(l);
    n.conv = dynamic_cast<layers::FusableConv<T>*>(l);
    n.train_conv = dynamic_cast<layers::FusableTrainingConv<T>*>(l);
    n.affine = dynamic_cast<layers::AffineInference<T>*>(l);
    n.clamp = dynamic_cast<layers::ClampActivation<T>*>(l);
    n.elementwise_sum = dynamic_cast<layers::ElementwiseSum*>(l) != nullptr;
    n.logits = dynamic_cast<layers::LogitsOutput<T>*>(l);
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }
};

}  // namespace keras::engine
