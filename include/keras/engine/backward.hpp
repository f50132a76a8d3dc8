// The backward pass: d(loss)/d(outputs) in, layer by layer in reverse topological order over the
// values of the last layer-by-layer pass. Only nodes upstream of trainable variables or of
// requested input gradients are visited; gradients of a tensor read by several nodes are summed.
#pragma once
#include <algorithm>
#include <vector>

#include "pass.hpp"

namespace keras::engine {

template <class T>
class Backprop {
 public:
  /// Layers add into their trainable variables' grads. input_grads[k] (nullptr = not needed)
  /// receives d(loss)/d(input k). `logits_node` >= 0: that output node's gradient is
  /// d(loss)/d(its logits) (layers::LogitsOutput::backward_logits).
  void run(const Topology<T>& g, const PassState<T>& st, const std::vector<const Tensor<T>*>& output_grads,
           const std::vector<Tensor<T>*>& input_grads, int logits_node = -1) {
    const auto& nodes = g.nodes();
    const std::size_t n = nodes.size();
    mark_flows(g, input_grads);
    grads_.resize(n);
    has_grad_.assign(n, 0);
    for (std::size_t k = 0; k < g.outputs().size(); ++k) {
      int o = g.outputs()[k];
      if (!output_grads.at(k) || !flows_[o]) continue;
      accumulate(g, o, *output_grads[k]);
    }
    std::vector<const Tensor<T>*> ins;
    std::vector<Tensor<T>*> dins;
    for (std::size_t ii = n; ii-- > 0;) {
      if (nodes[ii].input_index >= 0 || !flows_[ii] || !has_grad_[ii]) continue;
      // the last node of a fused training chain: the chain's conv back-propagates the whole chain
      const int head = st.train_member_of.size() == n ? st.train_member_of[ii] : -1;
      const bool chain = head >= 0 && st.train_end[head] == static_cast<int>(ii);
      if (head >= 0 && !chain) continue;  // a chain's inner node: done by the chain's end
      auto& nd = nodes[chain ? head : ii];
      ins.clear();
      dins.clear();
      scratch_.resize(std::max(scratch_.size(), nd.inputs.size()));
      for (std::size_t s = 0; s < nd.inputs.size(); ++s) {
        int j = nd.inputs[s];
        ins.push_back(st.values[j]);
        if (!flows_[j])
          dins.push_back(nullptr);
        else if (nodes[j].consumers == 1)
          dins.push_back(&grads_[j]);
        else
          dins.push_back(&scratch_[s]);
      }
      if (chain && nd.train_clamp && !nd.train_conv)  // a BN -> ReLU pair
        nd.train_clamp->backward_train_clamped(ins, *st.values[ii], grads_[ii], st.eps[head].lo, st.eps[head].hi, dins);
      else if (chain)
        nd.train_conv->backward_train_fused(ins, *st.values[ii], grads_[ii], st.eps[head], dins);
      else if (static_cast<int>(ii) == logits_node)
        nd.logits->backward_logits(ins, grads_[ii], dins);
      else
        nd.layer->backward(ins, *st.values[ii], grads_[ii], dins);
      for (std::size_t s = 0; s < nd.inputs.size(); ++s) {
        int j = nd.inputs[s];
        if (!flows_[j]) continue;
        if (nodes[j].consumers == 1)
          has_grad_[j] = 1;
        else
          accumulate(g, j, scratch_[s]);
      }
    }
    for (std::size_t k = 0; k < g.inputs().size(); ++k) {
      if (k >= input_grads.size() || !input_grads[k]) continue;
      int i = g.inputs()[k];
      if (has_grad_[i])
        *input_grads[k] = grads_[i];
      else {
        input_grads[k]->resize(st.values[i]->shape());
        input_grads[k]->setZero();
      }
    }
  }

 private:
  std::vector<Tensor<T>> grads_, scratch_;
  std::vector<char> flows_, has_grad_;

  /// Which nodes' gradients matter: those upstream of trainable variables or requested inputs.
  void mark_flows(const Topology<T>& g, const std::vector<Tensor<T>*>& input_grads) {
    const auto& nodes = g.nodes();
    flows_.assign(nodes.size(), 0);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      auto& nd = nodes[i];
      if (nd.input_index >= 0) {
        flows_[i] = nd.input_index < static_cast<int>(input_grads.size()) && input_grads[nd.input_index] != nullptr;
        continue;
      }
      bool f = nd.layer->needs_variable_grads();
      for (int j : nd.inputs) f = f || flows_[j];
      flows_[i] = f;
    }
  }
  void accumulate(const Topology<T>& g, int j, const Tensor<T>& grad) {
    if (!has_grad_[j]) {
      grads_[j] = grad;
      has_grad_[j] = 1;
    } else {
      if (grads_[j].shape() != grad.shape())
        throw ShapeError("gradient shape mismatch at '" + g.nodes()[j].layer->name() +
                         "': " + shape_str(grads_[j].shape()) + " vs " + shape_str(grad.shape()));
      grads_[j].array() += grad.array();
    }
  }
};

}  // namespace keras::engine
