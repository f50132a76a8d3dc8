// Fusion of conv -> [BatchNormalization] -> [ReLU] -> [Add] chains in inference passes: the
// convolution applies the others as its epilogue (ops/epilogue.hpp) and the fused nodes alias its
// output. A zero padding read only by such a conv (ZeroPadding2D before a stride-2 depthwise) is
// folded into it: the conv reads the unpadded input and the padded copy is never written.
// Layers are recognised by the interfaces of layers/fast_paths.hpp, never by class name.
//
// Training passes fuse the conv -> frozen BatchNormalization -> [ReLU] part of a chain (the BN in
// inference mode with nothing to train, layers::AffineInference::affine_in_training; the conv a
// layers::FusableTrainingConv): forward, the conv writes clamp(conv * scale + shift) once; backward
// (engine/backward.hpp), the conv turns d(loss)/d(chain output) into d(loss)/d(conv output) in one
// pass (ops::epilogue_backward) instead of the ReLU's and the BN's backward passes.
// A BatchNormalization -> ReLU pair outside such a chain (batch statistics: the full network
// trained) runs as one layer in training (layers::ClampFusableTraining): the BN writes the clamped
// output and back-propagates through the clamp itself.
#pragma once
#include <vector>

#include "topology.hpp"

namespace keras::engine {

/// A fused chain starting at a conv node: the nodes that alias its output and their parameters.
template <class T>
struct Chain {
  int end = -1;                                     ///< last node of the chain (-1: no chain here)
  std::vector<int> members;                         ///< the fused nodes after the conv, in order
  int bn = -1, relu = -1, add = -1, residual = -1;  ///< node indices (-1: absent)
  int pad = -1;             ///< a zero padding before the conv that the conv reads through (-1: none)
  Tensor<T> scale, shift;   ///< the BN's inference affine, refreshed every pass
  T lo = T(0), hi = T(0);   ///< the ReLU's clamp range
  bool ok = false;          ///< usable in this pass
  int train_end = -1;       ///< last node of the training chain (conv -> frozen BN -> [ReLU]), -1: none this pass
  bool clamp_pair = false;  ///< a BN -> ReLU training pair at this (BN) node: relu, lo, hi (end stays -1)
};

/// The chains of one topology, found once (plan) and refreshed before every fast pass.
template <class T>
class Fusion {
 public:
  bool planned() const { return planned_; }
  const Chain<T>& chain(int node) const { return chains_[static_cast<std::size_t>(node)]; }

  /// Finds the chains: a conv that accepts an epilogue, then (each optional, each the single
  /// consumer of the previous and not a model output) an affine layer, a clamp, and a two-input
  /// element-wise sum whose other input comes from before the conv and has the same shape.
  void plan(const Topology<T>& g) {
    planned_ = true;
    const auto& nodes = g.nodes();
    const int n = static_cast<int>(nodes.size());
    chains_.assign(static_cast<std::size_t>(n), Chain<T>{});
    std::vector<int> consumer(n, -1);  // the single consuming node, if exactly one
    std::vector<char> is_output(n, 0);
    for (int o : g.outputs()) is_output[o] = 1;
    for (int i = 0; i < n; ++i)
      for (int j : nodes[i].inputs) consumer[j] = nodes[j].consumers == 1 ? i : -2;
    auto next_of = [&](int cur) { return is_output[cur] || nodes[cur].consumers != 1 ? -1 : consumer[cur]; };
    for (int c = 0; c < n; ++c) {
      if (nodes[c].input_index >= 0 || !nodes[c].conv || !nodes[c].conv->accepts_epilogue()) continue;
      Chain<T> ch;
      ch.pad = foldable_padding(nodes, c, is_output);
      int cur = c, nx = next_of(cur);
      T lo, hi;
      if (nx >= 0 && nodes[nx].inputs.size() == 1 && nodes[nx].affine &&
          nodes[nx].affine->inference_affine(ch.scale, ch.shift)) {
        ch.bn = cur = nx;
        nx = next_of(cur);
      }
      if (nx >= 0 && nodes[nx].inputs.size() == 1 && nodes[nx].clamp && nodes[nx].clamp->clamp_range(lo, hi)) {
        ch.relu = cur = nx;
        nx = next_of(cur);
      }
      if (nx >= 0 && nodes[nx].elementwise_sum && nodes[nx].inputs.size() == 2) {
        const int other = nodes[nx].inputs[0] == cur ? nodes[nx].inputs[1] : nodes[nx].inputs[0];
        if (other < c && other != cur && nodes[other].shape == nodes[nx].shape) {
          ch.add = cur = nx;
          ch.residual = other;
        }
      }
      if (cur == c && ch.pad < 0) continue;
      ch.end = cur;
      for (int m : {ch.bn, ch.relu, ch.add})
        if (m >= 0) ch.members.push_back(m);
      chains_[static_cast<std::size_t>(c)] = std::move(ch);
    }
    for (int b = 0; b < n; ++b) {  // BN -> ReLU training pairs
      const int nx = nodes[b].train_clamp && nodes[b].inputs.size() == 1 ? next_of(b) : -1;
      if (nx < 0 || nodes[nx].inputs.size() != 1 || !nodes[nx].clamp) continue;
      auto& ch = chains_[static_cast<std::size_t>(b)];
      ch.clamp_pair = true;
      ch.relu = nx;
    }
  }

  /// Recomputes every chain's BN affine and ReLU range (weights may have changed since the last
  /// pass). Runs on the calling thread before any slice starts; slices only read the chains.
  void refresh(const Topology<T>& g) {
    const auto& nodes = g.nodes();
    for (auto& ch : chains_) {
      if (ch.end < 0) continue;
      ch.ok = true;
      if (ch.bn >= 0) ch.ok = nodes[ch.bn].affine->inference_affine(ch.scale, ch.shift);
      if (ch.ok && ch.relu >= 0) ch.ok = nodes[ch.relu].clamp->clamp_range(ch.lo, ch.hi);
    }
  }

  /// For a training pass: recomputes the BN affines and ReLU ranges and which chains fuse in
  /// training (Chain::train_end): a FusableTrainingConv followed by an affine layer that is
  /// affine_in_training (and trains nothing) and optionally a clamp. Runs before the pass.
  void refresh_training(const Topology<T>& g) {
    refresh(g);
    const auto& nodes = g.nodes();
    for (std::size_t c = 0; c < chains_.size(); ++c) {
      auto& ch = chains_[c];
      ch.train_end = -1;
      if (ch.end < 0 || !ch.ok || ch.bn < 0 || !nodes[c].train_conv) continue;
      const auto& bn = nodes[ch.bn];
      if (!bn.affine->affine_in_training() || bn.layer->needs_variable_grads()) continue;
      ch.train_end = ch.relu >= 0 ? ch.relu : ch.bn;
    }
    // BN -> ReLU pairs whose BN is not already inside a fused conv chain of this pass
    std::vector<char> in_chain(chains_.size(), 0);
    for (const auto& ch : chains_)
      if (!ch.clamp_pair && ch.train_end >= 0 && ch.bn >= 0) in_chain[static_cast<std::size_t>(ch.bn)] = 1;
    for (std::size_t b = 0; b < chains_.size(); ++b) {
      auto& ch = chains_[b];
      if (!ch.clamp_pair) continue;
      ch.train_end = -1;
      if (!in_chain[b] && nodes[ch.relu].clamp->clamp_range(ch.lo, ch.hi)) ch.train_end = ch.relu;
    }
  }
  /// Node c's training epilogue (scale, shift, clamp; no residual; the clamp alone for a BN -> ReLU pair).
  void make_training_epilogue(int c, ops::Epilogue<T>& ep) const {
    const Chain<T>& ch = chain(c);
    ep = ops::Epilogue<T>{};
    if (!ch.clamp_pair) {
      ep.scale = ch.scale.data();
      ep.shift = ch.shift.data();
    }
    if (ch.relu >= 0) {
      ep.clamp = true;
      ep.lo = ch.lo;
      ep.hi = ch.hi;
    }
  }

  /// Node c's epilogue for a pass whose values are `values` (the residual is that pass's own).
  void make_epilogue(int c, const std::vector<const Tensor<T>*>& values, ops::Epilogue<T>& ep) const {
    const Chain<T>& ch = chain(c);
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
    if (ch.residual >= 0) ep.residual = values[ch.residual]->data();
  }

 private:
  /// The zero-padding node that conv c reads, when c can read the padding's input instead and
  /// nothing else reads the padded tensor (-1: none).
  static int foldable_padding(const std::vector<Node<T>>& nodes, int c, const std::vector<char>& is_output) {
    if (nodes[c].inputs.size() != 1 || !nodes[c].conv->accepts_input_padding()) return -1;
    const int p = nodes[c].inputs[0];
    const Node<T>& pn = nodes[p];
    if (!pn.zero_pad || pn.input_index >= 0 || pn.inputs.size() != 1 || pn.consumers != 1 || is_output[p]) return -1;
    return p;
  }

  std::vector<Chain<T>> chains_;  ///< per node (only conv nodes may hold a chain)
  bool planned_ = false;
};

}  // namespace keras::engine
