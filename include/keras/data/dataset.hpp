// keras::data::Dataset<T>: a small tf.data-like input pipeline that fit/evaluate/predict accept.
//
// Design: a Dataset is a cheap-to-copy handle (shared_ptr) to an immutable chain of nodes.
//   source            N items read by index (in-memory tensors, image files, ...), optionally in a
//                     fresh permutation every epoch, read ahead in order by
//                     keras::get_num_threads() worker threads;
//   map / map_random  per-element functions (map_random gets a Random seeded from
//                     (seed, epoch, element index): deterministic whatever the threading);
//   batch / unbatch   stack elements along a new first axis / split it again;
//   shuffle           tf.data's buffered shuffle, reshuffled every epoch from (seed, epoch);
//   take, cache, prefetch;
//   shard             tf.data's shard, pushed down to the source through batch and prefetch.
// Iterating a node chain opens one Iterator per node (an epoch). `for (auto& b : ds)` runs one
// epoch; each begin() is the next epoch (the epoch counter is shared by copies of one Dataset),
// like tf.data's reshuffle_each_iteration=True. ds.begin(e) iterates epoch e explicitly.
//
// An element is a Batch<T>{x, y}: before batch() x is one sample (e.g. [h, w, c]) and y its
// label (rank 0 for an int label, empty tensor when unlabeled); after batch() both gain a leading
// batch axis, as in tf.data. image_dataset_from_directory returns an already batched dataset.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../core/core.hpp"

namespace keras::data {

/// One element of a Dataset: inputs x and targets y (y is empty, size 0, for unlabeled data).
template <class T = float>
struct Batch {
  Tensor<T> x;
  Tensor<T> y;
};

/// How cache() stores x. automatic: uint8 when the dataset is known to hold 8-bit image values
/// (image_dataset_from_directory, until a map), else exact. uint8 rounds x to [0, 255] integers
/// (at most 0.5 off; a 192x192x3 image takes 110 KB instead of 442 KB as float). y is always exact.
enum class CacheStorage { automatic, exact, uint8 };

/// Files that could not be decoded, shared by every dataset derived from one source.
struct SkipLog {
  /// Records a file; returns true the first time (so the caller warns once per file).
  bool add(const std::string& path) {
    std::lock_guard<std::mutex> lock(m);
    if (std::find(files.begin(), files.end(), path) != files.end()) return false;
    files.push_back(path);
    return true;
  }
  std::vector<std::string> list() const {
    std::lock_guard<std::mutex> lock(m);
    return files;
  }
  mutable std::mutex m;
  std::vector<std::string> files;
};

/// Metadata a Dataset carries along its stages.
struct DatasetInfo {
  std::vector<std::string> class_names;  ///< from image_dataset_from_directory
  std::vector<std::string> file_paths;   ///< the files of the source, in index order
  std::vector<int> labels;               ///< their class indices (image_dataset_from_directory), in index order
  std::shared_ptr<SkipLog> skipped;      ///< unreadable files that were skipped
  bool uint8_images = false;             ///< x holds 8-bit image values (cache() may store uint8)
  bool randomized = false;               ///< a map_random stage may change elements between epochs
};

/// Options of an indexed source (Dataset::from_indexed).
struct SourceOptions {
  bool shuffle = false;                                   ///< a new permutation of the indices every epoch
  std::optional<std::uint64_t> seed;                      ///< shuffle seed (default: keras::next_global_seed())
  bool parallel = false;                                  ///< read items on keras::get_num_threads() worker threads
  Index chunk = 0;                                        ///< parallel look-ahead is 2 * chunk items (0: 8 per thread)
  std::function<void(std::uint64_t epoch)> on_epoch_end;  ///< called once when an epoch's items are exhausted
};

namespace detail {

inline std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {  // splitmix64 of a combination
  std::uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

template <class T>
class Iterator {
 public:
  virtual ~Iterator() = default;
  /// Produces the next element into out; false at the end of the epoch.
  virtual bool next(Batch<T>& out) = 0;
};

template <class T>
class Node;
template <class T>
using NodePtr = std::shared_ptr<const Node<T>>;
/// The positions (0-based within an epoch) of a stage's elements that a shard keeps.
using PositionFilter = std::function<bool(Index)>;

template <class T>
class Node {
 public:
  virtual ~Node() = default;
  virtual std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const = 0;
  virtual std::optional<Index> cardinality() const = 0;
  /// This stage keeping only the elements at the positions `keep` accepts, the filter pushed down
  /// through stages that keep positions (batch, prefetch) to the source, which then never reads
  /// the others; nullptr when this stage cannot (filter_node() then filters its output).
  virtual NodePtr<T> push_filter(const PositionFilter& /*keep*/) const { return nullptr; }
};

/// Counts the positions in [0, n) that `keep` accepts.
inline Index count_kept(Index n, const PositionFilter& keep) {
  Index c = 0;
  for (Index i = 0; i < n; ++i) c += keep(i) ? 1 : 0;
  return c;
}

/// The elements of `up` at the positions `keep` accepts, read and dropped (no push-down).
template <class T>
class FilterNode : public Node<T> {
 public:
  FilterNode(NodePtr<T> up, PositionFilter keep) : up_(std::move(up)), keep_(std::move(keep)) {}
  std::optional<Index> cardinality() const override {
    auto c = up_->cardinality();
    if (!c) return c;
    return count_kept(*c, keep_);
  }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    auto it = std::make_unique<It>();
    it->up = up_->open(epoch);
    it->keep = &keep_;
    return it;
  }

 private:
  struct It : Iterator<T> {
    std::unique_ptr<Iterator<T>> up;
    const PositionFilter* keep = nullptr;
    Index pos = 0;
    bool next(Batch<T>& out) override {
      while (up->next(out))
        if ((*keep)(pos++)) return true;
      return false;
    }
  };
  NodePtr<T> up_;
  PositionFilter keep_;
};

/// `up` keeping the elements at the positions `keep` accepts: pushed down when the stages allow.
template <class T>
NodePtr<T> filter_node(const NodePtr<T>& up, const PositionFilter& keep) {
  if (auto pushed = up->push_filter(keep)) return pushed;
  return std::make_shared<FilterNode<T>>(up, keep);
}

// ---- source ------------------------------------------------------------------------------------
template <class T>
class SourceNode : public Node<T> {
 public:
  using ReadFn = std::function<std::optional<Batch<T>>(Index)>;
  SourceNode(Index n, ReadFn read, SourceOptions o, std::uint64_t seed, std::vector<PositionFilter> filters = {})
      : n_(n), read_(std::move(read)), opt_(std::move(o)), seed_(seed), filters_(std::move(filters)) {
    kept_ = n_;
    for (auto& f : filters_) kept_ = count_kept(kept_, f);
  }
  std::optional<Index> cardinality() const override { return kept_; }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override { return std::make_unique<It>(this, epoch); }
  /// A shard of the source: the same epoch order, only the kept positions are read.
  NodePtr<T> push_filter(const PositionFilter& keep) const override {
    auto f = filters_;
    f.push_back(keep);
    return std::make_shared<SourceNode>(n_, read_, opt_, seed_, std::move(f));
  }

 private:
  // Reads items in epoch order. Parallel sources run get_num_threads() worker threads that claim
  // the next index, read it and park the result in a look-ahead window (at most `chunk` items
  // ahead of the consumer); the consumer takes results in order. Workers block instead of
  // spinning, so decoding overlaps batching and the model without barriers.
  struct It : Iterator<T> {
    const SourceNode* s;
    std::uint64_t epoch;
    std::vector<Index> order;
    Index pos = 0;  // next position handed to the consumer
    bool ended = false;
    // parallel state
    int nt = 1;
    Index window = 1, claimed = 0;
    std::vector<std::optional<Batch<T>>> slots;  // ring buffer of `window` results
    std::vector<char> filled;
    std::vector<std::exception_ptr> errors;
    std::mutex m;
    std::condition_variable cv;
    bool stop = false;
    std::vector<std::thread> workers;

    It(const SourceNode* src, std::uint64_t e) : s(src), epoch(e) {
      order.resize(static_cast<std::size_t>(s->n_));
      for (Index i = 0; i < s->n_; ++i) order[i] = i;
      if (s->opt_.shuffle) {
        Random rng(mix_seed(s->seed_, epoch));
        for (Index i = s->n_ - 1; i > 0; --i) std::swap(order[i], order[rng.index(static_cast<std::uint64_t>(i) + 1)]);
      }
      for (auto& keep : s->filters_) {  // a shard: the kept positions of the epoch's order
        std::size_t k = 0;
        for (std::size_t p = 0; p < order.size(); ++p)
          if (keep(static_cast<Index>(p))) order[k++] = order[p];
        order.resize(k);
      }
      nt = s->opt_.parallel ? std::max(1, get_num_threads()) : 1;
      if (nt > 1 && s->kept_ > 1) {
        window = std::max<Index>(s->opt_.chunk > 0 ? 2 * s->opt_.chunk : 8 * nt, 2 * nt);
        slots.resize(static_cast<std::size_t>(window));
        filled.assign(static_cast<std::size_t>(window), 0);
        errors.resize(static_cast<std::size_t>(window));
        for (int t = 0; t < nt; ++t) workers.emplace_back([this] { work(); });
      }
    }
    ~It() override {
      {
        std::lock_guard<std::mutex> lock(m);
        stop = true;
      }
      cv.notify_all();
      for (auto& w : workers) w.join();
    }
    void work() {
      for (;;) {
        Index k;
        {
          std::unique_lock<std::mutex> lock(m);
          cv.wait(lock, [&] { return stop || (claimed < s->kept_ && claimed < pos + window); });
          if (stop) return;
          k = claimed++;
        }
        std::optional<Batch<T>> got;
        std::exception_ptr err;
        try {
          got = s->read_(order[k]);
        } catch (...) {
          err = std::current_exception();
        }
        {
          std::lock_guard<std::mutex> lock(m);
          const std::size_t slot = static_cast<std::size_t>(k % window);
          slots[slot] = std::move(got);
          errors[slot] = err;
          filled[slot] = 1;
        }
        cv.notify_all();
      }
    }
    bool next(Batch<T>& out) override {
      for (;;) {
        if (pos >= s->kept_) {
          if (!ended && s->opt_.on_epoch_end) s->opt_.on_epoch_end(epoch);
          ended = true;
          return false;
        }
        std::optional<Batch<T>> got;
        if (workers.empty()) {
          got = s->read_(order[pos++]);
        } else {
          std::unique_lock<std::mutex> lock(m);
          const std::size_t slot = static_cast<std::size_t>(pos % window);
          cv.wait(lock, [&] { return filled[slot] != 0; });
          got = std::move(slots[slot]);
          slots[slot].reset();
          filled[slot] = 0;
          std::exception_ptr err = errors[slot];
          errors[slot] = nullptr;
          ++pos;
          lock.unlock();
          cv.notify_all();
          if (err) std::rethrow_exception(err);
        }
        if (got) {
          out = std::move(*got);
          return true;
        }
      }
    }
  };
  Index n_;
  ReadFn read_;
  SourceOptions opt_;
  std::uint64_t seed_;
  std::vector<PositionFilter> filters_;  ///< shards, applied in turn to the epoch's order
  Index kept_ = 0;                       ///< positions left after the filters
};

// ---- map ---------------------------------------------------------------------------------------
template <class T>
class MapNode : public Node<T> {
 public:
  using Fn = std::function<Batch<T>(Batch<T>, Random&)>;
  MapNode(NodePtr<T> up, Fn fn, std::uint64_t seed) : up_(std::move(up)), fn_(std::move(fn)), seed_(seed) {}
  std::optional<Index> cardinality() const override { return up_->cardinality(); }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    auto it = std::make_unique<It>();
    it->up = up_->open(epoch);
    it->node = this;
    it->epoch_seed = mix_seed(seed_, epoch);
    return it;
  }

 private:
  struct It : Iterator<T> {
    std::unique_ptr<Iterator<T>> up;
    const MapNode* node = nullptr;
    std::uint64_t epoch_seed = 0, index = 0;
    Batch<T> in;
    bool next(Batch<T>& out) override {
      if (!up->next(in)) return false;
      Random rng(mix_seed(epoch_seed, index++));
      out = node->fn_(std::move(in), rng);
      return true;
    }
  };
  NodePtr<T> up_;
  Fn fn_;
  std::uint64_t seed_;
};

// ---- batch / unbatch ---------------------------------------------------------------------------
/// Stacks tensors of equal shape along a new first axis (all empty: empty).
template <class T>
Tensor<T> stack(const std::vector<const Tensor<T>*>& parts, const char* what) {
  if (parts.empty() || parts[0]->empty()) {
    for (auto* p : parts)
      if (!p->empty()) throw ShapeError(std::string("batch: some elements have ") + what + " and some do not");
    return {};
  }
  const Shape& s0 = parts[0]->shape();
  for (auto* p : parts)
    if (p->shape() != s0)
      throw ShapeError(std::string("batch: cannot stack elements whose ") + what + " shapes differ: " + shape_str(s0) +
                       " and " + shape_str(p->shape()) + " (resize them to one size, or use batch size 1)");
  Tensor<T> r(with_batch(s0, static_cast<Index>(parts.size())));
  const Index n = parts[0]->size();
  const Index count = static_cast<Index>(parts.size());
  // Large batches (images) are copied on all threads: the copy also first-touches the new buffer.
  const int nt = (n * count * static_cast<Index>(sizeof(T)) >= (Index(1) << 20)) ? std::max(1, get_num_threads()) : 1;
  keras::parallel_for(count, 1, (nt > 1) ? nt : 1, [&](Index i_begin, Index i_end) {
    for (Index i = i_begin; i < i_end; ++i) std::memcpy(r.data() + i * n, parts[i]->data(), sizeof(T) * n);
  });
  return r;
}

template <class T>
class BatchNode : public Node<T> {
 public:
  BatchNode(NodePtr<T> up, Index n, bool drop) : up_(std::move(up)), n_(n), drop_(drop) {}
  /// Batch b is elements [b n, (b + 1) n) of the stage below: keep those of the kept batches.
  NodePtr<T> push_filter(const PositionFilter& keep) const override {
    const Index n = n_;
    return std::make_shared<BatchNode>(filter_node<T>(up_, [keep, n](Index e) { return keep(e / n); }), n_, drop_);
  }
  std::optional<Index> cardinality() const override {
    auto c = up_->cardinality();
    if (!c) return c;
    return drop_ ? *c / n_ : (*c + n_ - 1) / n_;
  }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    auto it = std::make_unique<It>();
    it->up = up_->open(epoch);
    it->n = n_;
    it->drop = drop_;
    return it;
  }

 private:
  struct It : Iterator<T> {
    std::unique_ptr<Iterator<T>> up;
    Index n = 1;
    bool drop = false;
    std::vector<Batch<T>> items;
    bool next(Batch<T>& out) override {
      items.resize(static_cast<std::size_t>(n));
      Index k = 0;
      while (k < n && up->next(items[k])) ++k;
      if (k == 0 || (drop && k < n)) return false;
      std::vector<const Tensor<T>*> xs, ys;
      for (Index i = 0; i < k; ++i) {
        xs.push_back(&items[i].x);
        ys.push_back(&items[i].y);
      }
      out.x = stack(xs, "x");
      out.y = stack(ys, "y");
      return true;
    }
  };
  NodePtr<T> up_;
  Index n_;
  bool drop_;
};

template <class T>
Tensor<T> row_of(const Tensor<T>& t, Index i) {
  Tensor<T> r = t.slice_rows(i, 1);
  r.reshape(without_batch(t.shape()));
  return r;
}

template <class T>
class UnbatchNode : public Node<T> {
 public:
  explicit UnbatchNode(NodePtr<T> up) : up_(std::move(up)) {}
  std::optional<Index> cardinality() const override { return std::nullopt; }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    auto it = std::make_unique<It>();
    it->up = up_->open(epoch);
    return it;
  }

 private:
  struct It : Iterator<T> {
    std::unique_ptr<Iterator<T>> up;
    Batch<T> cur;
    Index row = 0, rows = 0;
    bool next(Batch<T>& out) override {
      while (row >= rows) {
        if (!up->next(cur)) return false;
        if (cur.x.rank() < 1)
          throw ShapeError("unbatch: elements must have a batch axis, got x of shape " + shape_str(cur.x.shape()));
        rows = cur.x.dim(0);
        if (!cur.y.empty() && (cur.y.rank() < 1 || cur.y.dim(0) != rows))
          throw ShapeError("unbatch: x " + shape_str(cur.x.shape()) + " and y " + shape_str(cur.y.shape()) +
                           " have different batch sizes");
        row = 0;
      }
      out.x = row_of(cur.x, row);
      out.y = cur.y.empty() ? Tensor<T>() : row_of(cur.y, row);
      ++row;
      return true;
    }
  };
  NodePtr<T> up_;
};

// ---- shuffle / take ----------------------------------------------------------------------------
template <class T>
class ShuffleNode : public Node<T> {
 public:
  ShuffleNode(NodePtr<T> up, Index buffer, std::uint64_t seed) : up_(std::move(up)), buffer_(buffer), seed_(seed) {}
  std::optional<Index> cardinality() const override { return up_->cardinality(); }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    auto it = std::make_unique<It>(mix_seed(seed_, epoch));
    it->up = up_->open(epoch);
    it->cap = buffer_;
    return it;
  }

 private:
  struct It : Iterator<T> {
    explicit It(std::uint64_t s) : rng(s) {}
    std::unique_ptr<Iterator<T>> up;
    Random rng;
    Index cap = 1;
    bool exhausted = false;
    std::vector<Batch<T>> buf;
    bool next(Batch<T>& out) override {
      while (!exhausted && static_cast<Index>(buf.size()) < cap) {
        Batch<T> b;
        if (!up->next(b)) {
          exhausted = true;
          break;
        }
        buf.push_back(std::move(b));
      }
      if (buf.empty()) return false;
      std::size_t k = static_cast<std::size_t>(rng.index(buf.size()));
      out = std::move(buf[k]);
      if (k + 1 != buf.size()) buf[k] = std::move(buf.back());
      buf.pop_back();
      return true;
    }
  };
  NodePtr<T> up_;
  Index buffer_;
  std::uint64_t seed_;
};

template <class T>
class TakeNode : public Node<T> {
 public:
  TakeNode(NodePtr<T> up, Index n) : up_(std::move(up)), n_(n) {}
  std::optional<Index> cardinality() const override {
    auto c = up_->cardinality();
    if (!c) return std::nullopt;
    return std::min(*c, n_);
  }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    auto it = std::make_unique<It>();
    it->up = up_->open(epoch);
    it->left = n_;
    return it;
  }

 private:
  struct It : Iterator<T> {
    std::unique_ptr<Iterator<T>> up;
    Index left = 0;
    bool next(Batch<T>& out) override {
      if (left <= 0 || !up->next(out)) return false;
      --left;
      return true;
    }
  };
  NodePtr<T> up_;
  Index n_;
};

// ---- cache -------------------------------------------------------------------------------------
template <class T>
class CacheNode : public Node<T> {
 public:
  CacheNode(NodePtr<T> up, bool as_uint8) : up_(std::move(up)), uint8_(as_uint8) {}
  std::optional<Index> cardinality() const override { return up_->cardinality(); }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    auto it = std::make_unique<It>();
    it->node = this;
    {
      std::lock_guard<std::mutex> lock(state_->m);
      it->replay = state_->complete ? state_->items : nullptr;
    }
    if (!it->replay) {
      it->up = up_->open(epoch);
      it->filling = std::make_shared<std::vector<Item>>();
    }
    return it;
  }

 private:
  struct Item {
    Shape x_shape;
    bool is8 = false;
    std::vector<std::uint8_t> x8;  // used when stored as uint8
    Tensor<T> x;                   // used when stored exactly
    Tensor<T> y;
  };
  struct State {
    std::mutex m;
    bool complete = false;
    std::shared_ptr<const std::vector<Item>> items;
  };
  Item store(Batch<T>&& b) const {
    Item it;
    it.x_shape = b.x.shape();
    if (uint8_ && !b.x.empty()) {
      it.is8 = true;
      it.x8.resize(static_cast<std::size_t>(b.x.size()));
      for (Index i = 0; i < b.x.size(); ++i) {
        double v = std::nearbyint(static_cast<double>(b.x[i]));
        it.x8[i] = static_cast<std::uint8_t>(std::clamp(v, 0.0, 255.0));
      }
    } else {
      it.x = std::move(b.x);
    }
    it.y = std::move(b.y);
    return it;
  }
  static void load(const Item& it, Batch<T>& out) {
    if (it.is8) {
      out.x.resize(it.x_shape);
      for (Index i = 0; i < out.x.size(); ++i) out.x[i] = static_cast<T>(it.x8[i]);
    } else {
      out.x = it.x;
    }
    out.y = it.y;
  }
  struct It : Iterator<T> {
    const CacheNode* node = nullptr;
    std::shared_ptr<const std::vector<Item>> replay;
    std::size_t pos = 0;
    std::unique_ptr<Iterator<T>> up;
    std::shared_ptr<std::vector<Item>> filling;
    bool next(Batch<T>& out) override {
      if (replay) {
        if (pos >= replay->size()) return false;
        load((*replay)[pos++], out);
        return true;
      }
      Batch<T> b;
      if (!up->next(b)) {
        std::lock_guard<std::mutex> lock(node->state_->m);
        if (!node->state_->complete) {  // only a complete epoch is kept
          node->state_->items = filling;
          node->state_->complete = true;
        }
        return false;
      }
      filling->push_back(node->store(std::move(b)));
      load(filling->back(), out);  // yield what later epochs will see
      return true;
    }
  };
  NodePtr<T> up_;
  bool uint8_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// ---- prefetch ----------------------------------------------------------------------------------
template <class T>
class PrefetchNode : public Node<T> {
 public:
  PrefetchNode(NodePtr<T> up, Index n) : up_(std::move(up)), n_(n) {}
  NodePtr<T> push_filter(const PositionFilter& keep) const override {
    return std::make_shared<PrefetchNode>(filter_node<T>(up_, keep), n_);
  }
  std::optional<Index> cardinality() const override { return up_->cardinality(); }
  std::unique_ptr<Iterator<T>> open(std::uint64_t epoch) const override {
    return std::make_unique<It>(up_->open(epoch), n_);
  }

 private:
  struct It : Iterator<T> {
    std::unique_ptr<Iterator<T>> up;
    std::size_t cap;
    std::mutex m;
    std::condition_variable cv;
    std::deque<Batch<T>> q;
    bool done = false, stop = false;
    std::exception_ptr error;
    std::thread worker;
    It(std::unique_ptr<Iterator<T>> u, Index n)
        : up(std::move(u)), cap(static_cast<std::size_t>(std::max<Index>(n, 1))) {
      worker = std::thread([this] { run(); });
    }
    ~It() override {
      {
        std::lock_guard<std::mutex> lock(m);
        stop = true;
      }
      cv.notify_all();
      worker.join();
    }
    void run() {
      try {
        for (;;) {
          Batch<T> b;
          if (!up->next(b)) break;
          std::unique_lock<std::mutex> lock(m);
          cv.wait(lock, [&] { return stop || q.size() < cap; });
          if (stop) return;
          q.push_back(std::move(b));
          cv.notify_all();
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(m);
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(m);
      done = true;
      cv.notify_all();
    }
    bool next(Batch<T>& out) override {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return !q.empty() || done; });
      if (!q.empty()) {
        out = std::move(q.front());
        q.pop_front();
        cv.notify_all();
        return true;
      }
      if (error) {
        auto e = error;
        error = nullptr;
        std::rethrow_exception(e);
      }
      return false;
    }
  };
  NodePtr<T> up_;
  Index n_;
};

}  // namespace detail

/// A tf.data-like dataset of Batch<T> elements. Cheap to copy; every transformation returns a new
/// Dataset and leaves this one unchanged.
template <class T = float>
class Dataset {
 public:
  using value_type = Batch<T>;

  /// Input iterator over one epoch. *it is the current element (movable-from).
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = Batch<T>*;
    using reference = Batch<T>&;
    iterator() = default;
    Batch<T>& operator*() const { return state_->current; }
    Batch<T>* operator->() const { return &state_->current; }
    iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    bool operator==(const iterator& o) const { return state_ == o.state_; }
    bool operator!=(const iterator& o) const { return state_ != o.state_; }

   private:
    friend class Dataset;
    struct State {
      detail::NodePtr<T> keep;  // the pipeline outlives its iterators even if the Dataset does not
      std::unique_ptr<detail::Iterator<T>> it;
      Batch<T> current;
    };
    std::shared_ptr<State> state_;
    iterator(detail::NodePtr<T> node, std::uint64_t epoch) : state_(std::make_shared<State>()) {
      state_->keep = std::move(node);
      state_->it = state_->keep->open(epoch);
      advance();
    }
    void advance() {
      if (state_ && !state_->it->next(state_->current)) state_.reset();
    }
  };

  Dataset() = default;

  // ---- sources ---------------------------------------------------------------------------------
  /// One element holding the whole tensors (tf.data.Dataset.from_tensors).
  static Dataset from_tensors(Tensor<T> x, Tensor<T> y = {}) {
    auto b = std::make_shared<Batch<T>>(Batch<T>{std::move(x), std::move(y)});
    return from_indexed(1, [b](Index) { return std::optional<Batch<T>>(*b); });
  }
  /// One element per row of x (and y) (tf.data.Dataset.from_tensor_slices). y may be empty.
  static Dataset from_tensor_slices(Tensor<T> x, Tensor<T> y = {}) {
    if (x.rank() < 1) throw ShapeError("from_tensor_slices: x must have a first axis, got " + shape_str(x.shape()));
    if (!y.empty() && (y.rank() < 1 || y.dim(0) != x.dim(0)))
      throw ShapeError("from_tensor_slices: x " + shape_str(x.shape()) + " and y " + shape_str(y.shape()) +
                       " have different numbers of rows");
    auto b = std::make_shared<Batch<T>>(Batch<T>{std::move(x), std::move(y)});
    return from_indexed(b->x.dim(0), [b](Index i) {
      return std::optional<Batch<T>>(
          Batch<T>{detail::row_of(b->x, i), b->y.empty() ? Tensor<T>() : detail::row_of(b->y, i)});
    });
  }
  /// n items produced by read(i) (std::nullopt skips an item). The general source that
  /// image_dataset_from_directory uses; read must be thread-safe when opts.parallel is set.
  static Dataset from_indexed(Index n, std::function<std::optional<Batch<T>>(Index)> read, SourceOptions opts = {},
                              DatasetInfo info = {}) {
    if (n < 0) throw ValueError("Dataset: negative number of items");
    std::uint64_t seed = opts.seed ? *opts.seed : next_global_seed();
    return Dataset(std::make_shared<detail::SourceNode<T>>(n, std::move(read), std::move(opts), seed),
                   std::make_shared<DatasetInfo>(std::move(info)));
  }

  // ---- transformations -------------------------------------------------------------------------
  /// Applies fn to every element.
  Dataset map(std::function<Batch<T>(Batch<T>)> fn) const {
    if (!fn) throw ValueError("Dataset::map: empty function");
    Dataset d = map_random([fn](Batch<T> b, Random&) { return fn(std::move(b)); }, 0);
    auto info = std::make_shared<DatasetInfo>(*d.info_);
    info->randomized = info_->randomized;
    return Dataset(d.node(), info);
  }
  /// Applies fn(element, rng) with rng seeded from (seed, epoch, element index): random
  /// augmentation that is reproducible for a seed and different every epoch.
  Dataset map_random(std::function<Batch<T>(Batch<T>, Random&)> fn, std::optional<std::uint64_t> seed = {}) const {
    if (!fn) throw ValueError("Dataset::map_random: empty function");
    auto info = std::make_shared<DatasetInfo>(*info_);
    info->uint8_images = false;  // the function may change the value range
    info->randomized = true;
    return Dataset(std::make_shared<detail::MapNode<T>>(node(), std::move(fn), seed ? *seed : next_global_seed()),
                   info);
  }
  /// Stacks `batch_size` consecutive elements; the last batch may be smaller unless drop_remainder.
  Dataset batch(Index batch_size, bool drop_remainder = false) const {
    if (batch_size < 1) throw ValueError("Dataset::batch: batch_size must be >= 1, got " + std::to_string(batch_size));
    return derive(std::make_shared<detail::BatchNode<T>>(node(), batch_size, drop_remainder));
  }
  /// Splits batched elements into their rows.
  Dataset unbatch() const { return derive(std::make_shared<detail::UnbatchNode<T>>(node())); }
  /// tf.data's buffered shuffle (reshuffled every epoch). buffer_size >= cardinality: full shuffle.
  Dataset shuffle(Index buffer_size, std::optional<std::uint64_t> seed = {}) const {
    if (buffer_size < 1) throw ValueError("Dataset::shuffle: buffer_size must be >= 1");
    return derive(std::make_shared<detail::ShuffleNode<T>>(node(), buffer_size, seed ? *seed : next_global_seed()));
  }
  /// The first n elements.
  Dataset take(Index n) const { return derive(std::make_shared<detail::TakeNode<T>>(node(), std::max<Index>(n, 0))); }
  /// Keeps the elements of the first complete epoch in memory and replays them afterwards.
  /// Image datasets are stored as uint8 (see CacheStorage); an interrupted first epoch is not kept.
  Dataset cache(CacheStorage storage = CacheStorage::automatic) const {
    bool u8 = storage == CacheStorage::uint8 || (storage == CacheStorage::automatic && info_->uint8_images);
    return derive(std::make_shared<detail::CacheNode<T>>(node(), u8));
  }
  /// Produces up to n elements ahead on a background thread (which itself decodes in parallel).
  Dataset prefetch(Index n = 2) const { return derive(std::make_shared<detail::PrefetchNode<T>>(node(), n)); }
  /// tf.data's shard: the elements at positions index, index + num_shards, index + 2 num_shards, ...
  /// of every epoch (the shards of one epoch are disjoint and cover it). Through batch() and
  /// prefetch() the selection reaches the source, which then reads only its shard's items (image
  /// files decoded by one shard only); after other stages the others are read and dropped. Shard
  /// before any shuffle() or map_random() (the source's own shuffle is fine: every shard draws the
  /// same epoch order). A shard counts epochs with this dataset (begin() of either is the next).
  Dataset shard(Index num_shards, Index index) const {
    if (num_shards < 1) throw ValueError("Dataset::shard: num_shards must be >= 1, got " + std::to_string(num_shards));
    if (index < 0 || index >= num_shards)
      throw ValueError("Dataset::shard: index must be in [0, num_shards) = [0, " + std::to_string(num_shards) +
                       "), got " + std::to_string(index));
    if (num_shards == 1) return *this;
    Dataset d =
        derive(detail::filter_node<T>(node(), [num_shards, index](Index p) { return p % num_shards == index; }));
    d.epochs_ = epochs_;
    return d;
  }

  // ---- iteration -------------------------------------------------------------------------------
  /// Starts the next epoch (epochs count up from 0 per Dataset, shared by its copies).
  iterator begin() const { return begin(epochs_->fetch_add(1)); }
  /// Iterates epoch `epoch` explicitly (does not advance the counter).
  iterator begin(std::uint64_t epoch) const { return iterator(node(), epoch); }
  iterator end() const { return iterator(); }

  /// Number of elements when known (after batch(): number of batches).
  std::optional<Index> cardinality() const { return node()->cardinality(); }
  const std::vector<std::string>& class_names() const { return info_->class_names; }
  const std::vector<std::string>& file_paths() const { return info_->file_paths; }
  /// The class index of each file of file_paths() (empty without labels).
  const std::vector<int>& labels() const { return info_->labels; }
  /// Files skipped so far because they could not be decoded.
  std::vector<std::string> skipped_files() const {
    return info_->skipped ? info_->skipped->list() : std::vector<std::string>{};
  }
  const DatasetInfo& info() const { return *info_; }
  /// A copy with other metadata (same pipeline).
  Dataset with_info(DatasetInfo info) const { return Dataset(node(), std::make_shared<DatasetInfo>(std::move(info))); }
  bool valid() const { return static_cast<bool>(node_); }
  /// True when every epoch yields the same elements (up to order): no map_random stage.
  /// fit() may then cache the outputs of a model's frozen part.
  bool deterministic() const { return !info_->randomized; }
  /// The identity of this pipeline (copies of a Dataset share it): fit() uses it to recognise the
  /// same data in a later fit (FitOptions::keep_features_of).
  const void* identity() const { return node_.get(); }

 private:
  Dataset(detail::NodePtr<T> n, std::shared_ptr<const DatasetInfo> info)
      : node_(std::move(n)), info_(std::move(info)) {}
  const detail::NodePtr<T>& node() const {
    if (!node_) throw StateError("Dataset: empty dataset (default-constructed)");
    return node_;
  }
  Dataset derive(detail::NodePtr<T> n) const { return Dataset(std::move(n), info_); }

  detail::NodePtr<T> node_;
  std::shared_ptr<const DatasetInfo> info_ = std::make_shared<DatasetInfo>();
  std::shared_ptr<std::atomic<std::uint64_t>> epochs_ = std::make_shared<std::atomic<std::uint64_t>>(0);
};

}  // namespace keras::data
