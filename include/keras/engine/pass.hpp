// One forward pass over a range of nodes, in one of two ways:
//  - run_layers: every node into its own buffer with forward(training) (training passes, and
//    inference with fusion off); backward reads them all afterwards;
//  - run_fast: inference through the layers' fast paths (layers/fast_paths.hpp), fused chains and
//    the pooled buffers of a BufferPlan; only the sources and sinks stay readable.
#pragma once
#include <vector>

#include "plan.hpp"

namespace keras::engine {

/// What one forward pass writes: per node its value (its buffer, a model input or an aliased
/// conv output) and whether it ran with its chain's epilogue.
template <class T>
struct PassState {
  std::vector<Tensor<T>> buffers;  ///< per node (run_layers; sinks of sliced passes)
  std::vector<Tensor<T>> pool;     ///< per BufferPlan slot (run_fast)
  std::vector<const Tensor<T>*> values;
  std::vector<char> fused;
  std::vector<char> folded;           ///< per node: a zero padding its consumer read through (not computed)
  std::vector<ops::Epilogue<T>> eps;  ///< per chain head: this pass's epilogue
  std::vector<Tensor<T>> slice_inputs;
  Tensor<T> slice_value;
  /// Training passes with fused chains (engine/fusion.hpp): per node, the conv whose fused output
  /// it aliases (BN, ReLU members), else -1; per chain head, its last fused node, else -1.
  std::vector<int> train_member_of, train_end;
  ops::Conv2DWorkspace<T> conv_ws;            ///< the convolutions' workspace in a batch slice (sliced_runner.hpp)
  ops::detail::GemmPackBuffers<T> gemm_bufs;  ///< the GEMMs' packing buffers in a batch slice
  void reset(std::size_t n) {
    buffers.resize(n);
    eps.resize(n);
    values.assign(n, nullptr);
    fused.assign(n, 0);
    folded.assign(n, 0);
    train_member_of.assign(n, -1);
    train_end.assign(n, -1);
  }
};

template <class T>
const Tensor<T>* checked_input(const Node<T>& n, const Tensor<T>* x) {
  if (!shapes_compatible(x->shape(), n.shape))
    throw ShapeError("input '" + n.layer->name() + "': expected shape " + shape_str(n.shape) + ", got " +
                     shape_str(x->shape()));
  return x;
}

/// Nodes [first, last] into `st`, each with forward(training) into its own buffer. `train_fusion`
/// (training passes, refreshed with Fusion::refresh_training): conv -> frozen BN -> [ReLU] chains
/// run as one fused conv whose buffer the BN and ReLU nodes alias (their value is the chain's output),
/// and BN -> ReLU pairs as one BN whose buffer the ReLU aliases.
template <class T>
void run_layers(const Topology<T>& g, PassState<T>& st, int first, int last,
                const std::vector<const Tensor<T>*>& inputs, bool training, const Fusion<T>* train_fusion = nullptr) {
  std::vector<const Tensor<T>*> ins;
  for (int i = first; i <= last; ++i) {
    auto& n = g.nodes()[i];
    if (n.input_index >= 0) {
      st.values[i] = checked_input(n, inputs.at(n.input_index));
      continue;
    }
    if (st.train_member_of[i] >= 0) {
      st.values[i] = st.values[st.train_member_of[i]];
      continue;
    }
    ins.clear();
    for (int j : n.inputs) ins.push_back(st.values[j]);
    const Chain<T>* ch = training && train_fusion ? &train_fusion->chain(i) : nullptr;
    if (ch && ch->train_end >= 0 && ch->train_end <= last) {
      train_fusion->make_training_epilogue(i, st.eps[i]);
      if (ch->clamp_pair)
        n.train_clamp->forward_train_clamped(ins, st.buffers[i], st.eps[i].lo, st.eps[i].hi);
      else
        n.train_conv->forward_train_fused(ins, st.buffers[i], st.eps[i]);
      st.train_end[i] = ch->train_end;
      for (int m : {ch->bn, ch->relu})
        if (m >= 0 && m <= ch->train_end) st.train_member_of[m] = i;
    } else {
      n.layer->forward(ins, st.buffers[i], training);
    }
    st.values[i] = &st.buffers[i];
  }
}

/// Fast inference pass over nodes [first, last] (`plan` made for this range): fused chains,
/// inference kernels, pooled buffers.
template <class T>
void run_fast(const Topology<T>& g, const Fusion<T>& fusion, const BufferPlan& p, PassState<T>& st, int first, int last,
              const std::vector<const Tensor<T>*>& inputs) {
  if (static_cast<int>(st.pool.size()) < p.slots) st.pool.resize(static_cast<std::size_t>(p.slots));
  std::vector<const Tensor<T>*> ins;
  for (int i = first; i <= last; ++i) {
    auto& n = g.nodes()[i];
    if (n.input_index >= 0) {
      st.values[i] = checked_input(n, inputs.at(n.input_index));
      continue;
    }
    if (p.member_of[i] >= 0) {
      st.values[i] = st.values[p.member_of[i]];  // computed by the conv's epilogue
      continue;
    }
    st.folded[i] = p.folded[i];
    if (p.folded[i]) {
      st.values[i] = nullptr;  // its consumer reads through it
      continue;
    }
    ins.clear();
    for (int j : p.reads(g, i)) ins.push_back(st.values[j]);
    Tensor<T>& out = st.pool[static_cast<std::size_t>(p.slot[i])];
    if (i == p.logits_node) {
      n.logits->forward_logits(ins, out);
    } else if (p.fuse[i]) {
      fusion.make_epilogue(i, st.values, st.eps[i]);
      if (p.pad_of[i] >= 0)
        n.conv->forward_fused_padded(ins, out, st.eps[i], g.nodes()[p.pad_of[i]].zero_pad->zero_padding());
      else
        n.conv->forward_fused(ins, out, st.eps[i]);
    } else if (n.kernel) {
      n.kernel->forward_inference(ins, out);
    } else {
      n.layer->forward(ins, out, false);
    }
    st.fused[i] = p.fuse[i];
    st.values[i] = &out;
  }
}

}  // namespace keras::engine
