// The Functional API: keras::Input, symbolic KerasTensors, and the layer graph a Model runs.
#pragma once
#include <algorithm>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "../layers/input_layer.hpp"
#include "../layers/layer.hpp"

namespace keras {

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

template <class T>
KerasTensor<T> layers::Layer<T>::operator()(const KerasTensor<T>& x) & {
  return (*this)(std::vector<KerasTensor<T>>{x});
}
template <class T>
KerasTensor<T> layers::Layer<T>::operator()(const KerasTensor<T>& x) && {
  return std::move(*this)(std::vector<KerasTensor<T>>{x});
}
template <class T>
KerasTensor<T> layers::Layer<T>::operator()(const std::vector<KerasTensor<T>>& xs) & {
  auto self = this->weak_from_this().lock();
  if (!self)
    throw StateError("layer '" + name() +
                     "' is not owned by a std::shared_ptr: call it as a temporary (Dense(4)(x)) or create it with std::make_shared");
  return keras::detail::call_symbolic<T>(self, xs);
}
template <class T>
KerasTensor<T> layers::Layer<T>::operator()(const std::vector<KerasTensor<T>>& xs) && {
  auto self = this->weak_from_this().lock();
  return keras::detail::call_symbolic<T>(self ? self : this->move_to_shared(), xs);
}

/// A directed acyclic graph of layer calls, executed in topological order, with buffers that are
/// kept and reused between batches. Model and Sequential own one.
template <class T>
class Graph {
 public:
  struct Node {
    std::shared_ptr<layers::Layer<T>> layer;
    std::vector<int> inputs;  ///< producer node indices (in topological order, always < own index)
    int consumers = 0;        ///< number of input edges that read this node
    Shape shape;
    int input_index = -1;     ///< >= 0 for the model's inputs
  };

  Graph() = default;
  /// Builds the graph between symbolic inputs and outputs; throws if an output depends on an
  /// input that is not listed ("graph disconnected").
  Graph(const std::vector<KerasTensor<T>>& inputs, const std::vector<KerasTensor<T>>& outputs) {
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
  }

  /// A chain: input -> layers[0] -> layers[1] -> ... (Sequential).
  static Graph chain(std::shared_ptr<layers::InputLayer<T>> input, const std::vector<std::shared_ptr<layers::Layer<T>>>& ls) {
    Graph g;
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

  const std::vector<Node>& nodes() const { return nodes_; }
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

  /// Inference-mode fusion of conv -> [BatchNormalization] -> [ReLU] -> [Add] chains (on by
  /// default; training-mode forward passes never fuse). Off: every layer runs on its own.
  void set_fusion(bool on) { fusion_enabled_ = on; }
  bool fusion_enabled() const { return fusion_enabled_; }
  /// Number of fused chains the last forward pass ran.
  int fused_chains() const { return static_cast<int>(std::count(fused_now_.begin(), fused_now_.end(), char(1))); }

  /// Runs the graph. Input shapes are checked against the model's inputs.
  void forward(const std::vector<const Tensor<T>*>& inputs, bool training) {
    if (inputs.size() != inputs_.size())
      throw ShapeError("model expects " + std::to_string(inputs_.size()) + " input(s), got " + std::to_string(inputs.size()));
    buffers_.resize(nodes_.size());
    values_.assign(nodes_.size(), nullptr);
    fused_now_.assign(nodes_.size(), 0);
    run(0, static_cast<int>(nodes_.size()) - 1, inputs, training);
  }
  const Tensor<T>& output(std::size_t k = 0) const { return *values_.at(outputs_.at(k)); }
  const Tensor<T>& value(int node) const { return *values_.at(node); }

  /// Back-propagates d(loss)/d(outputs). Layers add into their trainable variables' grads.
  /// input_grads[k] (nullptr = not needed) receives d(loss)/d(input k).
  void backward(const std::vector<const Tensor<T>*>& output_grads, const std::vector<Tensor<T>*>& input_grads) {
    const std::size_t n = nodes_.size();
    if (std::find(fused_now_.begin(), fused_now_.end(), char(1)) != fused_now_.end()) {
      // The last (inference) pass fused layers, so the intermediate values backward needs were
      // never stored: recompute them layer by layer (rare: gradients of an inference pass).
      int first = 0;
      while (first < static_cast<int>(n) && !values_[first]) ++first;
      std::vector<const Tensor<T>*> ins;
      for (int i : inputs_) ins.push_back(values_[i]);
      const bool was = fusion_enabled_;
      fusion_enabled_ = false;
      fused_now_.assign(n, 0);
      if (first == 0) run(0, static_cast<int>(n) - 1, ins, false);
      else run(first + 1, static_cast<int>(n) - 1, {}, false);
      fusion_enabled_ = was;
    }
    // Which nodes' gradients matter: those upstream of trainable variables or requested inputs.
    flows_.assign(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      auto& nd = nodes_[i];
      if (nd.input_index >= 0) {
        flows_[i] = nd.input_index < static_cast<int>(input_grads.size()) && input_grads[nd.input_index] != nullptr;
        continue;
      }
      bool f = nd.layer->needs_variable_grads();
      for (int j : nd.inputs) f = f || flows_[j];
      flows_[i] = f;
    }
    grads_.resize(n);
    has_grad_.assign(n, 0);
    for (std::size_t k = 0; k < outputs_.size(); ++k) {
      int o = outputs_[k];
      if (!output_grads.at(k) || !flows_[o]) continue;
      accumulate(o, *output_grads[k]);
    }
    std::vector<const Tensor<T>*> ins;
    std::vector<Tensor<T>*> dins;
    for (std::size_t ii = n; ii-- > 0;) {
      auto& nd = nodes_[ii];
      if (nd.input_index >= 0 || !flows_[ii] || !has_grad_[ii]) continue;
      ins.clear();
      dins.clear();
      scratch_.resize(std::max(scratch_.size(), nd.inputs.size()));
      for (std::size_t s = 0; s < nd.inputs.size(); ++s) {
        int j = nd.inputs[s];
        ins.push_back(values_[j]);
        if (!flows_[j]) dins.push_back(nullptr);
        else if (nodes_[j].consumers == 1) dins.push_back(&grads_[j]);
        else dins.push_back(&scratch_[s]);
      }
      nd.layer->backward(ins, *values_[ii], grads_[ii], dins);
      for (std::size_t s = 0; s < nd.inputs.size(); ++s) {
        int j = nd.inputs[s];
        if (!flows_[j]) continue;
        if (nodes_[j].consumers == 1) has_grad_[j] = 1;
        else accumulate(j, scratch_[s]);
      }
    }
    for (std::size_t k = 0; k < inputs_.size(); ++k) {
      if (k >= input_grads.size() || !input_grads[k]) continue;
      int i = inputs_[k];
      if (has_grad_[i]) *input_grads[k] = grads_[i];
      else {
        input_grads[k]->resize(values_[i]->shape());
        input_grads[k]->setZero();
      }
    }
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
  /// Runs nodes up to and including `last` (inference mode) and returns node `last`'s value.
  const Tensor<T>& forward_until(int last, const Tensor<T>& x) {
    buffers_.resize(nodes_.size());
    values_.assign(nodes_.size(), nullptr);
    fused_now_.assign(nodes_.size(), 0);
    run(0, last, {&x}, false);
    return *values_[last];
  }
  /// Runs the nodes after `first`, taking `value` as node `first`'s output.
  void forward_from(int first, const Tensor<T>& value, bool training) {
    buffers_.resize(nodes_.size());
    values_.assign(nodes_.size(), nullptr);
    fused_now_.assign(nodes_.size(), 0);
    values_[first] = &value;
    run(first + 1, static_cast<int>(nodes_.size()) - 1, {}, training);
  }

 private:
  std::vector<Node> nodes_;
  std::vector<int> inputs_, outputs_;
  std::vector<Tensor<T>> buffers_, grads_, scratch_;
  std::vector<const Tensor<T>*> values_;
  std::vector<char> flows_, has_grad_;

  /// A fused chain starting at a conv node: its epilogue and the nodes that alias its output.
  struct Chain {
    int end = -1;                 ///< last node of the chain (-1: no chain at this node)
    std::vector<int> members;     ///< the fused nodes after the conv, in order
    int bn = -1, relu = -1, add = -1, residual = -1;  ///< node indices (-1: absent)
    Tensor<T> scale, shift;
    ops::Epilogue<T> ep;
  };
  std::vector<Chain> chains_;     ///< per node (only conv nodes may hold a chain)
  std::vector<int> alias_of_;     ///< fused member -> its conv node; -1 otherwise
  bool planned_ = false, fusion_enabled_ = true;

  void plan_fusion() {
    planned_ = true;
    const int n = static_cast<int>(nodes_.size());
    chains_.assign(n, Chain{});
    alias_of_.assign(n, -1);
    std::vector<int> consumer(n, -1);  // the single consuming node, if exactly one
    std::vector<char> is_output(n, 0);
    for (int o : outputs_) is_output[o] = 1;
    for (int i = 0; i < n; ++i)
      for (int j : nodes_[i].inputs) consumer[j] = nodes_[j].consumers == 1 ? i : -2;
    auto next_of = [&](int cur) { return is_output[cur] || nodes_[cur].consumers != 1 ? -1 : consumer[cur]; };
    for (int c = 0; c < n; ++c) {
      if (nodes_[c].input_index >= 0 || !nodes_[c].layer->accepts_epilogue()) continue;
      Chain ch;
      int cur = c, nx = next_of(cur);
      T lo, hi;
      if (nx >= 0 && nodes_[nx].inputs.size() == 1 && nodes_[nx].layer->inference_affine(ch.scale, ch.shift)) {
        ch.bn = cur = nx;
        nx = next_of(cur);
      }
      if (nx >= 0 && nodes_[nx].inputs.size() == 1 && nodes_[nx].layer->clamp_range(lo, hi)) {
        ch.relu = cur = nx;
        nx = next_of(cur);
      }
      if (nx >= 0 && nodes_[nx].layer->class_name() == "Add" && nodes_[nx].inputs.size() == 2) {
        const int other = nodes_[nx].inputs[0] == cur ? nodes_[nx].inputs[1] : nodes_[nx].inputs[0];
        if (other < c && other != cur && nodes_[other].shape == nodes_[nx].shape) {
          ch.add = cur = nx;
          ch.residual = other;
        }
      }
      if (cur == c) continue;
      ch.end = cur;
      for (int m : {ch.bn, ch.relu, ch.add})
        if (m >= 0) {
          ch.members.push_back(m);
          alias_of_[m] = c;
        }
      chains_[c] = std::move(ch);
    }
  }

  /// Sets up node c's fused epilogue for this pass; false when the chain cannot be used here.
  bool prepare_chain(int c, int first, int last) {
    Chain& ch = chains_[c];
    if (ch.end < 0 || c < first || ch.end > last) return false;
    if (ch.residual >= 0 && !values_[ch.residual]) return false;
    ch.ep = ops::Epilogue<T>{};
    if (ch.bn >= 0) {
      if (!nodes_[ch.bn].layer->inference_affine(ch.scale, ch.shift)) return false;
      ch.ep.scale = ch.scale.data();
      ch.ep.shift = ch.shift.data();
    }
    if (ch.relu >= 0) {
      ch.ep.clamp = nodes_[ch.relu].layer->clamp_range(ch.ep.lo, ch.ep.hi);
      if (!ch.ep.clamp) return false;
    }
    if (ch.residual >= 0) ch.ep.residual = values_[ch.residual]->data();
    return true;
  }

  void run(int first, int last, const std::vector<const Tensor<T>*>& inputs, bool training) {
    const bool fuse = !training && fusion_enabled_;
    if (fuse && !planned_) plan_fusion();
    std::vector<const Tensor<T>*> ins;
    for (int i = first; i <= last; ++i) {
      auto& n = nodes_[i];
      if (fuse && alias_of_[i] >= 0 && values_[alias_of_[i]] == &buffers_[alias_of_[i]] && fused_now_[alias_of_[i]]) {
        values_[i] = values_[alias_of_[i]];  // computed by the conv's epilogue
        continue;
      }
      if (n.input_index >= 0) {
        const Tensor<T>* x = inputs.at(n.input_index);
        if (!shapes_compatible(x->shape(), n.shape))
          throw ShapeError("input '" + n.layer->name() + "': expected shape " + shape_str(n.shape) + ", got " + shape_str(x->shape()));
        values_[i] = x;
        continue;
      }
      ins.clear();
      for (int j : n.inputs) ins.push_back(values_[j]);
      const bool fused = fuse && prepare_chain(i, first, last);
      if (fused) n.layer->set_epilogue(&chains_[i].ep);
      try {
        n.layer->forward(ins, buffers_[i], training);
      } catch (...) {
        if (fused) n.layer->set_epilogue(nullptr);
        throw;
      }
      if (fused) n.layer->set_epilogue(nullptr);
      if (fuse) fused_now_[i] = fused;
      values_[i] = &buffers_[i];
    }
  }
  std::vector<char> fused_now_;  ///< per node: its last forward applied its chain's epilogue
  int add_node(std::shared_ptr<layers::Layer<T>> layer, std::vector<int> ins, Shape shape, int input_index) {
    for (int j : ins) nodes_[j].consumers++;
    nodes_.push_back(Node{std::move(layer), std::move(ins), 0, std::move(shape), input_index});
    return static_cast<int>(nodes_.size()) - 1;
  }
  void accumulate(int j, const Tensor<T>& g) {
    if (!has_grad_[j]) {
      grads_[j] = g;
      has_grad_[j] = 1;
    } else {
      if (grads_[j].shape() != g.shape())
        throw ShapeError("gradient shape mismatch at '" + nodes_[j].layer->name() + "': " + shape_str(grads_[j].shape()) +
                         " vs " + shape_str(g.shape()));
      grads_[j].array() += g.array();
    }
  }
};

}  // namespace keras
