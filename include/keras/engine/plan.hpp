// The buffer plan of a fast inference pass: which chains run fused, which nodes alias a fused
// conv's output, and the pooled buffer (slot) each computed node writes. A slot is released after
// the last node that reads it and reused (most recently released first), so a pass over a deep
// model touches a few buffers that stay in cache; the sinks (what the caller reads) keep theirs.
#pragma once
#include <algorithm>
#include <limits>
#include <vector>

#include "fusion.hpp"

namespace keras::engine {

struct BufferPlan {
  std::vector<char> fuse;      ///< per node: the chain headed here runs fused
  std::vector<int> member_of;  ///< per node: the fused conv computing it, or -1
  std::vector<int> slot;       ///< per node: pooled buffer, or -1 (source, member, folded, outside)
  std::vector<int> pad_of;     ///< per fused conv: the zero padding it reads through (Chain::pad), or -1
  std::vector<char> folded;    ///< per node: a zero padding folded into its consumer (not computed)
  int slots = 0;
  int logits_node = -1;  ///< the output node computed as logits only (forward_logits), or -1

  /// Plans nodes [first, last]; `preset` (-1: none) is a node whose value the caller provides.
  template <class T>
  void make(const Topology<T>& g, const Fusion<T>& fusion, int first, int last, int preset,
            const std::vector<int>& sinks) {
    const auto& nodes = g.nodes();
    const int n = static_cast<int>(nodes.size());
    fuse.assign(n, 0);
    member_of.assign(n, -1);
    slot.assign(n, -1);
    pad_of.assign(n, -1);
    folded.assign(n, 0);
    slots = 0;
    logits_node = -1;
    for (int c = first; c <= last; ++c) {
      const Chain<T>& ch = fusion.chain(c);
      if (ch.end < 0 || !ch.ok || ch.end > last) continue;
      if (ch.residual >= 0 && ch.residual < first && ch.residual != preset) continue;  // no value in this pass
      fuse[c] = 1;
      for (int m : ch.members) member_of[m] = c;
      if (ch.pad >= first && ch.pad != preset) {
        pad_of[c] = ch.pad;
        folded[ch.pad] = 1;
      }
    }
    auto owner = [&](int v) { return member_of[v] >= 0 ? member_of[v] : v; };
    auto computed = [&](int v) { return v >= first && v <= last && nodes[v].input_index < 0 && !folded[v]; };
    std::vector<int> end(n, -1);  // time (node index) of the last read of each owner's buffer
    for (int u = first; u <= last; ++u) {
      if (!computed(u)) continue;
      const int t = owner(u);
      for (int j : reads(g, u)) end[owner(j)] = std::max(end[owner(j)], t);
    }
    for (int k : sinks) end[owner(k)] = std::numeric_limits<int>::max();
    std::vector<std::vector<int>> release(n);
    for (int v = first; v <= last; ++v)
      if (computed(v) && member_of[v] < 0 && end[v] != std::numeric_limits<int>::max())
        release[std::max(end[v], v)].push_back(v);
    std::vector<int> free_slots;
    for (int i = first; i <= last; ++i) {
      if (!computed(i) || member_of[i] >= 0) continue;
      if (free_slots.empty()) {
        slot[i] = slots++;
      } else {
        slot[i] = free_slots.back();
        free_slots.pop_back();
      }
      for (int v : release[i]) free_slots.push_back(slot[v]);
    }
  }

  /// The nodes whose values node u reads in the pass: its inputs, or its folded padding's input.
  template <class T>
  const std::vector<int>& reads(const Topology<T>& g, int u) const {
    return pad_of[static_cast<std::size_t>(u)] >= 0 ? g.nodes()[pad_of[u]].inputs : g.nodes()[u].inputs;
  }
};

}  // namespace keras::engine
