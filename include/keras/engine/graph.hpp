// engine::Graph: a model's topology and the executor that runs it, with buffers that are kept
// and reused between batches. Model and Sequential own one.
//
// Inference passes (training == false) take the fast path unless set_fusion(false):
//  - conv -> [BatchNormalization] -> [ReLU] -> [Add] chains run fused (engine/fusion.hpp);
//  - intermediate values share pooled buffers (engine/plan.hpp);
//  - when every layer is reentrant and the batch has more samples than one slice, threads run the
//    whole graph on batch slices (engine/sliced_runner.hpp).
// Training passes run layer by layer (engine/pass.hpp), each layer's kernels using all threads,
// and keep every value for the backward pass (engine/backward.hpp); conv -> frozen BN -> [ReLU]
// chains run fused there too (set_training_fusion).
#pragma once
#include <algorithm>
#include <vector>

#include "backward.hpp"
#include "sliced_runner.hpp"

namespace keras::engine {

template <class T>
class Graph {
 public:
  using Node = engine::Node<T>;

  Graph() = default;
  Graph(const std::vector<KerasTensor<T>>& inputs, const std::vector<KerasTensor<T>>& outputs)
      : topo_(inputs, outputs) {}
  explicit Graph(Topology<T> topo) : topo_(std::move(topo)) {}
  /// A chain: input -> layers[0] -> layers[1] -> ... (Sequential).
  static Graph chain(std::shared_ptr<layers::InputLayer<T>> input,
                     const std::vector<std::shared_ptr<layers::Layer<T>>>& ls) {
    return Graph(Topology<T>::chain(std::move(input), ls));
  }

  // ---- topology ----------------------------------------------------------------------------
  const Topology<T>& topology() const { return topo_; }
  const std::vector<Node>& nodes() const { return topo_.nodes(); }
  const std::vector<int>& inputs() const { return topo_.inputs(); }
  const std::vector<int>& outputs() const { return topo_.outputs(); }
  bool empty() const { return topo_.empty(); }
  std::vector<std::shared_ptr<layers::Layer<T>>> layers() const { return topo_.layers(); }
  int frozen_prefix_end() const { return topo_.frozen_prefix_end(); }
  /// Where fit()'s feature cache can cut this graph (Topology::cache_plan).
  CachePlan cache_plan() const { return topo_.cache_plan(); }

  // ---- options -----------------------------------------------------------------------------
  /// Inference-mode fast path (fusion, pooled buffers, batch slicing): on by default; training
  /// passes never use it. Off: every layer runs forward() into its own buffer.
  void set_fusion(bool on) { fusion_enabled_ = on; }
  bool fusion_enabled() const { return fusion_enabled_; }
  /// Training passes fuse conv -> frozen BatchNormalization -> [ReLU] chains (engine/fusion.hpp):
  /// on by default. Off: every layer runs forward(training) and backward on its own. The fused
  /// BN/ReLU nodes' value() is then the chain's output.
  void set_training_fusion(bool on) { train_fusion_enabled_ = on; }
  bool training_fusion() const { return train_fusion_enabled_; }
  /// Samples per thread slice in fast inference passes (0: automatic). A value >= the batch size
  /// switches slicing off.
  void set_inference_slice(Index samples) { slice_ = samples; }
  Index inference_slice() const { return slice_; }
  /// Number of fused chains the last forward pass ran (per slice, when it was sliced).
  int fused_chains() const { return static_cast<int>(std::count(main_.fused.begin(), main_.fused.end(), char(1))); }
  /// Number of zero paddings the last forward pass folded into the convolution after them.
  int folded_paddings() const {
    return static_cast<int>(std::count(main_.folded.begin(), main_.folded.end(), char(1)));
  }
  /// Number of conv -> frozen BN -> [ReLU] chains the last training pass ran fused.
  int fused_training_chains() const {
    return static_cast<int>(
        std::count_if(main_.train_end.begin(), main_.train_end.end(), [](int e) { return e >= 0; }));
  }
  /// Whether the last forward pass was cut into batch slices over threads.
  bool last_pass_sliced() const { return sliced_; }

  // ---- execution ---------------------------------------------------------------------------
  /// Runs the graph. Input shapes are checked against the model's inputs. logits: also keep the
  /// logits of the output (see output_logits()).
  void forward(const std::vector<const Tensor<T>*>& inputs, bool training, bool logits = false) {
    if (inputs.size() != topo_.inputs().size())
      throw ShapeError("model expects " + std::to_string(topo_.inputs().size()) + " input(s), got " +
                       std::to_string(inputs.size()));
    pass(0, static_cast<int>(topo_.nodes().size()) - 1, inputs, -1, nullptr, topo_.outputs(), training, logits);
  }
  const Tensor<T>& output(std::size_t k = 0) const { return *main_.values.at(topo_.outputs().at(k)); }
  /// The output node when it is softmax(z) or sigmoid(z) of logits it computes (a single output
  /// read by nothing else, whose layer is layers::LogitsOutput), else -1.
  int logits_output() const {
    if (topo_.outputs().size() != 1) return -1;
    const int o = topo_.outputs()[0];
    const auto& nd = topo_.nodes()[o];
    if (nd.input_index >= 0 || !nd.logits || nd.consumers != 1) return -1;
    return nd.logits->logits_activation() == keras::Activation::Linear ? -1 : o;
  }
  /// The output's logits after a pass run with logits = true on a graph with logits_output() >= 0
  /// (nullptr otherwise); output() is then the activation of them.
  const Tensor<T>* output_logits() const { return logits_; }
  /// A node's value after the last pass. A fast inference pass keeps only the inputs and the
  /// outputs (it reuses the other buffers); a training pass keeps every value.
  const Tensor<T>& value(int node) const {
    const Tensor<T>* v = main_.values.at(node);
    if (!v)
      throw StateError("Graph::value: node '" + topo_.nodes().at(node).layer->name() +
                       "' was not kept by the last pass");
    return *v;
  }
  /// Runs nodes up to and including `last` (inference mode) and returns node `last`'s value.
  const Tensor<T>& forward_until(int last, const Tensor<T>& x) {
    pass(0, last, {&x}, -1, nullptr, {last}, false);
    return *main_.values[last];
  }
  /// Inference from node `first` (taking `value` as its output) to node `last`; returns its value.
  const Tensor<T>& forward_between(int first, int last, const Tensor<T>& value) {
    pass(first + 1, last, {}, first, &value, {last}, false);
    return *main_.values[last];
  }
  /// Runs the nodes after `first`, taking `value` as node `first`'s output.
  void forward_from(int first, const Tensor<T>& value, bool training, bool logits = false) {
    pass(first + 1, static_cast<int>(topo_.nodes().size()) - 1, {}, first, &value, topo_.outputs(), training, logits);
  }

  /// Back-propagates d(loss)/d(outputs). Layers add into their trainable variables' grads.
  /// input_grads[k] (nullptr = not needed) receives d(loss)/d(input k).
  void backward(const std::vector<const Tensor<T>*>& output_grads, const std::vector<Tensor<T>*>& input_grads) {
    PassScope spin;
    if (fast_pass_) recompute_values();
    backprop_.run(topo_, main_, output_grads, input_grads);
  }
  /// Back-propagates d(loss)/d(output logits) after a pass that kept them (output_logits()).
  void backward_from_logits(const Tensor<T>& dlogits) {
    if (logits_node_ < 0) throw StateError("Graph::backward_from_logits: the last pass kept no output logits");
    const int node = logits_node_;
    PassScope spin;
    if (fast_pass_) recompute_values();
    backprop_.run(topo_, main_, {&dlogits}, {}, node);
  }

 private:
  Topology<T> topo_;
  Fusion<T> fusion_;
  BufferPlan plan_;
  PassState<T> main_;  ///< the pass's values (all of them, or only sources and sinks)
  SlicedRunner<T> sliced_runner_;
  Backprop<T> backprop_;
  bool fusion_enabled_ = true;
  bool train_fusion_enabled_ = true;
  bool fast_pass_ = false;  ///< the last pass took the fast inference path
  bool sliced_ = false;
  Index slice_ = 0;
  int logits_node_ = -1;               ///< the output node whose logits the last pass kept
  const Tensor<T>* logits_ = nullptr;  ///< those logits
  Tensor<T> probs_;                    ///< its activation, when a fast pass computed the logits only

  void begin_pass(bool training) {
    main_.reset(topo_.nodes().size());
    logits_node_ = -1;
    logits_ = nullptr;
    fast_pass_ = !training && fusion_enabled_;
    sliced_ = false;
    if (fast_pass_ || (training && train_fusion_enabled_)) {
      if (!fusion_.planned()) fusion_.plan(topo_);
      if (fast_pass_)
        fusion_.refresh(topo_);
      else
        fusion_.refresh_training(topo_);
    }
  }

  /// One pass over nodes [first, last]: sources are the model inputs (first == 0) or the value of
  /// node `preset`; `sinks` are the values the caller reads afterwards.
  void pass(int first, int last, const std::vector<const Tensor<T>*>& inputs, int preset, const Tensor<T>* preset_value,
            const std::vector<int>& sinks, bool training, bool logits = false) {
    PassScope spin;  // the pool's workers wait spinning between this pass's parallel loops
    begin_pass(training);
    if (preset >= 0) main_.values[preset] = preset_value;
    const int ln = logits ? logits_output() : -1;
    const bool want = ln >= first && ln <= last;
    if (!fast_pass_) {
      run_layers(topo_, main_, first, last, inputs, training, training && train_fusion_enabled_ ? &fusion_ : nullptr);
      if (want) keep_layer_logits(ln);
      return;
    }
    plan_.make(topo_, fusion_, first, last, preset, sinks);
    if (want) plan_.logits_node = ln;
    if (sliced_runner_.run(topo_, fusion_, plan_, main_, slice_, first, last, inputs, preset, preset_value, sinks)) {
      sliced_ = true;
      if (want) activate_logits(ln);
      return;
    }
    run_fast(topo_, fusion_, plan_, main_, first, last, inputs);
    if (want) activate_logits(ln);
    // pooled buffers were reused: keep only what stays valid (sources and sinks)
    const auto& nodes = topo_.nodes();
    std::vector<char> keep(nodes.size(), 0);
    for (int k : sinks) keep[k] = 1;
    if (preset >= 0) keep[preset] = 1;
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (!keep[i] && nodes[i].input_index < 0) main_.values[i] = nullptr;
  }

  /// After a layer-by-layer pass: the output layer kept its logits.
  void keep_layer_logits(int ln) {
    std::vector<const Tensor<T>*> ins;
    for (int j : topo_.nodes()[ln].inputs) ins.push_back(main_.values[j]);
    logits_ = &topo_.nodes()[ln].logits->logits(ins);
    logits_node_ = ln;
  }
  /// After a fast pass that computed node ln as logits only: its value becomes their activation.
  void activate_logits(int ln) {
    logits_ = main_.values[ln];
    keras::activation_forward(topo_.nodes()[ln].logits->logits_activation(), *logits_, probs_);
    main_.values[ln] = &probs_;
    logits_node_ = ln;
  }

  /// The last pass was a fast inference pass: the intermediate values and the layers' saved
  /// state that backward needs do not exist. Recompute them layer by layer in inference mode
  /// (rare: gradients of an inference pass), from the first value the pass kept.
  void recompute_values() {
    const int n = static_cast<int>(topo_.nodes().size());
    int first = 0;
    while (first < n && !main_.values[first]) ++first;
    std::vector<const Tensor<T>*> ins;
    for (int i : topo_.inputs()) ins.push_back(main_.values[i]);
    const Tensor<T>* preset = first < n ? main_.values[first] : nullptr;
    const bool was = fusion_enabled_;
    fusion_enabled_ = false;
    begin_pass(false);
    fusion_enabled_ = was;
    if (first == 0) {
      run_layers(topo_, main_, 0, n - 1, ins, false);
    } else {
      main_.values[first] = preset;
      run_layers(topo_, main_, first + 1, n - 1, {}, false);
    }
  }
};

}  // namespace keras::engine
