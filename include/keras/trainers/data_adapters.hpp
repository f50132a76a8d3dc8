// Data adapters: the batch sources fit/evaluate/predict draw (x, y) batches from, in-memory
// tensors or a data::Dataset (Keras's data adapters and EpochIterator, in one small interface).
#pragma once
#include <algorithm>
#include <functional>
#include <memory>
#include <numeric>
#include <vector>

#include "../core/core.hpp"
#include "../data/dataset.hpp"

namespace keras::trainers {

/// A source of (x, y) batches for one pass: in-memory tensors or (later) datasets.
template <class T>
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Index steps() const = 0;  ///< batches per epoch
  virtual void begin_epoch(int epoch) = 0;
  virtual bool next(Tensor<T>& x, Tensor<T>& y) = 0;
  /// Data parallelism (trainers/distribution.hpp): from now on this source gives replica `index`
  /// of `num` its share of each pass. Again with the same arguments: nothing changes.
  virtual void shard(int num, int index) = 0;
  /// The sample weights of the batch next() returned last, or null (no weights).
  virtual const Tensor<T>* batch_weights() const { return nullptr; }
};

/// Batches of rows of in-memory tensors, optionally shuffled per epoch with a seed.
template <class T>
class TensorBatchSource : public BatchSource<T> {
 public:
  TensorBatchSource(const Tensor<T>& x, const Tensor<T>* y, Index begin, Index count, Index batch_size, bool shuffle,
                    std::uint64_t seed)
      : x_(x),
        y_(y),
        begin_(begin),
        count_(count),
        batch_(std::max<Index>(1, batch_size)),
        shuffle_(shuffle),
        seed_(seed) {}
  Index steps() const override { return (count_ + batch_ - 1) / batch_; }
  void begin_epoch(int epoch) override {
    order_.resize(count_);
    std::iota(order_.begin(), order_.end(), begin_);
    if (shuffle_) {
      Random rng(seed_ + 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(epoch + 1));
      std::shuffle(order_.begin(), order_.end(), rng.engine());
    }
    pos_ = 0;
  }
  /// Sharded: the batch (and its drawn outcomes) is the whole one's, and this replica takes rows
  /// [index n / num, (index + 1) n / num) of it (maybe none: then x and y have 0 rows).
  bool next(Tensor<T>& x, Tensor<T>& y) override {
    if (pos_ >= count_) return false;
    Index n = std::min(batch_, count_ - pos_);
    const Index lo = n * shard_index_ / shards_, hi = n * (shard_index_ + 1) / shards_;
    if (alternatives_.empty()) {
      gather(x_, x, lo, hi);
    } else {  // each sample's row from the alternative its drawn outcome picks
      draw_(n, outcome_);
      gather(x_, x, lo, hi);
      const Index row = x_.size() / x_.dim(0);
      for (Index i = lo; i < hi; ++i) {
        const int k = outcome_[static_cast<std::size_t>(i)];
        if (k == 0) continue;
        const Tensor<T>& src = *alternatives_.at(static_cast<std::size_t>(k) - 1);
        std::copy(src.data() + order_[pos_ + i] * row, src.data() + (order_[pos_ + i] + 1) * row,
                  x.data() + (i - lo) * row);
      }
    }
    if (y_) gather(*y_, y, lo, hi);
    if (w_) gather(*w_, wb_, lo, hi);
    pos_ += n;
    return true;
  }
  void shard(int num, int index) override {
    if (num < 1 || index < 0 || index >= num)
      throw ValueError("TensorBatchSource::shard: replica " + std::to_string(index) + " of " + std::to_string(num) +
                       " does not exist");
    shards_ = num;
    shard_index_ = index;
  }
  /// Per-sample weights (shape (samples,) or (samples, 1), indexed as x's rows) batched with x and y.
  void set_weights(const Tensor<T>* w) { w_ = w; }
  const Tensor<T>* batch_weights() const override { return w_ ? &wb_ : nullptr; }
  /// Outcome k > 0 of a sample reads its row from alternatives[k - 1] instead of x (same shape);
  /// draw(n, outcomes) gives the outcomes of each batch of n samples.
  void set_alternatives(std::vector<const Tensor<T>*> alternatives,
                        std::function<void(Index, std::vector<int>&)> draw) {
    for (auto* a : alternatives)
      if (a->shape() != x_.shape())
        throw ShapeError("TensorBatchSource: alternative of shape " + shape_str(a->shape()) + ", expected " +
                         shape_str(x_.shape()));
    alternatives_ = std::move(alternatives);
    draw_ = std::move(draw);
  }

 private:
  const Tensor<T>& x_;
  const Tensor<T>* y_;
  Index begin_, count_, batch_;
  bool shuffle_;
  std::uint64_t seed_;
  std::vector<Index> order_;
  Index pos_ = 0;
  std::vector<const Tensor<T>*> alternatives_;
  std::function<void(Index, std::vector<int>&)> draw_;
  std::vector<int> outcome_;
  Index shards_ = 1, shard_index_ = 0;
  const Tensor<T>* w_ = nullptr;
  Tensor<T> wb_;
  /// Rows lo..hi-1 of the current batch.
  void gather(const Tensor<T>& src, Tensor<T>& dst, Index lo, Index hi) {
    Shape s = src.shape();
    Index row = src.size() / s[0];
    s[0] = hi - lo;
    dst.resize(s);
    for (Index i = lo; i < hi; ++i)
      std::copy(src.data() + order_[pos_ + i] * row, src.data() + (order_[pos_ + i] + 1) * row,
                dst.data() + (i - lo) * row);
  }
};

/// Batches of a data::Dataset (each element is one batch, as after .batch()).
template <class T>
class DatasetBatchSource : public BatchSource<T> {
 public:
  explicit DatasetBatchSource(data::Dataset<T> ds, Index max_steps = -1) : ds_(std::move(ds)), max_steps_(max_steps) {
    count_steps();
  }
  /// Sharded: every num-th batch from batch `index` (Dataset::shard, which reads only those).
  void shard(int num, int index) override {
    if (num == shards_ && index == shard_index_) return;
    if (shards_ != 1) throw StateError("DatasetBatchSource: already sharded for another replica");
    ds_ = ds_.shard(num, index);
    shards_ = num;
    shard_index_ = index;
    count_steps();
  }
  Index steps() const override { return steps_; }
  void begin_epoch(int) override {
    if (max_steps_ > 0 && it_ != ds_.end() && it_started_) return;  // steps_per_epoch: keep drawing from the same pass
    it_ = ds_.begin();
    it_started_ = true;
    taken_ = 0;
    count_ = 0;
  }
  bool next(Tensor<T>& x, Tensor<T>& y) override {
    if (max_steps_ > 0 && taken_ >= max_steps_) {
      taken_ = 0;
      return false;
    }
    if (it_ == ds_.end()) {
      if (max_steps_ > 0 && count_ > 0) {  // dataset exhausted mid-epoch: start a new pass
        it_ = ds_.begin();
        count_ = 0;
      }
      if (it_ == ds_.end()) {
        it_started_ = false;
        if (steps_ <= 0) steps_ = taken_;
        return false;
      }
    }
    x = std::move(it_->x);
    y = std::move(it_->y);
    ++it_;
    ++taken_;
    ++count_;
    return true;
  }

 private:
  data::Dataset<T> ds_;
  Index max_steps_, steps_ = 0, taken_ = 0, count_ = 0;
  int shards_ = 1, shard_index_ = 0;
  void count_steps() {
    steps_ = 0;
    if (auto c = ds_.cardinality()) steps_ = *c;
    if (max_steps_ > 0) steps_ = steps_ > 0 ? std::min(steps_, max_steps_) : max_steps_;
  }
  typename data::Dataset<T>::iterator it_;
  bool it_started_ = false;
};

/// The rows of several tensors, one after the other (batches -> one tensor).
template <class T>
Tensor<T> concat_rows(const std::vector<Tensor<T>>& parts) {
  if (parts.empty()) return Tensor<T>();
  Shape s = parts[0].shape();
  Index rows = 0;
  for (auto& p : parts) rows += p.dim(0);
  s[0] = rows;
  Tensor<T> r(s);
  Index off = 0;
  for (auto& p : parts) {
    std::copy(p.begin(), p.end(), r.data() + off);
    off += p.size();
  }
  return r;
}

}  // namespace keras::trainers
