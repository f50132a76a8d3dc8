// The Functional API: keras::Input, symbolic KerasTensors, and the layer graph a Model runs.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
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
///
/// Inference passes (training == false) take the fast path unless set_fusion(false):
///  - conv -> [BatchNormalization] -> [ReLU] -> [Add] chains run fused (the conv's epilogue);
///  - when every layer is reentrant_inference() and the batch has more samples than one slice, the
///    batch is cut into slices of a few samples and each thread runs the whole graph on its own
///    slices with single-threaded kernels (no synchronisation between layers, activations that
///    stay in cache; on one thread the slices simply run in turn). Only the requested outputs are
///    assembled at full batch size.
/// Training passes run layer by layer, each layer's kernels using all threads.
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

  /// Inference-mode fast path (fusion and batch slicing, see the class comment): on by default;
  /// training-mode forward passes never use it. Off: every layer runs forward() on its own.
  void set_fusion(bool on) { fusion_enabled_ = on; }
  bool fusion_enabled() const { return fusion_enabled_; }
  /// Samples per thread slice in fast inference passes (0: automatic). A value >= the batch size
  /// switches slicing off.
  void set_inference_slice(Index samples) { slice_ = samples; }
  Index inference_slice() const { return slice_; }
  /// Number of fused chains the last forward pass ran (per slice, when it was sliced).
  int fused_chains() const { return static_cast<int>(std::count(main_.fused.begin(), main_.fused.end(), char(1))); }
  /// Whether the last forward pass was cut into batch slices over threads.
  bool last_pass_sliced() const { return sliced_; }

  /// Runs the graph. Input shapes are checked against the model's inputs.
  void forward(const std::vector<const Tensor<T>*>& inputs, bool training) {
    if (inputs.size() != inputs_.size())
      throw ShapeError("model expects " + std::to_string(inputs_.size()) + " input(s), got " + std::to_string(inputs.size()));
    pass(0, static_cast<int>(nodes_.size()) - 1, inputs, -1, nullptr, outputs_, training);
  }
  const Tensor<T>& output(std::size_t k = 0) const { return *main_.values.at(outputs_.at(k)); }
  /// A node's value after the last pass. A fast inference pass keeps only the inputs and the
  /// outputs (it reuses the other buffers); a training pass keeps every value.
  const Tensor<T>& value(int node) const {
    const Tensor<T>* v = main_.values.at(node);
    if (!v) throw StateError("Graph::value: node '" + nodes_.at(node).layer->name() + "' was not kept by the last pass");
    return *v;
  }

  /// Back-propagates d(loss)/d(outputs). Layers add into their trainable variables' grads.
  /// input_grads[k] (nullptr = not needed) receives d(loss)/d(input k).
  void backward(const std::vector<const Tensor<T>*>& output_grads, const std::vector<Tensor<T>*>& input_grads) {
    const std::size_t n = nodes_.size();
    if (fast_pass_) {
      // The last pass was a fast inference pass (fused and/or sliced): the intermediate values
      // and the layers' saved state that backward needs do not exist. Recompute them layer by
      // layer in inference mode (rare: gradients of an inference pass).
      int first = 0;
      while (first < static_cast<int>(n) && !main_.values[first]) ++first;
      std::vector<const Tensor<T>*> ins;
      for (int i : inputs_) ins.push_back(main_.values[i]);
      const Tensor<T>* preset = first < static_cast<int>(n) ? main_.values[first] : nullptr;
      const bool was = fusion_enabled_;
      fusion_enabled_ = false;
      begin_pass(false);
      try {
        if (first == 0) {
          run(main_, 0, static_cast<int>(n) - 1, ins, false);
        } else {
          main_.values[first] = preset;
          run(main_, first + 1, static_cast<int>(n) - 1, {}, false);
        }
      } catch (...) {
        fusion_enabled_ = was;
        throw;
      }
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
        ins.push_back(main_.values[j]);
        if (!flows_[j]) dins.push_back(nullptr);
        else if (nodes_[j].consumers == 1) dins.push_back(&grads_[j]);
        else dins.push_back(&scratch_[s]);
      }
      nd.layer->backward(ins, *main_.values[ii], grads_[ii], dins);
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
        input_grads[k]->resize(main_.values[i]->shape());
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
    pass(0, last, {&x}, -1, nullptr, {last}, false);
    return *main_.values[last];
  }
  /// Runs the nodes after `first`, taking `value` as node `first`'s output.
  void forward_from(int first, const Tensor<T>& value, bool training) {
    pass(first + 1, static_cast<int>(nodes_.size()) - 1, {}, first, &value, outputs_, training);
  }

 private:
  std::vector<Node> nodes_;
  std::vector<int> inputs_, outputs_;
  std::vector<Tensor<T>> grads_, scratch_;
  std::vector<char> flows_, has_grad_;

  /// What one forward pass writes: per node its value (its buffer, a model input or an aliased
  /// conv output) and whether it ran with its chain's epilogue. Training passes give every node its
  /// own buffer (backward reads them all); fast inference passes share a few pooled buffers
  /// (Plan::slot), so a slice's working set stays small and cache-hot.
  struct State {
    std::vector<Tensor<T>> buffers;  ///< per node (training and unfused passes)
    std::vector<Tensor<T>> pool;     ///< per Plan slot (fast inference passes)
    std::vector<const Tensor<T>*> values;
    std::vector<char> fused;
    std::vector<ops::Epilogue<T>> eps;  ///< per chain head: this pass's epilogue
    std::vector<Tensor<T>> slice_inputs;
    Tensor<T> slice_value;
    void reset(std::size_t n) {
      buffers.resize(n);
      eps.resize(n);
      values.assign(n, nullptr);
      fused.assign(n, 0);
    }
  };
  State main_;                 ///< the pass's values (all of them, or only the outputs when sliced)
  std::vector<State> slices_;  ///< per thread, for sliced inference passes
  bool fast_pass_ = false;     ///< the last pass used forward_inference (fused and/or sliced)
  bool sliced_ = false;
  Index slice_ = 0;

  void begin_pass(bool training) {
    main_.reset(nodes_.size());
    fast_pass_ = !training && fusion_enabled_;
    sliced_ = false;
    if (fast_pass_) {
      if (!planned_) plan_fusion();
      refresh_chains();
    }
  }

  /// One pass over nodes [first, last]: sources are the model inputs (first == 0) or the value of
  /// node `preset`; `sinks` are the values the caller reads afterwards.
  void pass(int first, int last, const std::vector<const Tensor<T>*>& inputs, int preset, const Tensor<T>* preset_value,
            const std::vector<int>& sinks, bool training) {
    begin_pass(training);
    if (preset >= 0) main_.values[preset] = preset_value;
    if (!fast_pass_) {
      run(main_, first, last, inputs, training);
      return;
    }
    make_plan(first, last, preset, sinks);
    if (run_sliced(first, last, inputs, preset, preset_value, sinks)) return;
    run_fast(main_, first, last, inputs);
    // pooled buffers were reused: keep only what stays valid (sources and sinks)
    std::vector<char> keep(nodes_.size(), 0);
    for (int k : sinks) keep[k] = 1;
    if (preset >= 0) keep[preset] = 1;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (!keep[i] && nodes_[i].input_index < 0) main_.values[i] = nullptr;
  }

  /// Buffer plan of a fast inference pass: which chains fuse, which nodes alias a fused conv, and
  /// the pooled buffer (slot) each computed node writes. A slot is released after the last node
  /// that reads it and reused (most recently released first); sinks keep theirs.
  struct Plan {
    std::vector<char> fuse;      ///< per node: the chain headed here runs fused
    std::vector<int> member_of;  ///< per node: the fused conv computing it, or -1
    std::vector<int> slot;       ///< per node: pooled buffer, or -1 (source, member, outside)
    int slots = 0;
  };
  Plan plan_;

  void make_plan(int first, int last, int preset, const std::vector<int>& sinks) {
    const int n = static_cast<int>(nodes_.size());
    Plan& p = plan_;
    p.fuse.assign(n, 0);
    p.member_of.assign(n, -1);
    p.slot.assign(n, -1);
    p.slots = 0;
    for (int c = first; c <= last; ++c) {
      const Chain& ch = chains_[c];
      if (ch.end < 0 || !ch.ok || ch.end > last) continue;
      if (ch.residual >= 0 && ch.residual < first && ch.residual != preset) continue;  // no value in this pass
      p.fuse[c] = 1;
      for (int m : ch.members) p.member_of[m] = c;
    }
    auto owner = [&](int v) { return p.member_of[v] >= 0 ? p.member_of[v] : v; };
    auto computed = [&](int v) { return v >= first && v <= last && nodes_[v].input_index < 0; };
    std::vector<int> end(n, -1);  // time (node index) of the last read of each owner's buffer
    for (int u = first; u <= last; ++u) {
      if (!computed(u)) continue;
      const int t = owner(u);
      for (int j : nodes_[u].inputs) end[owner(j)] = std::max(end[owner(j)], t);
    }
    for (int k : sinks) end[owner(k)] = std::numeric_limits<int>::max();
    std::vector<std::vector<int>> release(n);
    for (int v = first; v <= last; ++v)
      if (computed(v) && p.member_of[v] < 0 && end[v] != std::numeric_limits<int>::max())
        release[std::max(end[v], v)].push_back(v);
    std::vector<int> free_slots;
    for (int i = first; i <= last; ++i) {
      if (!computed(i) || p.member_of[i] >= 0) continue;
      if (free_slots.empty()) {
        p.slot[i] = p.slots++;
      } else {
        p.slot[i] = free_slots.back();
        free_slots.pop_back();
      }
      for (int v : release[i]) free_slots.push_back(p.slot[v]);
    }
  }

  /// A fused chain starting at a conv node: the nodes that alias its output and their parameters.
  struct Chain {
    int end = -1;                 ///< last node of the chain (-1: no chain at this node)
    std::vector<int> members;     ///< the fused nodes after the conv, in order
    int bn = -1, relu = -1, add = -1, residual = -1;  ///< node indices (-1: absent)
    Tensor<T> scale, shift;       ///< the BN's inference affine, refreshed every pass
    T lo = T(0), hi = T(0);       ///< the ReLU's clamp range
    bool ok = false;              ///< usable in this pass
  };
  std::vector<Chain> chains_;     ///< per node (only conv nodes may hold a chain)
  bool planned_ = false, fusion_enabled_ = true;

  void plan_fusion() {
    planned_ = true;
    const int n = static_cast<int>(nodes_.size());
    chains_.assign(n, Chain{});
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
        if (m >= 0) ch.members.push_back(m);
      chains_[c] = std::move(ch);
    }
  }

  /// Recomputes every chain's BN affine and ReLU range (weights may have changed since the last
  /// pass). Runs on the calling thread before any slice starts; slices only read the chains.
  void refresh_chains() {
    for (auto& ch : chains_) {
      if (ch.end < 0) continue;
      ch.ok = true;
      if (ch.bn >= 0) ch.ok = nodes_[ch.bn].layer->inference_affine(ch.scale, ch.shift);
      if (ch.ok && ch.relu >= 0) ch.ok = nodes_[ch.relu].layer->clamp_range(ch.lo, ch.hi);
    }
  }

  /// Node c's fused epilogue for this pass, in `st` (the residual is the slice's own value).
  const ops::Epilogue<T>* make_epilogue(State& st, int c) {
    const Chain& ch = chains_[c];
    ops::Epilogue<T>& ep = st.eps[c];
    ep = ops::Epilogue<T>{};
    if (ch.bn >= 0) {
      ep.scale = ch.scale.data();
      ep.shift = ch.shift.data();
    }
    if (ch.relu >= 0) {
      ep.clamp = true;
      ep.lo = ch.lo;
      ep.hi = ch.hi;
    }
    if (ch.residual >= 0) ep.residual = st.values[ch.residual]->data();
    return &ep;
  }

  /// Training or unfused pass: nodes [first, last] into `st`, each into its own buffer.
  void run(State& st, int first, int last, const std::vector<const Tensor<T>*>& inputs, bool training) {
    std::vector<const Tensor<T>*> ins;
    for (int i = first; i <= last; ++i) {
      auto& n = nodes_[i];
      if (n.input_index >= 0) {
        st.values[i] = checked_input(n, inputs.at(n.input_index));
        continue;
      }
      ins.clear();
      for (int j : n.inputs) ins.push_back(st.values[j]);
      n.layer->forward(ins, st.buffers[i], training);
      st.values[i] = &st.buffers[i];
    }
  }

  /// Fast inference pass (plan_ made for this range): forward_inference, fused chains, pooled
  /// buffers.
  void run_fast(State& st, int first, int last, const std::vector<const Tensor<T>*>& inputs) {
    const Plan& p = plan_;
    if (static_cast<int>(st.pool.size()) < p.slots) st.pool.resize(static_cast<std::size_t>(p.slots));
    std::vector<const Tensor<T>*> ins;
    for (int i = first; i <= last; ++i) {
      auto& n = nodes_[i];
      if (n.input_index >= 0) {
        st.values[i] = checked_input(n, inputs.at(n.input_index));
        continue;
      }
      if (p.member_of[i] >= 0) {
        st.values[i] = st.values[p.member_of[i]];  // computed by the conv's epilogue
        continue;
      }
      ins.clear();
      for (int j : n.inputs) ins.push_back(st.values[j]);
      Tensor<T>& out = st.pool[static_cast<std::size_t>(p.slot[i])];
      n.layer->forward_inference(ins, out, p.fuse[i] ? make_epilogue(st, i) : nullptr);
      st.fused[i] = p.fuse[i];
      st.values[i] = &out;
    }
  }

  static const Tensor<T>* checked_input(const Node& n, const Tensor<T>* x) {
    if (!shapes_compatible(x->shape(), n.shape))
      throw ShapeError("input '" + n.layer->name() + "': expected shape " + shape_str(n.shape) + ", got " + shape_str(x->shape()));
    return x;
  }

  /// Copies samples [s0, s1) of x into out.
  static void take_samples(const Tensor<T>& x, Index s0, Index s1, Tensor<T>& out) {
    Shape sh = x.shape();
    const Index per = sh[0] > 0 ? x.size() / sh[0] : 0;
    sh[0] = s1 - s0;
    out.resize(sh);
    if (per) std::memcpy(out.data(), x.data() + s0 * per, sizeof(T) * per * (s1 - s0));
  }

  /// Fast inference pass over nodes [first, last] cut into batch slices run by separate threads.
  /// Sources: the model inputs (first == 0) or the preset value of node `preset`. Assembles the
  /// `sinks` at full batch size in main_. Returns false (nothing done) when slicing does not apply.
  bool run_sliced(int first, int last, const std::vector<const Tensor<T>*>& inputs, int preset, const Tensor<T>* preset_value,
                  const std::vector<int>& sinks) {
    if (!fast_pass_ || in_parallel_region()) return false;  // plan_ is made for this range
    const int nt = get_num_threads();
    Index N = -1;  // every source must have the same batch size
    auto same_batch = [&](const Tensor<T>* t) -> bool {
      if (!t || t->rank() < 1) return false;
      if (N < 0) N = t->dim(0);
      return t->dim(0) == N;
    };
    if (preset >= 0 && !same_batch(preset_value)) return false;
    for (auto* x : inputs)
      if (!same_batch(x)) return false;
    if (N < 2) return false;
    for (int i = first; i <= last; ++i) {
      const auto& nd = nodes_[i];
      if (nd.input_index >= 0) {
        const Tensor<T>* x = inputs.at(nd.input_index);
        if (!shapes_compatible(x->shape(), nd.shape))
          throw ShapeError("input '" + nd.layer->name() + "': expected shape " + shape_str(nd.shape) + ", got " + shape_str(x->shape()));
        if (nd.shape.empty() || nd.shape[0] >= 0) return false;  // a fixed batch size
      } else if (!nd.layer->reentrant_inference()) {
        return false;
      }
    }
    const Index slice = slice_ > 0 ? slice_ : auto_slice(first, last, inputs, preset_value, N, nt);
    const Index nslices = (N + slice - 1) / slice;
    if (nslices < 2) return false;
    const int threads = static_cast<int>(std::min<Index>(nt, nslices));

    const std::size_t n = nodes_.size();
    slices_.resize(static_cast<std::size_t>(threads));
    for (auto& st : slices_) st.slice_inputs.resize(inputs.size());
    std::vector<char> sized(sinks.size(), 0), ran(static_cast<std::size_t>(threads), 0);
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex sink_mutex, error_mutex;
    // the slices are the chunks of kerascpp's pool (core/thread_pool.hpp); tid names the thread's State
    keras::parallel_chunks(nslices, threads, [&](Index k, int tid) {
      State& st = slices_[static_cast<std::size_t>(tid)];
      std::vector<const Tensor<T>*> ins;
      {
        if (failed.load()) return;
        try {
          const Index s0 = k * slice, s1 = std::min(N, s0 + slice);
          st.reset(n);
          ins.clear();
          for (std::size_t j = 0; j < inputs.size(); ++j) {
            take_samples(*inputs[j], s0, s1, st.slice_inputs[j]);
            ins.push_back(&st.slice_inputs[j]);
          }
          if (preset >= 0) {
            take_samples(*preset_value, s0, s1, st.slice_value);
            st.values[preset] = &st.slice_value;
          }
          run_fast(st, first, last, ins);
          ran[static_cast<std::size_t>(tid)] = 1;
          for (std::size_t q = 0; q < sinks.size(); ++q) {
            const int sk = sinks[q];
            if (sk == preset || nodes_[sk].input_index >= 0) continue;
            const Tensor<T>& v = *st.values[sk];
            Tensor<T>& full = main_.buffers[sk];
            {
              std::lock_guard<std::mutex> lock(sink_mutex);
              if (!sized[q]) {
                Shape sh = v.shape();
                sh.at(0) = N;
                full.resize(sh);
                sized[q] = 1;
              }
            }
            if (v.rank() != full.rank() || v.dim(0) != s1 - s0 || v.size() / (s1 - s0) != full.size() / N)
              throw ShapeError("layer '" + nodes_[sk].layer->name() + "': output " + shape_str(v.shape()) +
                               " of a batch slice does not match " + shape_str(full.shape()));
            const Index per = full.size() / N;
            if (per) std::memcpy(full.data() + s0 * per, v.data(), sizeof(T) * per * (s1 - s0));
          }
        } catch (...) {
          {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
          }
          failed.store(true);
        }
      }
    });
    if (error) std::rethrow_exception(error);
    if (first == 0)
      for (std::size_t k = 0; k < inputs_.size(); ++k) main_.values[inputs_[k]] = inputs.at(k);
    for (int sk : sinks)
      if (sk != preset && nodes_[sk].input_index < 0) main_.values[sk] = &main_.buffers[sk];
    for (int t = 0; t < threads; ++t)
      if (ran[static_cast<std::size_t>(t)]) {
        main_.fused = slices_[static_cast<std::size_t>(t)].fused;
        break;
      }
    sliced_ = true;
    return true;
  }
  /// Automatic slice: as many samples as keep the largest activation of one slice within
  /// kSliceBytes (so a layer's input and output stay in a core's L2 cache), at least 1, at most an
  /// even share of the batch per thread. MobileNetV2 at 192-224 px gets 1 sample per slice (best
  /// in bench_mobilenet: 1 > 2 > 4 > 8); small models get one slice per thread.
  Index auto_slice(int first, int last, const std::vector<const Tensor<T>*>& inputs, const Tensor<T>* preset_value, Index N,
                   int nt) const {
    double per_sample = 0;  // elements of the largest activation of one sample
    double src = 0;
    for (auto* x : inputs) src = std::max(src, double(x->size()) / double(N));
    if (preset_value) src = std::max(src, double(preset_value->size()) / double(N));
    for (int i = first; i <= last; ++i) {
      double e = 1;
      const Shape& sh = nodes_[i].shape;
      for (std::size_t d = 1; d < sh.size(); ++d) e *= sh[d] > 0 ? double(sh[d]) : -1.0;
      if (e < 0) e = 16 * src;  // unknown dimensions (dynamic image size): a generous guess
      per_sample = std::max(per_sample, e);
    }
    const double bytes = std::max(1.0, per_sample * sizeof(T));
    const Index fit = static_cast<Index>(std::max(1.0, kSliceBytes / bytes));
    return std::max<Index>(1, std::min<Index>(fit, (N + nt - 1) / nt));
  }
  static constexpr double kSliceBytes = 2.0 * 1024 * 1024;

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
