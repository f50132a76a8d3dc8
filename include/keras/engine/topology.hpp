// What a model is: the directed acyclic graph of its layer calls, in topological order. Built from
// symbolic tensors (the Functional API) or as a chain (Sequential). Nothing here runs a layer; the
// executor (engine/executor.hpp) does.
#pragma once
#include <functional>
#include <memory>
#include <string>
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
  int input_index = -1;  ///< >= 0 for the model's inputs
  // optional interfaces of the layer (nullptr/false when it does not implement them)
  bool reentrant = false;
  layers::InferenceKernel<T>* kernel = nullptr;
  layers::FusableConv<T>* conv = nullptr;
  layers::FusableTrainingConv<T>* train_conv = nullptr;
  layers::ClampFusableTraining<T>* train_clamp = nullptr;
  layers::AffineInference<T>* affine = nullptr;
  layers::ClampActivation<T>* clamp = nullptr;
  bool elementwise_sum = false;
  layers::LogitsOutput<T>* logits = nullptr;
  layers::ZeroPaddingInference* zero_pad = nullptr;
};

template <class T>
class Topology;

/// A layer that is itself a graph (a nested Model). The engine may run its nodes in line
/// (Topology::inlined), e.g. so that fit()'s feature cache can cut inside it.
template <class T>
class NestedGraph {
 public:
  virtual ~NestedGraph() = default;
  virtual const Topology<T>& nested_topology() const = 0;
};

/// Where fit() can cut a graph for its frozen-feature cache (Topology::cache_plan).
struct CachePlan {
  int cut = -1;           ///< the last node of the frozen part, -1: none
  int augmentation = -1;  ///< a FiniteAugmentation node inside the frozen part, -1: none
  std::string why_not;    ///< when a random layer stops the frozen part early: which, and why
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
        throw ValueError("Model inputs must come from keras::Input(); got the output of layer '" + sn->layer->name() +
                         "'");
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
  static Topology chain(std::shared_ptr<layers::InputLayer<T>> input,
                        const std::vector<std::shared_ptr<layers::Layer<T>>>& ls) {
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
  int frozen_prefix_end() const { return cache_plan(false).cut; }

  /// frozen_prefix_end, where with_augmentation lets one frozen FiniteAugmentation layer (e.g.
  /// RandomFlip) into the frozen part: fit() then caches the part once per outcome.
  CachePlan cache_plan(bool with_augmentation = true) const {
    CachePlan plan;
    if (inputs_.size() != 1 || outputs_.size() != 1) return plan;
    int aug = -1, cut_before_aug = -1;
    for (int k = 0; k < static_cast<int>(nodes_.size()); ++k) {
      auto& nd = nodes_[k];
      if (nd.input_index < 0) {
        if (!nd.layer->trainable_variables().empty()) break;
        if (!nd.layer->cacheable()) {
          const bool finite = dynamic_cast<layers::FiniteAugmentation<T>*>(nd.layer.get()) != nullptr;
          if (!with_augmentation || !finite || aug >= 0) {
            plan.why_not =
                nd.layer->class_name() + " '" + nd.layer->name() + "' " +
                (finite ? "follows another random layer" : "is random in training with no finite set of outcomes");
            break;
          }
          aug = k;
          cut_before_aug = plan.cut;
        }
      }
      if (k == outputs_[0]) break;
      bool cut = nd.input_index < 0;
      for (std::size_t i = k + 1; cut && i < nodes_.size(); ++i)
        for (int j : nodes_[i].inputs)
          if (j < k) cut = false;
      if (cut) plan.cut = k;
    }
    plan.augmentation = aug >= 0 && aug <= plan.cut ? aug : -1;
    if (plan.augmentation >= 0 && plan.cut == aug) {  // caching the raw outcomes saves nothing
      plan.cut = cut_before_aug;
      plan.augmentation = -1;
    }
    if (plan.cut >= 0) plan.why_not.clear();
    return plan;
  }

  /// The same graph with each trainable nested model (NestedGraph) replaced by its own nodes, in
  /// line and recursively: the same layer objects, so training this graph trains them. Frozen
  /// nested models stay one node (cacheable whole) unless `all`.
  Topology inlined(bool all = false) const {
    Topology g;
    std::vector<int> map(nodes_.size());
    for (std::size_t k = 0; k < nodes_.size(); ++k) {
      auto& n = nodes_[k];
      std::vector<int> ins;
      for (int j : n.inputs) ins.push_back(map[j]);
      map[k] = n.input_index >= 0 ? g.add_node(n.layer, {}, n.shape, n.input_index) : g.splice(n, ins, all);
    }
    for (int i : inputs_) g.inputs_.push_back(map[i]);
    for (int o : outputs_) {
      g.outputs_.push_back(map[o]);
      g.nodes_[map[o]].consumers++;
    }
    return g;
  }
  /// Whether inlined(all) would differ from this graph.
  bool has_nested(bool all = false) const {
    for (auto& n : nodes_)
      if (inlinable(n, all)) return true;
    return false;
  }
  /// Whether node k is a cut of the graph: every later node reads only nodes >= k.
  bool is_cut(int k) const {
    if (k < 0 || k >= static_cast<int>(nodes_.size())) return false;
    for (std::size_t i = static_cast<std::size_t>(k) + 1; i < nodes_.size(); ++i)
      for (int j : nodes_[i].inputs)
        if (j < k) return false;
    return true;
  }
  /// The node of the layer with this name (the first call of it), -1 if none.
  int node_of(const std::string& layer_name) const {
    for (std::size_t k = 0; k < nodes_.size(); ++k)
      if (nodes_[k].layer->name() == layer_name) return static_cast<int>(k);
    return -1;
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

  static const NestedGraph<T>* inlinable(const Node<T>& n, bool all) {
    auto* sub = dynamic_cast<const NestedGraph<T>*>(n.layer.get());
    if (!sub || n.input_index >= 0 || (!all && !n.layer->trainable())) return nullptr;
    auto& t = sub->nested_topology();
    return t.outputs_.size() == 1 && t.inputs_.size() == n.inputs.size() ? sub : nullptr;
  }
  /// Adds node n of another graph reading `ins` (this graph's nodes); a nested model's nodes in line.
  int splice(const Node<T>& n, const std::vector<int>& ins, bool all) {
    const NestedGraph<T>* sub = inlinable(n, all);
    if (!sub) return add_node(n.layer, ins, n.shape, -1);
    auto& t = sub->nested_topology();
    std::vector<int> map(t.nodes_.size());
    for (std::size_t k = 0; k < t.nodes_.size(); ++k) {
      auto& m = t.nodes_[k];
      if (m.input_index >= 0) {
        map[k] = ins.at(static_cast<std::size_t>(m.input_index));
        continue;
      }
      std::vector<int> mi;
      for (int j : m.inputs) mi.push_back(map[j]);
      map[k] = splice(m, mi, all);
    }
    return map[t.outputs_[0]];
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
    n.train_clamp = dynamic_cast<layers::ClampFusableTraining<T>*>(l);
    n.affine = dynamic_cast<layers::AffineInference<T>*>(l);
    n.clamp = dynamic_cast<layers::ClampActivation<T>*>(l);
    n.elementwise_sum = dynamic_cast<layers::ElementwiseSum*>(l) != nullptr;
    n.logits = dynamic_cast<layers::LogitsOutput<T>*>(l);
    n.zero_pad = dynamic_cast<layers::ZeroPaddingInference*>(l);
    nodes_.push_back(std::move(n));
    return static_cast<int>(nodes_.size()) - 1;
  }
};

}  // namespace keras::engine
