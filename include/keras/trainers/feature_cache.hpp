// The frozen-feature cache of fit(): the outputs of a frozen, deterministic leading part of the
// graph (up to node plan.cut, engine::Topology::cache_plan) are computed once per sample, and the
// rest of the model trains on them. When the frozen part holds a random layer with a finite set of
// outcomes (RandomFlip: as is or mirrored), the part is computed once per outcome and each step
// picks every sample's outcome as the layer itself would have drawn it (see data_adapters.hpp):
// the same computation as uncached training, for one extra frozen pass per outcome.
#pragma once
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "../engine/graph.hpp"
#include "data_adapters.hpp"
#include "progbar.hpp"

namespace keras::trainers {

/// Outputs of the frozen leading part for a whole pass of a source (features and targets).
template <class T>
struct FeatureCache {
  std::vector<Tensor<T>> x;  ///< training features, one tensor per outcome of the augmentation (one without)
  Tensor<T> y, vx, vy;
  Index batch = 0;                              ///< size of the first training batch
  std::vector<Index> train_chunks, val_chunks;  ///< rows of each batch of the passes (a sharded pass: to gather it)
};

/// Sets a FiniteAugmentation layer's inference outcome for a scope, and back to 0 after it.
template <class T>
class OutcomeScope {
 public:
  explicit OutcomeScope(layers::FiniteAugmentation<T>* aug) : aug_(aug) {}
  ~OutcomeScope() {
    if (aug_) aug_->set_inference_outcome(0);
  }
  void set(int k) {
    if (aug_) aug_->set_inference_outcome(k);
  }
  OutcomeScope(const OutcomeScope&) = delete;
  OutcomeScope& operator=(const OutcomeScope&) = delete;

 private:
  layers::FiniteAugmentation<T>* aug_;
};

/// The FiniteAugmentation layer of a cache plan (nullptr without one).
template <class T>
layers::FiniteAugmentation<T>* plan_augmentation(const engine::Graph<T>& graph, const engine::CachePlan& plan) {
  return plan.augmentation < 0
             ? nullptr
             : dynamic_cast<layers::FiniteAugmentation<T>*>(graph.nodes()[plan.augmentation].layer.get());
}

/// Fills the cache from one pass over `train` (and `val`); false (and fit runs uncached) if the
/// features would exceed max_bytes. The frozen part runs on chunks of at most chunk_size samples
/// (0: the batch size), so its activation buffers (kept for reuse) stay small whatever the
/// training batch size. verbose: log the cut, shape, samples, MB and time.
template <class T>
bool build_feature_cache(engine::Graph<T>& graph, const engine::CachePlan& plan, BatchSource<T>& train,
                         BatchSource<T>* val, double max_bytes, Index chunk_size, int verbose, FeatureCache<T>& fc) {
  const int cut = plan.cut;
  layers::FiniteAugmentation<T>* aug = plan_augmentation(graph, plan);
  const int outcomes = aug ? aug->num_outcomes() : 1;
  Shape fs = graph.nodes()[cut].shape;
  double per_sample = sizeof(T);
  for (std::size_t i = 1; i < fs.size(); ++i) per_sample *= static_cast<double>(fs[i]);
  auto t0 = std::chrono::steady_clock::now();
  OutcomeScope<T> scope(aug);
  double bytes = 0;
  // verbose 1: Keras's progress bar over the batches of both passes
  callbacks::ProgbarLogger<T> bar(std::cout, std::nullopt, verbose);
  bar.set_params({{"steps", static_cast<double>(train.steps() + (val ? val->steps() : 0))}});
  int step = 0;
  if (verbose == 1) bar.on_predict_begin({});
  // Each batch runs through the frozen part once per outcome (the source is read once).
  // Each batch's features go straight into one tensor per outcome, sized for steps() full batches
  // when the first batch arrives (the tail of a short last batch is never touched): no per-batch
  // pieces that a final concatenation would copy, so the cache's peak memory is the cache itself.
  auto append = [](Tensor<T>& dst, Index& rows, const Tensor<T>& src, Index capacity_rows) {
    if (src.empty() || src.dim(0) == 0) return;
    const Index row = src.size() / src.dim(0);
    if (dst.empty() || (rows + src.dim(0)) * row > dst.size()) {
      Shape s = src.shape();
      s[0] = std::max(capacity_rows, 2 * (rows + src.dim(0)));
      Tensor<T> grown(s);
      if (rows) std::copy(dst.data(), dst.data() + rows * row, grown.data());
      dst.swap(grown);
    }
    std::copy(src.begin(), src.end(), dst.data() + rows * row);
    rows += src.dim(0);
  };
  auto collect = [&](BatchSource<T>& src, std::vector<Tensor<T>>& fx, Tensor<T>& fy, int n_out,
                     std::vector<Index>& chunks) {
    fx.assign(static_cast<std::size_t>(n_out), Tensor<T>());
    std::vector<Index> rows(static_cast<std::size_t>(n_out), 0);
    Index yrows = 0, capacity = 0;
    Tensor<T> xb, yb, part;
    src.begin_epoch(0);
    chunks.clear();
    while (src.next(xb, yb)) {
      chunks.push_back(xb.dim(0));
      if (xb.dim(0) == 0) continue;  // a sharded batch with no rows for this replica
      if (!fc.batch) fc.batch = xb.dim(0);
      if (!capacity) capacity = xb.dim(0) * std::max<Index>(1, src.steps());
      bytes += per_sample * static_cast<double>(xb.dim(0)) * n_out;
      if (bytes > max_bytes) return false;
      const Index chunk = chunk_size > 0 ? chunk_size : xb.dim(0), row = xb.size() / xb.dim(0);
      for (int k = 0; k < n_out; ++k) {
        scope.set(k);
        auto& dst = fx[static_cast<std::size_t>(k)];
        auto& r = rows[static_cast<std::size_t>(k)];
        if (xb.dim(0) <= chunk) {
          append(dst, r, graph.forward_until(cut, xb), capacity);
          continue;
        }
        Shape cs = xb.shape();
        for (Index b0 = 0; b0 < xb.dim(0); b0 += chunk) {
          cs[0] = std::min(chunk, xb.dim(0) - b0);
          part.resize(cs);
          std::copy(xb.data() + b0 * row, xb.data() + (b0 + cs[0]) * row, part.data());
          append(dst, r, graph.forward_until(cut, part), capacity);
        }
      }
      append(fy, yrows, yb, capacity);
      if (verbose == 1) bar.on_predict_batch_end(step++, {});
    }
    for (int k = 0; k < n_out; ++k) {  // the true row counts; resize keeps the buffers
      auto& dst = fx[static_cast<std::size_t>(k)];
      if (dst.empty()) continue;
      Shape s = dst.shape();
      s[0] = rows[static_cast<std::size_t>(k)];
      dst.resize(s);
    }
    if (!fy.empty()) {
      Shape s = fy.shape();
      s[0] = yrows;
      fy.resize(s);
    }
    return true;
  };
  if (!collect(train, fc.x, fc.y, outcomes, fc.train_chunks)) return false;
  std::vector<Tensor<T>> vx;
  if (val && !collect(*val, vx, fc.vy, 1, fc.val_chunks)) return false;
  if (val) fc.vx = std::move(vx[0]);
  if (verbose == 1) bar.on_predict_end({});
  if (verbose) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    char buf[64];
    std::snprintf(buf, sizeof buf, " (%.1f MB) in %.1fs", bytes / (1 << 20), secs);
    std::cout << "Cached the outputs of the frozen layers up to '" << graph.nodes()[cut].layer->name() << "' "
              << shape_str(fs) << " for " << fc.x[0].dim(0) + (val ? fc.vx.dim(0) : 0) << " samples";
    if (aug) {
      auto& l = *graph.nodes()[plan.augmentation].layer;
      std::cout << ", the training samples in each of the " << outcomes << " outcomes of " << l.class_name() << " '"
                << l.name() << "'";
    }
    std::cout << buf << "; training the rest on them.\n" << std::flush;
  }
  return true;
}

}  // namespace keras::trainers
