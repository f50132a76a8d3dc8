// Batch slices over threads for fast inference passes: the batch is cut into slices of a few
// samples and each thread runs the whole range of nodes on its own slices with single-threaded
// kernels (no synchronisation between layers, activations that stay in cache; on one thread the
// slices simply run in turn). Only the sinks are assembled at full batch size.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <mutex>
#include <vector>

#include "pass.hpp"

namespace keras::engine {

template <class T>
class SlicedRunner {
 public:
  /// Runs nodes [first, last] (`plan` made for this range) in slices. Sources: the model inputs
  /// (first == 0) or the preset value of node `preset`. Writes the sinks' full-batch values into
  /// main.buffers and main.values. Returns false (nothing done) when slicing does not apply: a
  /// layer that is not reentrant, a fixed batch size, fewer than two slices, or already inside a
  /// parallel region. `slice` > 0 forces the samples per slice.
  bool run(const Topology<T>& g, const Fusion<T>& fusion, const BufferPlan& plan, PassState<T>& main, Index slice,
           int first, int last, const std::vector<const Tensor<T>*>& inputs, int preset, const Tensor<T>* preset_value,
           const std::vector<int>& sinks) {
    if (in_parallel_region()) return false;
    const auto& nodes = g.nodes();
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
      const auto& nd = nodes[i];
      if (nd.input_index >= 0) {
        checked_input(nd, inputs.at(nd.input_index));
        if (nd.shape.empty() || nd.shape[0] >= 0) return false;  // a fixed batch size
      } else if (!nd.reentrant) {
        return false;
      }
    }
    if (slice <= 0) slice = auto_slice(g, first, last, inputs, preset_value, N, nt);
    const Index nslices = (N + slice - 1) / slice;
    if (nslices < 2) return false;
    const int threads = static_cast<int>(std::min<Index>(nt, nslices));

    const std::size_t n = nodes.size();
    slices_.resize(static_cast<std::size_t>(threads));
    for (auto& st : slices_) st.slice_inputs.resize(inputs.size());
    std::vector<char> sized(sinks.size(), 0), ran(static_cast<std::size_t>(threads), 0);
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex sink_mutex, error_mutex;
    // the slices are the chunks of kerascpp's pool (core/thread_pool.hpp); tid names the thread's state
    keras::parallel_chunks(nslices, threads, [&](Index k, int tid) {
      PassState<T>& st = slices_[static_cast<std::size_t>(tid)];
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
          {
            // this slice state's workspaces, not the thread's (sized below for every state)
            auto& ov = ops::workspace_override<T>();
            auto& gv = ops::detail::gemm_buffers_override<T>();
            struct Restore {
              ops::Conv2DWorkspace<T>*& p;
              ops::Conv2DWorkspace<T>* v;
              ops::detail::GemmPackBuffers<T>*& q;
              ops::detail::GemmPackBuffers<T>* w;
              ~Restore() {
                p = v;
                q = w;
              }
            } restore{ov, ov, gv, gv};
            ov = &st.conv_ws;
            gv = &st.gemm_bufs;
            run_fast(g, fusion, plan, st, first, last, ins);
          }
          ran[static_cast<std::size_t>(tid)] = 1;
          for (std::size_t q = 0; q < sinks.size(); ++q) {
            const int sk = sinks[q];
            if (sk == preset || nodes[sk].input_index >= 0) continue;
            const Tensor<T>& v = *st.values[sk];
            Tensor<T>& full = main.buffers[sk];
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
              throw ShapeError("layer '" + nodes[sk].layer->name() + "': output " + shape_str(v.shape()) +
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
      for (std::size_t k = 0; k < g.inputs().size(); ++k) main.values[g.inputs()[k]] = inputs.at(k);
    for (int sk : sinks)
      if (sk != preset && nodes[sk].input_index < 0) main.values[sk] = &main.buffers[sk];
    int done = -1;
    for (int t = 0; t < threads; ++t)
      if (ran[static_cast<std::size_t>(t)]) {
        main.fused = slices_[static_cast<std::size_t>(t)].fused;
        main.folded = slices_[static_cast<std::size_t>(t)].folded;
        done = t;
        break;
      }
    // Which thread runs a slice depends on timing: a thread that ran none this time (its worker was
    // off the CPU) gets buffers as large as one that did, so that it allocates nothing when it
    // first runs a slice in a later batch (steady state).
    if (done >= 0)
      for (int t = 0; t < threads; ++t) {
        if (ran[static_cast<std::size_t>(t)]) continue;
        const PassState<T>& ref = slices_[static_cast<std::size_t>(done)];
        PassState<T>& st = slices_[static_cast<std::size_t>(t)];
        st.reset(n);
        if (st.pool.size() < ref.pool.size()) st.pool.resize(ref.pool.size());
        for (std::size_t q = 0; q < ref.pool.size(); ++q) st.pool[q].reserve_like(ref.pool[q]);
        for (std::size_t q = 0; q < ref.slice_inputs.size(); ++q) st.slice_inputs[q].reserve_like(ref.slice_inputs[q]);
        st.slice_value.reserve_like(ref.slice_value);
        st.conv_ws.col.reserve_like(ref.conv_ws.col);
        st.conv_ws.packed.reserve_like(ref.conv_ws.packed);
        if (ref.gemm_bufs.allocated()) st.gemm_bufs.ensure();
      }
    return true;
  }

 private:
  std::vector<PassState<T>> slices_;  ///< per thread

  /// Copies samples [s0, s1) of x into out.
  static void take_samples(const Tensor<T>& x, Index s0, Index s1, Tensor<T>& out) {
    Shape sh = x.shape();
    const Index per = sh[0] > 0 ? x.size() / sh[0] : 0;
    sh[0] = s1 - s0;
    out.resize(sh);
    if (per) std::memcpy(out.data(), x.data() + s0 * per, sizeof(T) * per * (s1 - s0));
  }

  /// Automatic slice: as many samples as keep the largest activation of one slice within
  /// kSliceBytes (so a layer's input and output stay in a core's L2 cache), at least 1, at most an
  /// even share of the batch per thread. MobileNetV2 at 192-224 px gets 1 sample per slice (best
  /// in bench_mobilenet: 1 > 2 > 4 > 8); small models get one slice per thread.
  static Index auto_slice(const Topology<T>& g, int first, int last, const std::vector<const Tensor<T>*>& inputs,
                          const Tensor<T>* preset_value, Index N, int nt) {
    double per_sample = 0;  // elements of the largest activation of one sample
    double src = 0;
    for (auto* x : inputs) src = std::max(src, double(x->size()) / double(N));
    if (preset_value) src = std::max(src, double(preset_value->size()) / double(N));
    for (int i = first; i <= last; ++i) {
      double e = 1;
      const Shape& sh = g.nodes()[i].shape;
      for (std::size_t d = 1; d < sh.size(); ++d) e *= sh[d] > 0 ? double(sh[d]) : -1.0;
      if (e < 0) e = 16 * src;  // unknown dimensions (dynamic image size): a generous guess
      per_sample = std::max(per_sample, e);
    }
    const double bytes = std::max(1.0, per_sample * sizeof(T));
    const Index fit = static_cast<Index>(std::max(1.0, kSliceBytes / bytes));
    return std::max<Index>(1, std::min<Index>(fit, (N + nt - 1) / nt));
  }
  static constexpr double kSliceBytes = 2.0 * 1024 * 1024;
};

}  // namespace keras::engine
