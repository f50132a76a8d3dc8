// The trainer's hook for data parallelism: what fit, evaluate and predict ask of a group of
// replicas (processes), each holding the same model and working on its shard of the data. No
// transport here: keras/distribute/mpi.hpp implements it over MPI (an opt-in CMake target), and
// the trainer only calls these few functions (docs/distributed.md has the protocol).
//
// How the trainer shards (every replica is given the same, whole data):
//  - tensors, and the frozen-feature cache: each global batch (fit's batch_size) is split into
//    num_replicas contiguous parts, replica r takes part r;
//  - datasets: replica r takes every num_replicas-th batch from batch r (Dataset::shard), so one
//    step trains on num_replicas consecutive batches (batch the dataset at B / R for a global B).
// Gradients, losses and metrics are weighted by sample counts, so uneven parts change nothing:
// a step computes the gradient of the mean loss over all the step's samples, as one process would.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/core.hpp"
#include "../core/variable.hpp"

namespace keras::trainers {

template <class T = float>
class Distribution {
 public:
  virtual ~Distribution() = default;
  virtual int num_replicas() const = 0;
  virtual int replica_id() const = 0;
  /// The chief (replica 0) alone runs the callbacks that print or write (Callback::chief_only).
  bool is_chief() const { return replica_id() == 0; }

  /// Every replica gets the chief's values of these variables (the same list, in the same order,
  /// on every replica; fit checks the shapes agree first).
  virtual void broadcast(const std::vector<Variable<T>*>& vars) = 0;
  /// The chief's value of v.
  virtual std::uint64_t broadcast(std::uint64_t v) = 0;
  /// Sums v element-wise over the replicas, in place (the same result on every replica).
  virtual void all_sum(std::vector<double>& v) = 0;
  /// One step's gradients. On entry, v->grad holds the gradient of this replica's mean loss over
  /// its `local` samples (any content when local is 0); on return every replica holds the gradient
  /// of the mean loss over the step's `total` samples: sum_r local_r grad_r / total.
  virtual void reduce_gradients(const std::vector<Variable<T>*>& vars, Index local, Index total) = 0;
  /// Rows gathered in step order. `rows` holds this replica's chunks one after another, chunks[s]
  /// rows at its step s (as a sharded source gave them); the result holds, for s = 0, 1, ... and
  /// r = 0 .. R-1, replica r's chunk s: the unsharded order. to_all: on every replica; else on
  /// the chief only (the others get an empty tensor).
  virtual Tensor<T> gather_steps(const Tensor<T>& rows, const std::vector<Index>& chunks, bool to_all) = 0;
};

}  // namespace keras::trainers
