// The frozen-feature cache of fit(): the outputs of a frozen, deterministic leading part of the
// graph (up to node `cut`, engine::Topology::frozen_prefix_end) are computed once per sample, and
// the rest of the model trains on them (exact when the data are not augmented; see docs).
#pragma once
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "../engine/graph.hpp"
#include "data_adapters.hpp"

namespace keras::trainers {

/// Outputs of the frozen leading part for a whole pass of a source (features and targets).
template <class T>
struct FeatureCache {
  Tensor<T> x, y, vx, vy;
  Index batch = 0;  ///< size of the first training batch
};

/// Fills the cache from one pass over `train` (and `val`); false (and fit runs uncached) if the
/// features would exceed max_bytes. The frozen part runs on chunks of at most chunk_size samples
/// (0: the batch size), so its activation buffers (kept for reuse) stay small whatever the
/// training batch size. verbose: log the cut, shape, samples, MB and time.
template <class T>
bool build_feature_cache(engine::Graph<T>& graph, int cut, BatchSource<T>& train, BatchSource<T>* val, double max_bytes,
                         Index chunk_size, int verbose, FeatureCache<T>& fc) {
  Shape fs = graph.nodes()[cut].shape;
  double per_sample = sizeof(T);
  for (std::size_t i = 1; i < fs.size(); ++i) per_sample *= static_cast<double>(fs[i]);
  auto t0 = std::chrono::steady_clock::now();
  auto collect = [&](BatchSource<T>& src, Tensor<T>& fx, Tensor<T>& fy) {
    std::vector<Tensor<T>> xs, ys;
    Tensor<T> xb, yb;
    src.begin_epoch(0);
    double bytes = 0;
    while (src.next(xb, yb)) {
      if (!fc.batch) fc.batch = xb.dim(0);
      const Index chunk = chunk_size > 0 ? chunk_size : xb.dim(0);
      if (xb.dim(0) <= chunk) {
        xs.push_back(graph.forward_until(cut, xb));
      } else {
        Shape cs = xb.shape();
        const Index row = xb.size() / xb.dim(0);
        Tensor<T> part;
        for (Index b0 = 0; b0 < xb.dim(0); b0 += chunk) {
          cs[0] = std::min(chunk, xb.dim(0) - b0);
          part.resize(cs);
          std::copy(xb.data() + b0 * row, xb.data() + (b0 + cs[0]) * row, part.data());
          xs.push_back(graph.forward_until(cut, part));
        }
      }
      ys.push_back(yb);
      bytes += per_sample * static_cast<double>(xb.dim(0));
      if (bytes > max_bytes) return false;
    }
    fx = concat_rows(xs);
    fy = concat_rows(ys);
    return true;
  };
  if (!collect(train, fc.x, fc.y)) return false;
  if (val && !collect(*val, fc.vx, fc.vy)) return false;
  if (verbose) {
    double mb = per_sample * static_cast<double>(fc.x.dim(0) + (val ? fc.vx.dim(0) : 0)) / (1 << 20);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[64];
    std::snprintf(buf, sizeof buf, " (%.1f MB) in %.1fs", mb, secs);
    std::cout << "Cached the outputs of the frozen layers up to '" << graph.nodes()[cut].layer->name() << "' " << shape_str(fs)
              << " for " << fc.x.dim(0) + (val ? fc.vx.dim(0) : 0) << " samples" << buf << "; training the rest on them.\n"
              << std::flush;
  }
  return true;
}

}  // namespace keras::trainers
