// keras::Model<T>: a Functional model (a graph of layers) with Keras's training API:
// compile / fit / evaluate / predict / summary. A Model is also a Layer, so models nest.
#pragma once
#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>

#include "../callbacks/callback.hpp"
#include "../callbacks/progbar.hpp"
#include "../losses/losses.hpp"
#include "../metrics/metrics.hpp"
#include "../optimizers/optimizers.hpp"
#include "../data/dataset.hpp"
#include "functional.hpp"

namespace keras {

/// Arguments of fit() (Keras's names and defaults).
template <class T = float>
struct FitOptions {
  int epochs = 1;
  Index batch_size = 32;
  double validation_split = 0.0;  ///< fraction of the LAST samples (before shuffling) held out
  std::optional<std::pair<Tensor<T>, Tensor<T>>> validation_data;
  bool shuffle = true;
  std::optional<std::uint64_t> seed;  ///< shuffling seed; default draws from the global seed
  int verbose = 1;                    ///< 0 silent, 1 progress bar, 2 one line per epoch
  int initial_epoch = 0;
  Index steps_per_epoch = -1;  ///< datasets: batches per epoch (-1: one full pass)
  std::vector<std::shared_ptr<callbacks::Callback<T>>> callbacks;
  /// Compute the outputs of a frozen leading part (frozen layers or nested model) once per sample
  /// and train the rest on them (exact when the data are not augmented; see docs).
  bool cache_frozen = true;
  /// Upper bound for the cached features' memory; above it fit() runs uncached.
  double cache_max_bytes = 4.0 * (1 << 30);
  /// Samples per forward pass of the frozen part while caching (0: the batch size). Small chunks
  /// bound the memory of its activations (MobileNetV2 at 192x192: ~65 MB per sample).
  Index cache_batch_size = 8;
};

/// A source of (x, y) batches for one pass: in-memory tensors or (later) datasets.
template <class T>
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Index steps() const = 0;  ///< batches per epoch
  virtual void begin_epoch(int epoch) = 0;
  virtual bool next(Tensor<T>& x, Tensor<T>& y) = 0;
};

/// Batches of rows of in-memory tensors, optionally shuffled per epoch with a seed.
template <class T>
class TensorBatchSource : public BatchSource<T> {
 public:
  TensorBatchSource(const Tensor<T>& x, const Tensor<T>* y, Index begin, Index count, Index batch_size, bool shuffle,
                    std::uint64_t seed)
      : x_(x), y_(y), begin_(begin), count_(count), batch_(std::max<Index>(1, batch_size)), shuffle_(shuffle), seed_(seed) {}
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
  bool next(Tensor<T>& x, Tensor<T>& y) override {
    if (pos_ >= count_) return false;
    Index n = std::min(batch_, count_ - pos_);
    gather(x_, x, n);
    if (y_) gather(*y_, y, n);
    pos_ += n;
    return true;
  }

 private:
  const Tensor<T>& x_;
  const Tensor<T>* y_;
  Index begin_, count_, batch_;
  bool shuffle_;
  std::uint64_t seed_;
  std::vector<Index> order_;
  Index pos_ = 0;
  void gather(const Tensor<T>& src, Tensor<T>& dst, Index n) {
    Shape s = src.shape();
    Index row = src.size() / s[0];
    s[0] = n;
    dst.resize(s);
    for (Index i = 0; i < n; ++i)
      std::copy(src.data() + order_[pos_ + i] * row, src.data() + (order_[pos_ + i] + 1) * row, dst.data() + i * row);
  }
};

/// Batches of a data::Dataset (each element is one batch, as after .batch()).
template <class T>
class DatasetBatchSource : public BatchSource<T> {
 public:
  explicit DatasetBatchSource(data::Dataset<T> ds, Index max_steps = -1) : ds_(std::move(ds)), max_steps_(max_steps) {
    if (auto c = ds_.cardinality()) steps_ = *c;
    if (max_steps_ > 0) steps_ = steps_ > 0 ? std::min(steps_, max_steps_) : max_steps_;
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
  typename data::Dataset<T>::iterator it_;
  bool it_started_ = false;
};

namespace detail {
inline std::string with_commas(Index v) {
  std::string s = std::to_string(v), r;
  int c = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (c && c % 3 == 0 && *it != '-') r.insert(r.begin(), ',');
    r.insert(r.begin(), *it);
    ++c;
  }
  return r;
}
}  // namespace detail

template <class T = float>
class Model : public layers::Layer<T> {
 public:
  using Layer = layers::Layer<T>;
  std::string class_name() const override { return "Functional"; }
  std::shared_ptr<Layer> move_to_shared() override { return std::make_shared<Model>(std::move(*this)); }

  Model(const KerasTensor<T>& input, const KerasTensor<T>& output, const std::string& name = "")
      : Model(std::vector<KerasTensor<T>>{input}, std::vector<KerasTensor<T>>{output}, name) {}
  Model(const std::vector<KerasTensor<T>>& inputs, const std::vector<KerasTensor<T>>& outputs, const std::string& name = "")
      : Layer(name.empty() ? layers::detail::unique_name("model") : name), graph_(inputs, outputs) {
    mark_built_from_graph();
  }
  Model(Model&&) = default;

  // ---- structure ---------------------------------------------------------------------------
  /// The model's layers in order (Functional: InputLayers included; Sequential: excluded).
  virtual std::vector<std::shared_ptr<Layer>> layers() const { return graph_.layers(); }
  /// The layer with this name; throws ValueError listing none if absent.
  std::shared_ptr<Layer> get_layer(const std::string& name) const {
    for (auto& l : graph_.layers())
      if (l->name() == name) return l;
    throw ValueError("No such layer: " + name + " in model '" + this->name() + "'");
  }
  const Graph<T>& graph() const { return graph_; }
  Graph<T>& graph() { return graph_; }
  std::vector<Shape> input_shapes_of_graph() const {
    std::vector<Shape> r;
    for (int i : graph_.inputs()) r.push_back(graph_.nodes()[i].shape);
    return r;
  }

  // ---- Layer interface (a model inside a model) ----------------------------------------------
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    auto mine = input_shapes_of_graph();
    if (in.size() != mine.size())
      throw ShapeError("model '" + this->name() + "' expects " + std::to_string(mine.size()) + " input(s), got " + std::to_string(in.size()));
    for (std::size_t i = 0; i < in.size(); ++i)
      if (!shapes_compatible(in[i], mine[i]))
        throw ShapeError("model '" + this->name() + "': expected input shape " + shape_str(mine[i]) + ", got " + shape_str(in[i]));
    if (graph_.outputs().size() != 1) throw ValueError("model '" + this->name() + "' has several outputs and cannot be used as a layer");
    return graph_.nodes()[graph_.outputs()[0]].shape;
  }
  void forward(const typename Layer::Inputs& in, Tensor<T>& out, bool training) override {
    graph_.forward(in, training);
    out = graph_.output();
  }
  void backward(const typename Layer::Inputs& in, const Tensor<T>& out, const Tensor<T>& dy,
                const typename Layer::GradInputs& dx) override {
    graph_.backward({&dy}, dx);
  }
  bool multiple_inputs() const override { return graph_.inputs().size() > 1; }
  bool cacheable() const override {
    for (auto& l : graph_.layers())
      if (!l->cacheable()) return false;
    return true;
  }
  std::vector<Variable<T>*> variables() override {
    std::vector<Variable<T>*> r;
    for (auto& l : layers())
      for (auto* v : l->variables()) r.push_back(v);
    return r;
  }
  std::vector<Variable<T>*> trainable_variables() override {
    std::vector<Variable<T>*> r;
    if (!this->trainable()) return r;
    for (auto& l : layers())
      for (auto* v : l->trainable_variables()) r.push_back(v);
    return r;
  }
  /// As Keras: setting trainable on a model sets it on every layer inside, recursively.
  void set_trainable(bool t) override {
    Layer::set_trainable(t);
    for (auto& l : layers()) l->set_trainable(t);
  }
  /// Keras's Functional config: layers with inbound_nodes, input_layers, output_layers.
  json get_config() const override {
    json layers_json = json::array();
    auto& nodes = graph_.nodes();
    for (auto& n : nodes) {
      json inbound = json::array();
      if (!n.inputs.empty()) {
        json call = json::array();
        for (int j : n.inputs) call.push_back(json::array({nodes[j].layer->name(), 0, 0, json::object()}));
        inbound.push_back(call);
      }
      layers_json.push_back(json{{"class_name", n.layer->class_name()}, {"config", n.layer->get_config()},
                                 {"name", n.layer->name()}, {"inbound_nodes", inbound}});
    }
    json ins = json::array(), outs = json::array();
    for (int i : graph_.inputs()) ins.push_back(json::array({nodes[i].layer->name(), 0, 0}));
    for (int o : graph_.outputs()) outs.push_back(json::array({nodes[o].layer->name(), 0, 0}));
    return json{{"name", this->name()}, {"trainable", this->trainable()}, {"layers", layers_json}, {"input_layers", ins}, {"output_layers", outs}};
  }

  // ---- training ----------------------------------------------------------------------------
  void compile(std::shared_ptr<optimizers::Optimizer<T>> optimizer, std::shared_ptr<losses::Loss<T>> loss,
               const std::vector<std::string>& metrics = {}) {
    if (!optimizer) throw ValueError("compile: optimizer is null");
    if (!loss) throw ValueError("compile: loss is null");
    optimizer_ = std::move(optimizer);
    loss_ = std::move(loss);
    metric_names_ = metrics;
    compiled_ = true;
  }
  /// compile("adam", "categorical_crossentropy", {"accuracy"}) with Keras's names.
  void compile(const std::string& optimizer, const std::string& loss, const std::vector<std::string>& metrics = {}) {
    compile(optimizers::get<T>(optimizer), losses::get<T>(loss), metrics);
  }
  template <class O, class L, class = std::enable_if_t<std::is_base_of_v<optimizers::Optimizer<T>, O> && std::is_base_of_v<losses::Loss<T>, L>>>
  void compile(O optimizer, L loss, const std::vector<std::string>& metrics = {}) {
    compile(std::make_shared<O>(std::move(optimizer)), std::make_shared<L>(std::move(loss)), metrics);
  }
  bool compiled() const { return compiled_; }
  optimizers::Optimizer<T>& optimizer() {
    require_compiled("optimizer");
    return *optimizer_;
  }
  losses::Loss<T>& loss() {
    require_compiled("loss");
    return *loss_;
  }
  bool stop_training = false;
  /// User metadata saved with the model (TF.js userDefinedMetadata), e.g. {"class_names": [...]}.
  json metadata;

  /// One optimizer step on one batch; returns the batch loss.
  double train_on_batch(const Tensor<T>& x, const Tensor<T>& y) {
    require_compiled("train_on_batch");
    if (cache_cut_ >= 0) {
      graph_.forward_from(cache_cut_, x, true);
    } else {
      ensure_built(x.shape());
      check_batch(x, y, "train_on_batch");
      graph_.forward({&x}, true);
    }
    const Tensor<T>& pred = graph_.output();
    double l = loss_->compute(y, pred, &dpred_);
    auto vars = trainable_variables();
    for (auto* v : vars) v->grad.setZero();
    graph_.backward({&dpred_}, {});
    optimizer_->apply_gradients(vars);
    last_pred_ = &pred;
    return l;
  }

  History fit(const Tensor<T>& x, const Tensor<T>& y, FitOptions<T> o = {}) {
    require_compiled("fit");
    ensure_built(x.shape());
    check_batch(x, y, "fit");
    if (o.validation_split < 0 || o.validation_split >= 1)
      throw ValueError("fit: validation_split must be in [0, 1), got " + std::to_string(o.validation_split));
    Index n = x.dim(0);
    Index n_val = o.validation_data ? 0 : static_cast<Index>(static_cast<double>(n) * o.validation_split);
    Index n_train = n - n_val;
    if (n_train <= 0) throw ValueError("fit: no training samples left after validation_split");
    std::uint64_t seed = o.seed ? *o.seed : next_global_seed();
    const Tensor<T>* vx = o.validation_data ? &o.validation_data->first : n_val > 0 ? &x : nullptr;
    const Tensor<T>* vy = o.validation_data ? &o.validation_data->second : n_val > 0 ? &y : nullptr;
    if (o.validation_data) check_batch(*vx, *vy, "fit(validation_data)");
    Index v_begin = o.validation_data ? 0 : n_train, v_count = vx ? (o.validation_data ? vx->dim(0) : n_val) : 0;
    int cut = o.cache_frozen ? graph_.frozen_prefix_end() : -1;
    if (cut >= 0) {
      // Same batches and order as the uncached run: features in sample order, same shuffling seed.
      TensorBatchSource<T> plain(x, &y, 0, n_train, o.batch_size, false, 0);
      TensorBatchSource<T> vplain(vx ? *vx : x, vy, v_begin, v_count, o.batch_size, false, 0);
      FeatureCache fc;
      if (build_cache(cut, plain, vx ? &vplain : nullptr, o, fc)) {
        TensorBatchSource<T> train(fc.x, &fc.y, 0, fc.x.dim(0), o.batch_size, o.shuffle, seed);
        TensorBatchSource<T> val(fc.vx, &fc.vy, 0, vx ? fc.vx.dim(0) : 0, o.batch_size, false, 0);
        return run_cached(cut, train, vx ? &val : nullptr, o);
      }
    }
    TensorBatchSource<T> train(x, &y, 0, n_train, o.batch_size, o.shuffle, seed);
    std::unique_ptr<TensorBatchSource<T>> val;
    if (vx) val = std::make_unique<TensorBatchSource<T>>(*vx, vy, v_begin, v_count, o.batch_size, false, 0);
    return fit_sources(train, val.get(), o);
  }

  /// fit on a dataset of (x, y) batches, e.g. from utils::image_dataset_from_directory.
  /// Frozen-part caching applies when the dataset is deterministic (no random augmentation):
  /// the features of one pass are computed once, then shuffled per epoch with o.seed.
  History fit(const data::Dataset<T>& ds, FitOptions<T> o = {}, std::optional<data::Dataset<T>> validation = std::nullopt) {
    const Index steps_per_epoch = o.steps_per_epoch;
    require_compiled("fit");
    if (o.validation_split > 0) throw ValueError("fit: validation_split is not supported for datasets; pass validation data");
    int cut = o.cache_frozen && steps_per_epoch <= 0 && ds.deterministic() && (!validation || validation->deterministic())
                  ? graph_.frozen_prefix_end() : -1;
    DatasetBatchSource<T> train(ds, steps_per_epoch);
    std::unique_ptr<DatasetBatchSource<T>> val;
    if (validation) val = std::make_unique<DatasetBatchSource<T>>(*validation);
    if (cut >= 0) {
      FeatureCache fc;
      if (build_cache(cut, train, val.get(), o, fc)) {
        Index bs = std::max<Index>(1, fc.batch);
        std::uint64_t seed = o.seed ? *o.seed : next_global_seed();
        TensorBatchSource<T> ctrain(fc.x, &fc.y, 0, fc.x.dim(0), bs, o.shuffle, seed);
        TensorBatchSource<T> cval(fc.vx, &fc.vy, 0, val ? fc.vx.dim(0) : 0, bs, false, 0);
        return run_cached(cut, ctrain, val ? &cval : nullptr, o);
      }
    }
    return fit_sources(train, val.get(), o);
  }
  Logs evaluate(const data::Dataset<T>& ds) {
    require_compiled("evaluate");
    DatasetBatchSource<T> src(ds);
    return evaluate_source(src);
  }
  Tensor<T> predict(const data::Dataset<T>& ds) {
    DatasetBatchSource<T> src(ds);
    return predict_source(src);
  }

  /// Outputs of the frozen leading part for a whole pass of a source (features and targets).
  struct FeatureCache {
    Tensor<T> x, y, vx, vy;
    Index batch = 0;  ///< size of the first training batch
  };
  /// Fills the cache; false (and fit runs uncached) if the features would exceed cache_max_bytes.
  bool build_cache(int cut, BatchSource<T>& train, BatchSource<T>* val, const FitOptions<T>& o, FeatureCache& fc) {
    Shape fs = graph_.nodes()[cut].shape;
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
        // The frozen part runs on chunks of at most cache_batch_size samples: its activation
        // buffers (kept for reuse) then stay small whatever the training batch size.
        const Index chunk = o.cache_batch_size > 0 ? o.cache_batch_size : xb.dim(0);
        if (xb.dim(0) <= chunk) {
          xs.push_back(graph_.forward_until(cut, xb));
        } else {
          Shape cs = xb.shape();
          const Index row = xb.size() / xb.dim(0);
          Tensor<T> part;
          for (Index b0 = 0; b0 < xb.dim(0); b0 += chunk) {
            cs[0] = std::min(chunk, xb.dim(0) - b0);
            part.resize(cs);
            std::copy(xb.data() + b0 * row, xb.data() + (b0 + cs[0]) * row, part.data());
            xs.push_back(graph_.forward_until(cut, part));
          }
        }
        ys.push_back(yb);
        bytes += per_sample * static_cast<double>(xb.dim(0));
        if (bytes > o.cache_max_bytes) return false;
      }
      fx = concat_rows(xs);
      fy = concat_rows(ys);
      return true;
    };
    if (!collect(train, fc.x, fc.y)) return false;
    if (val && !collect(*val, fc.vx, fc.vy)) return false;
    if (o.verbose) {
      double mb = per_sample * static_cast<double>(fc.x.dim(0) + (val ? fc.vx.dim(0) : 0)) / (1 << 20);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      char buf[64];
      std::snprintf(buf, sizeof buf, " (%.1f MB) in %.1fs", mb, secs);
      std::cout << "Cached the outputs of the frozen layers up to '" << graph_.nodes()[cut].layer->name() << "' " << shape_str(fs)
                << " for " << fc.x.dim(0) + (val ? fc.vx.dim(0) : 0) << " samples" << buf << "; training the rest on them.\n"
                << std::flush;
    }
    return true;
  }
  /// fit_sources on cached features: the graph runs from node `cut` on.
  History run_cached(int cut, BatchSource<T>& train, BatchSource<T>* val, const FitOptions<T>& o) {
    cache_cut_ = cut;
    try {
      History h = fit_sources(train, val, o);
      cache_cut_ = -1;
      return h;
    } catch (...) {
      cache_cut_ = -1;
      throw;
    }
  }

  /// The training loop over batch sources (tensors or datasets).
  History fit_sources(BatchSource<T>& train, BatchSource<T>* val, const FitOptions<T>& o) {
    History h;
    auto cbs = o.callbacks;
    if (o.verbose) cbs.insert(cbs.begin(), std::make_shared<callbacks::ProgbarLogger<T>>(std::cout, o.verbose == 2 ? std::optional<bool>(false) : std::nullopt));
    std::map<std::string, double> params{{"epochs", o.epochs}, {"steps", static_cast<double>(train.steps())}, {"verbose", o.verbose}};
    for (auto& cb : cbs) {
      cb->set_model(this);
      cb->set_params(params);
    }
    stop_training = false;
    Logs empty;
    for (auto& cb : cbs) cb->on_train_begin(empty);
    auto ms = make_metrics();
    metrics::Mean<T> loss_mean;
    Tensor<T> xb, yb;
    for (int epoch = o.initial_epoch; epoch < o.epochs && !stop_training; ++epoch) {
      for (auto& cb : cbs) cb->on_epoch_begin(epoch, empty);
      loss_mean.reset_state();
      for (auto& m : ms) m->reset_state();
      train.begin_epoch(epoch);
      int step = 0;
      Logs logs;
      while (train.next(xb, yb)) {
        for (auto& cb : cbs) cb->on_train_batch_begin(step, empty);
        double l = train_on_batch(xb, yb);
        loss_mean.update_state(l, static_cast<double>(xb.dim(0)));
        for (auto& m : ms) m->update_state(yb, *last_pred_);
        logs = current_logs(loss_mean, ms, "");
        for (auto& cb : cbs) cb->on_train_batch_end(step, logs);
        ++step;
        if (stop_training) break;
      }
      if (val) {
        Logs vl = evaluate_source(*val);
        for (auto& [k, v] : vl) logs["val_" + k] = v;
      }
      for (auto& cb : cbs) cb->on_epoch_end(epoch, logs);
      h.epoch.push_back(epoch);
      for (auto& [k, v] : logs) h.history[k].push_back(v);
    }
    for (auto& cb : cbs) cb->on_train_end(empty);
    return h;
  }

  /// Loss and metrics over x, y (Keras's evaluate(..., return_dict=True)).
  Logs evaluate(const Tensor<T>& x, const Tensor<T>& y, Index batch_size = 32) {
    require_compiled("evaluate");
    ensure_built(x.shape());
    check_batch(x, y, "evaluate");
    TensorBatchSource<T> src(x, &y, 0, x.dim(0), batch_size, false, 0);
    return evaluate_source(src);
  }
  Logs evaluate_source(BatchSource<T>& src) {
    auto ms = make_metrics();
    metrics::Mean<T> loss_mean;
    Tensor<T> xb, yb;
    src.begin_epoch(0);
    while (src.next(xb, yb)) {
      if (cache_cut_ >= 0) {
        graph_.forward_from(cache_cut_, xb, false);
      } else {
        ensure_built(xb.shape());
        graph_.forward({&xb}, false);
      }
      const Tensor<T>& pred = graph_.output();
      if (!shapes_compatible(yb.shape(), pred.shape()) && !loss_->accepts_sparse_labels())
        throw ShapeError("evaluate: targets of shape " + shape_str(yb.shape()) + " do not match model output " + shape_str(pred.shape()));
      loss_mean.update_state(loss_->compute(yb, pred, nullptr), static_cast<double>(xb.dim(0)));
      for (auto& m : ms) m->update_state(yb, pred);
    }
    return current_logs(loss_mean, ms, "");
  }

  /// Model outputs for x, computed in batches in inference mode.
  Tensor<T> predict(const Tensor<T>& x, Index batch_size = 32) {
    if (!this->built() || graph_.empty())
      throw StateError("predict: model '" + this->name() + "' is not built yet (give it an input shape or call build())");
    check_input(x.shape(), "predict");
    TensorBatchSource<T> src(x, nullptr, 0, x.dim(0), batch_size, false, 0);
    return predict_source(src);
  }
  Tensor<T> predict_source(BatchSource<T>& src) {
    Tensor<T> xb, yb;
    src.begin_epoch(0);
    std::vector<Tensor<T>> parts;
    while (src.next(xb, yb)) {
      ensure_built(xb.shape());
      graph_.forward({&xb}, false);
      parts.push_back(graph_.output());
    }
    if (parts.empty()) throw ValueError("predict: no input samples");
    return concat_rows(parts);
  }
  /// One forward pass in inference mode (Keras's model(x)).
  const Tensor<T>& operator()(const Tensor<T>& x, bool training = false) {
    ensure_built(x.shape());
    check_input(x.shape(), "call");
    graph_.forward({&x}, training);
    return graph_.output();
  }
  using Layer::operator();

  // ---- summary -----------------------------------------------------------------------------
  /// Keras's model.summary() table.
  std::string summary_string() const {
    if (!this->built()) throw StateError("summary: model '" + this->name() + "' is not built yet");
    const bool functional = !is_sequential();
    std::vector<int> widths = functional ? std::vector<int>{32, 21, 12, 33} : std::vector<int>{29, 26, 10};
    int total_w = 0;
    for (int w : widths) total_w += w;
    std::ostringstream os;
    auto row = [&](const std::vector<std::string>& cells) {
      std::string line;
      for (std::size_t i = 0; i < cells.size(); ++i) {
        std::string c = " " + cells[i];
        if (static_cast<int>(c.size()) > widths[i] - 1 && i + 1 < cells.size()) c = c.substr(0, widths[i] - 1);
        line += c + std::string(std::max<int>(0, widths[i] - static_cast<int>(c.size())), ' ');
      }
      os << line << "\n";
    };
    os << "Model: \"" << this->name() << "\"\n" << std::string(total_w, '_') << "\n";
    if (functional) row({"Layer (type)", "Output Shape", "Param #", "Connected to"});
    else row({"Layer (type)", "Output Shape", "Param #"});
    os << std::string(total_w, '=') << "\n";
    auto& nodes = graph_.nodes();
    bool first = true;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      auto& n = nodes[i];
      if (!functional && n.input_index >= 0) continue;
      if (!first) os << std::string(total_w, ' ') << "\n";
      first = false;
      std::string label = n.layer->name() + " (" + n.layer->class_name() + ")";
      std::string params = detail::with_commas(n.layer->count_params());
      if (functional) {
        std::string conn;
        for (int j : n.inputs) conn += (conn.empty() ? "" : ", ") + nodes[j].layer->name() + "[0][0]";
        row({label, shape_str(n.shape), params, "[" + conn + "]"});
      } else {
        row({label, shape_str(n.shape), params});
      }
    }
    auto self = const_cast<Model*>(this);
    Index total = this->count_params(), trainable = 0;
    for (auto* v : self->trainable_variables()) trainable += v->value.size();
    os << std::string(total_w, '=') << "\n";
    os << "Total params: " << detail::with_commas(total) << "\n";
    os << "Trainable params: " << detail::with_commas(trainable) << "\n";
    os << "Non-trainable params: " << detail::with_commas(total - trainable) << "\n";
    os << std::string(total_w, '_') << "\n";
    return os.str();
  }
  void summary(std::ostream& os = std::cout) const { os << summary_string(); }

 protected:
  explicit Model(const std::string& name) : Layer(name) {}
  Graph<T> graph_;

  virtual bool is_sequential() const { return false; }
  /// Sequential builds lazily from the first data it sees; a Functional model is always built.
  virtual void ensure_built(const Shape& x_shape) {
    if (!this->built()) throw StateError("model '" + this->name() + "' is not built");
  }
  void mark_built_from_graph() {
    std::vector<Shape> outs;
    for (int o : graph_.outputs()) outs.push_back(graph_.nodes()[o].shape);
    this->mark_built(input_shapes_of_graph(), outs.empty() ? Shape{} : outs[0]);
  }

 private:
  std::shared_ptr<optimizers::Optimizer<T>> optimizer_;
  std::shared_ptr<losses::Loss<T>> loss_;
  std::vector<std::string> metric_names_;
  bool compiled_ = false;
  Tensor<T> dpred_;
  const Tensor<T>* last_pred_ = nullptr;
  int cache_cut_ = -1;  ///< >= 0 while fit() trains on cached features of this node

  static Tensor<T> concat_rows(const std::vector<Tensor<T>>& parts) {
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

  void require_compiled(const char* what) const {
    if (!compiled_) throw StateError(std::string(what) + ": you must compile model '" + this->name() + "' first (model.compile(...))");
  }
  void check_input(const Shape& s, const char* what) const {
    auto mine = input_shapes_of_graph();
    if (mine.size() != 1) throw ValueError(std::string(what) + ": model '" + this->name() + "' has several inputs");
    if (!shapes_compatible(s, mine[0]))
      throw ShapeError(std::string(what) + ": model '" + this->name() + "' expects input shape " + shape_str(mine[0]) + ", got " +
                       shape_str(s));
  }
  void check_batch(const Tensor<T>& x, const Tensor<T>& y, const char* what) const {
    check_input(x.shape(), what);
    if (y.rank() == 0 || x.dim(0) != y.dim(0))
      throw ShapeError(std::string(what) + ": x and y have different numbers of samples: x " + shape_str(x.shape()) + ", y " +
                       shape_str(y.shape()));
    Shape out = this->output_shape();
    if (!loss_->accepts_sparse_labels() && !shapes_compatible(y.shape(), out))
      throw ShapeError(std::string(what) + ": targets of shape " + shape_str(y.shape()) + " do not match the output of model '" +
                       this->name() + "' " + shape_str(out) + " (loss " + loss_->name() + ")");
  }
  std::vector<std::unique_ptr<metrics::Metric<T>>> make_metrics() const {
    std::vector<std::unique_ptr<metrics::Metric<T>>> ms;
    for (auto& n : metric_names_) ms.push_back(metrics::get<T>(n, loss_->name(), this->output_shape()));
    return ms;
  }
  static Logs current_logs(const metrics::Mean<T>& loss_mean, const std::vector<std::unique_ptr<metrics::Metric<T>>>& ms,
                           const std::string& prefix) {
    Logs l;
    l[prefix + "loss"] = loss_mean.result();
    for (auto& m : ms) l[prefix + m->name()] = m->result();
    return l;
  }

};

}  // namespace keras
