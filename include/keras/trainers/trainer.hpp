// The trainer: what compile() sets (optimizer, loss, metrics) and the loops of fit, evaluate and
// predict over batch sources (trainers/data_adapters.hpp), with callbacks (trainers/callback.hpp)
// and the frozen-feature cache (trainers/feature_cache.hpp). Model keeps Keras's public face and
// delegates here; the trainer reaches the model through its public API (graph(), variables, name).
#pragma once
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <unordered_set>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "../layers/layer.hpp"
#include "../losses/losses.hpp"
#include "../metrics/metrics.hpp"
#include "../optimizers/optimizers.hpp"
#include "callback.hpp"
#include "data_adapters.hpp"
#include "distribution.hpp"
#include "feature_cache.hpp"
#include "progbar.hpp"
#include "sample_weights.hpp"

namespace keras {

/// fit()'s validation_data, as Keras's: a pair (x_val, y_val) of tensors, or a dataset of
/// (x, y) batches. `.validation_data = {x_val, y_val}` or `.validation_data = val_ds`.
template <class T = float>
class ValidationData {
 public:
  ValidationData() = default;
  ValidationData(std::nullopt_t) {}  // NOLINT
  ValidationData(Tensor<T> x, Tensor<T> y) : xy_(std::make_pair(std::move(x), std::move(y))) {}
  ValidationData(std::pair<Tensor<T>, Tensor<T>> xy) : xy_(std::move(xy)) {}  // NOLINT
  ValidationData(data::Dataset<T> ds) : ds_(std::move(ds)) {}                 // NOLINT
  explicit operator bool() const { return xy_ || ds_; }
  bool is_dataset() const { return ds_.has_value(); }
  bool is_tensors() const { return xy_.has_value(); }
  const Tensor<T>& x() const { return tensors("x").first; }
  const Tensor<T>& y() const { return tensors("y").second; }
  const data::Dataset<T>& dataset() const {
    if (!ds_) throw StateError("validation_data holds " + std::string(xy_ ? "tensors" : "nothing") + ", not a dataset");
    return *ds_;
  }

 private:
  std::optional<std::pair<Tensor<T>, Tensor<T>>> xy_;
  std::optional<data::Dataset<T>> ds_;
  const std::pair<Tensor<T>, Tensor<T>>& tensors(const char* what) const {
    if (!xy_)
      throw StateError(std::string("validation_data.") + what + "(): it holds " + (ds_ ? "a dataset" : "nothing") +
                       ", not tensors");
    return *xy_;
  }
};

/// Arguments of fit() (Keras's names and defaults).
template <class T = float>
struct FitOptions {
  int epochs = 1;
  Index batch_size = 32;
  double validation_split = 0.0;      ///< fraction of the LAST samples (before shuffling) held out
  ValidationData<T> validation_data;  ///< {x_val, y_val} or a dataset; replaces validation_split
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
  /// The name of a layer inside the frozen part (it may be inside a nested model): fit() keeps its
  /// outputs for every training and validation sample (each RandomFlip outcome) after it returns.
  /// A later fit on the same datasets (or tensors) whose frozen part reaches that layer, with the
  /// layers below it unchanged, computes its cache from them instead of from the inputs: a
  /// fine-tuning stage that unfreezes the layers above it then skips the frozen pass. A fit that
  /// leaves this empty uses what an earlier fit kept and then lets it go (its memory is freed
  /// when that fit returns).
  std::string keep_features_of;
  /// Keras's class_weight: {class index: weight}, each training sample weighted by its class
  /// (trainers/sample_weights.hpp); not with sample_weight.
  std::map<int, double> class_weight;
  /// Keras's sample_weight: one weight per sample of x, shape (samples,) (fit on tensors). The
  /// training loss is mean(w * loss); the validation_split part weighs the validation loss.
  Tensor<T> sample_weight;
};

/// Arguments of evaluate() on tensors (Keras's names and defaults: verbose "auto" is 1).
template <class T = float>
struct EvaluateOptions {
  Index batch_size = 32;
  int verbose = 1;          ///< 0 silent, 1 progress bar, 2 one line
  Tensor<T> sample_weight;  ///< one weight per sample: the loss is mean(w * loss) (metrics unweighted)
  std::vector<std::shared_ptr<callbacks::Callback<T>>>
      callbacks;  ///< get on_test_begin / _batch_begin / _batch_end / _end
};

/// Arguments of predict() on tensors (Keras's names and defaults).
template <class T = float>
struct PredictOptions {
  Index batch_size = 32;
  int verbose = 1;
  std::vector<std::shared_ptr<callbacks::Callback<T>>>
      callbacks;  ///< get on_predict_begin / _batch_begin / _batch_end / _end
};

namespace trainers {

/// The callbacks of evaluate() and predict(): Keras's progress bar when verbose (1: bar, 2: one line).
template <class T>
callbacks::CallbackList<T> progress_callbacks(int verbose, Index steps) {
  callbacks::CallbackList<T> cbs;
  if (verbose) {
    cbs.prepend(std::make_shared<callbacks::ProgbarLogger<T>>(std::cout, std::nullopt, verbose));
    cbs.set_params({{"steps", static_cast<double>(steps)}, {"verbose", static_cast<double>(verbose)}});
  }
  return cbs;
}

template <class T>
class Trainer {
 public:
  using ModelT = Model<T>;

  // ---- compile -----------------------------------------------------------------------------
  void compile(std::shared_ptr<optimizers::Optimizer<T>> optimizer, std::shared_ptr<losses::Loss<T>> loss,
               const std::vector<std::string>& metrics) {
    if (!optimizer) throw ValueError("compile: optimizer is null");
    if (!loss) throw ValueError("compile: loss is null");
    optimizer_ = std::move(optimizer);
    loss_ = std::move(loss);
    output_losses_.clear();
    loss_weights_.clear();
    metric_names_ = metrics;
    compiled_ = true;
    logits_twin_.reset();  // made again for the new loss on first use
    twin_of_ = nullptr;
  }
  /// Keras's compile(loss=[...], loss_weights=[...]): one loss per output, in the order of the
  /// model's outputs (Model::compile resolves a {name: loss} dict to this order). The total loss is
  /// sum_k loss_weights[k] * loss_k (empty weights: all 1); "<output>_loss" logs loss_k unweighted.
  void compile(std::shared_ptr<optimizers::Optimizer<T>> optimizer,
               std::vector<std::shared_ptr<losses::Loss<T>>> per_output, const std::vector<std::string>& metrics,
               std::vector<double> loss_weights) {
    if (per_output.empty()) throw ValueError("compile: the list of losses is empty");
    for (auto& l : per_output)
      if (!l) throw ValueError("compile: a loss of the list is null");
    if (!loss_weights.empty() && loss_weights.size() != per_output.size())
      throw ValueError("compile: " + std::to_string(loss_weights.size()) + " loss_weights for " +
                       std::to_string(per_output.size()) + " losses");
    compile(std::move(optimizer), per_output[0], metrics);
    output_losses_ = std::move(per_output);
    loss_weights_ = std::move(loss_weights);
  }
  bool compiled() const { return compiled_; }
  /// The loss of output k and its weight in the total.
  const losses::Loss<T>& output_loss(std::size_t k) const {
    return output_losses_.empty() ? *loss_ : *output_losses_.at(k);
  }
  double loss_weight(std::size_t k) const { return loss_weights_.empty() ? 1.0 : loss_weights_.at(k); }
  /// How many losses compile() was given (0: one loss for every output).
  std::size_t output_loss_count() const { return output_losses_.size(); }
  /// Keras's training config, as TF.js writes it in model.json ("trainingConfig"): loss (the Keras
  /// function name, which TF.js reads), metrics and optimizer_config {class_name, config}; plus
  /// loss_config {class_name, config} with the loss's arguments (from_logits, label_smoothing).
  /// null when not compiled.
  json training_config() const {
    if (!compiled_) return nullptr;
    json metrics = json::array();
    for (auto& n : metric_names_) metrics.push_back(n);
    if (!output_losses_.empty()) {  // Keras's loss list (and loss_weights), one per output
      json names = json::array(), configs = json::array();
      for (auto& l : output_losses_) {
        names.push_back(layers::detail::snake_case(l->class_name()));
        configs.push_back({{"class_name", l->class_name()}, {"config", l->get_config()}});
      }
      json tc{{"loss", names},
              {"loss_config", configs},
              {"metrics", metrics},
              {"optimizer_config", {{"class_name", optimizer_->class_name()}, {"config", optimizer_->get_config()}}}};
      tc["loss_weights"] = loss_weights_.empty() ? json(nullptr) : json(loss_weights_);
      return tc;
    }
    return json{{"loss", layers::detail::snake_case(loss_->class_name())},
                {"loss_config", {{"class_name", loss_->class_name()}, {"config", loss_->get_config()}}},
                {"metrics", metrics},
                {"optimizer_config", {{"class_name", optimizer_->class_name()}, {"config", optimizer_->get_config()}}}};
  }
  /// compile() from a training config (ours or one TF.js/Keras wrote); throws ValueError naming
  /// what it cannot read.
  void compile_from_config(const json& tc) {
    if (!tc.is_object()) throw ValueError("trainingConfig must be an object, got " + tc.dump());
    if (!tc.contains("optimizer_config")) throw ValueError("trainingConfig has no optimizer_config");
    if (!tc.contains("loss_config") && !tc.contains("loss")) throw ValueError("trainingConfig has no loss");
    const json& lc = tc.contains("loss_config") ? tc["loss_config"] : tc["loss"];
    std::vector<std::string> metrics;
    if (tc.contains("metrics") && tc["metrics"].is_array())
      for (auto& m : tc["metrics"]) {
        if (!m.is_string()) throw ValueError("trainingConfig: metrics must be names, got " + m.dump());
        metrics.push_back(m.get<std::string>());
      }
    if (lc.is_array()) {  // one loss per output (Model::compile_from_config turns a dict into this list)
      std::vector<std::shared_ptr<losses::Loss<T>>> per_output;
      for (auto& l : lc) per_output.push_back(losses::from_config<T>(l));
      std::vector<double> weights;
      if (tc.contains("loss_weights") && tc["loss_weights"].is_array())
        for (auto& w : tc["loss_weights"]) {
          if (!w.is_number()) throw ValueError("trainingConfig: loss_weights must be numbers, got " + w.dump());
          weights.push_back(w.get<double>());
        }
      compile(optimizers::from_config<T>(tc["optimizer_config"]), std::move(per_output), metrics, std::move(weights));
      return;
    }
    compile(optimizers::from_config<T>(tc["optimizer_config"]), losses::from_config<T>(lc), metrics);
  }
  optimizers::Optimizer<T>& optimizer(const ModelT& m) const {
    require_compiled(m, "optimizer");
    return *optimizer_;
  }
  losses::Loss<T>& loss(const ModelT& m) const {
    require_compiled(m, "loss");
    return *loss_;
  }

  // ---- one step ----------------------------------------------------------------------------
  /// One optimizer step on one batch; returns the batch loss.
  double train_on_batch(ModelT& m, const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>* sample_weight = nullptr) {
    const double l = compute_gradients(m, x, y, sample_weight);
    optimizer_->apply_gradients(m.trainable_variables());
    return l;
  }
  /// The batch loss (weighted: mean(w * loss)), with the gradients of the trainable variables in their grad.
  double compute_gradients(ModelT& m, const Tensor<T>& x, const Tensor<T>& y,
                           const Tensor<T>* sample_weight = nullptr) {
    require_compiled(m, "train_on_batch");
    auto& graph = graph_of(m);
    if (cache_cut_ < 0) {
      m.ensure_built(x.shape());
      check_batch(m, x, y, "train_on_batch");
    }
    const losses::Loss<T>* on_logits = logits_loss(graph);
    if (cache_cut_ >= 0)
      graph.forward_from(cache_cut_, x, true, on_logits != nullptr);
    else
      graph.forward({&x}, true, on_logits != nullptr);
    const Tensor<T>& pred = graph.output();
    const losses::Loss<T>& lf = on_logits ? *on_logits : *loss_;
    const Tensor<T>& lp = on_logits ? *graph.output_logits() : pred;
    const double l =
        sample_weight ? weighted_loss(lf, y, lp, *sample_weight, &dpred_, weight_rows_) : lf.compute(y, lp, &dpred_);
    auto vars = m.trainable_variables();
    for (auto* v : vars) v->grad.setZero();
    if (on_logits)
      graph.backward_from_logits(dpred_);
    else
      graph.backward({&dpred_}, {});
    last_pred_ = &pred;
    return l;
  }

  // ---- data parallelism (trainers/distribution.hpp) ------------------------------------------
  /// fit, evaluate and predict run data-parallel over these replicas (nullptr: this process alone).
  void set_distribution(std::shared_ptr<Distribution<T>> d) { dist_ = std::move(d); }
  const std::shared_ptr<Distribution<T>>& distribution() const { return dist_; }

  // ---- fit ---------------------------------------------------------------------------------
  History fit(ModelT& m, const Tensor<T>& x, const Tensor<T>& y, const FitOptions<T>& o) {
    require_compiled(m, "fit");
    m.ensure_built(x.shape());
    check_batch(m, x, y, "fit");
    if (o.validation_split < 0 || o.validation_split >= 1)
      throw ValueError("fit: validation_split must be in [0, 1), got " + std::to_string(o.validation_split));
    const ValidationData<T>& vd = o.validation_data;
    Index n = x.dim(0);
    Index n_val = vd ? 0 : static_cast<Index>(static_cast<double>(n) * o.validation_split);
    Index n_train = n - n_val;
    if (n_train <= 0) throw ValueError("fit: no training samples left after validation_split");
    const Tensor<T>* sw = o.sample_weight.empty() ? nullptr : &o.sample_weight;
    if (sw) {
      if (!o.class_weight.empty())
        throw ValueError("fit: You cannot `class_weight` and `sample_weight` at the same time.");
      check_sample_weight(*sw, n, "fit");
    }
    std::uint64_t seed = o.seed ? *o.seed : next_global_seed();
    if (dist_) seed = dist_->broadcast(seed);
    const Tensor<T>* vx = vd.is_tensors() ? &vd.x() : n_val > 0 ? &x : nullptr;
    const Tensor<T>* vy = vd.is_tensors() ? &vd.y() : n_val > 0 ? &y : nullptr;
    if (vd.is_tensors()) check_batch(m, *vx, *vy, "fit(validation_data)");
    Index v_begin = vd.is_tensors() ? 0 : n_train, v_count = vx ? (vd.is_tensors() ? vx->dim(0) : n_val) : 0;
    // The validation batches: a slice of the tensors, or the validation dataset.
    std::unique_ptr<BatchSource<T>> vplain;
    if (vx) {
      auto tv = std::make_unique<TensorBatchSource<T>>(*vx, vy, v_begin, v_count, o.batch_size, false, 0);
      if (sw && !vd.is_tensors()) tv->set_weights(sw);  // the validation_split rows keep their weights
      vplain = std::move(tv);
    } else if (vd.is_dataset()) {
      vplain = std::make_unique<DatasetBatchSource<T>>(vd.dataset());
    }
    engine::CachePlan plan;
    engine::Graph<T>* g = o.cache_frozen && (!vd.is_dataset() || vd.dataset().deterministic())
                              ? cache_graph(m, plan, o.verbose)
                              : nullptr;
    if (plan.cut >= 0) {
      // Same batches and order as the uncached run: features in sample order, same shuffling seed.
      TensorBatchSource<T> plain(x, &y, 0, n_train, o.batch_size, false, 0);
      shard(plain);
      if (vplain) shard(*vplain);
      const void* val_id = vx                ? static_cast<const void*>(vx->data())
                           : vd.is_dataset() ? vd.dataset().identity()
                                             : nullptr;
      std::shared_ptr<const FeatureCache<T>> fcp;
      if (make_cache(*g, plan, plain, vplain.get(),
                     {x.data(), val_id, sampled_hash(x) ^ sampled_hash(y) ^ (vx ? sampled_hash(*vx) : 0)}, o, fcp)) {
        const FeatureCache<T>& fc = *fcp;
        TensorBatchSource<T> train(fc.x[0], &fc.y, 0, fc.x[0].dim(0), o.batch_size, o.shuffle, seed);
        attach_outcomes(train, *g, plan, fc);
        train.set_weights(sw);  // the cached features keep the samples' order
        TensorBatchSource<T> val(fc.vx, &fc.vy, 0, vplain ? fc.vx.dim(0) : 0, o.batch_size, false, 0);
        Tensor<T> val_w;
        if (sw && n_val > 0 && !vd) {
          val_w.resize({n_val});
          std::copy(sw->data() + n_train, sw->data() + n, val_w.data());
          val.set_weights(&val_w);
        }
        return fit_cached(m, g, plan.cut, train, vplain ? &val : nullptr, o);
      }
    }
    inlined_.reset();
    TensorBatchSource<T> train(x, &y, 0, n_train, o.batch_size, o.shuffle, seed);
    train.set_weights(sw);
    return fit_sources(m, train, vplain.get(), o);
  }

  /// fit on a dataset of (x, y) batches. Frozen-part caching applies when the dataset is
  /// deterministic (no random augmentation): the features of one pass are computed once, then
  /// shuffled per epoch with o.seed.
  History fit(ModelT& m, const data::Dataset<T>& ds, const FitOptions<T>& o,
              std::optional<data::Dataset<T>> validation) {
    const Index steps_per_epoch = o.steps_per_epoch;
    require_compiled(m, "fit");
    if (o.validation_split > 0)
      throw ValueError("fit: validation_split is not supported for datasets; pass validation data");
    if (!o.sample_weight.empty())
      throw ValueError(
          "fit: sample_weight is for fit on tensors; a dataset gives its own batches (use class_weight, or fit on "
          "tensors)");
    if (validation && o.validation_data)
      throw ValueError(
          "fit: validation data given twice (as the third argument and as FitOptions::validation_data); pass one");
    if (o.validation_data.is_dataset())
      validation = o.validation_data.dataset();
    else if (o.validation_data.is_tensors())
      validation =
          data::Dataset<T>::from_tensor_slices(o.validation_data.x(), o.validation_data.y()).batch(o.batch_size);
    const bool cacheable_data =
        steps_per_epoch <= 0 && ds.deterministic() && (!validation || validation->deterministic());
    engine::CachePlan plan;
    engine::Graph<T>* g = o.cache_frozen && cacheable_data ? cache_graph(m, plan, o.verbose) : nullptr;
    DatasetBatchSource<T> train(ds, steps_per_epoch);
    std::unique_ptr<DatasetBatchSource<T>> val;
    if (validation) val = std::make_unique<DatasetBatchSource<T>>(*validation);
    if (plan.cut >= 0) {
      std::shared_ptr<const FeatureCache<T>> fcp;
      shard(train);
      if (val) shard(*val);
      if (make_cache(*g, plan, train, val.get(), {ds.identity(), validation ? validation->identity() : nullptr, 0}, o,
                     fcp)) {
        const FeatureCache<T>& fc = *fcp;
        // distributed: a step is one batch per replica, as uncached (distribution.hpp)
        Index bs = std::max<Index>(1, fc.batch) * (dist_ ? dist_->num_replicas() : 1);
        std::uint64_t seed = o.seed ? *o.seed : next_global_seed();
        if (dist_) seed = dist_->broadcast(seed);
        TensorBatchSource<T> ctrain(fc.x[0], &fc.y, 0, fc.x[0].dim(0), bs, o.shuffle, seed);
        attach_outcomes(ctrain, *g, plan, fc);
        TensorBatchSource<T> cval(fc.vx, &fc.vy, 0, val ? fc.vx.dim(0) : 0, bs, false, 0);
        return fit_cached(m, g, plan.cut, ctrain, val ? &cval : nullptr, o);
      }
    }
    inlined_.reset();
    return fit_sources(m, train, val.get(), o);
  }

  /// The training loop over batch sources (tensors, datasets or cached features).
  History fit_sources(ModelT& m, BatchSource<T>& train, BatchSource<T>* val, const FitOptions<T>& o) {
    callbacks::CallbackList<T> cbs(o.callbacks);
    if (o.verbose) cbs.prepend(std::make_shared<callbacks::ProgbarLogger<T>>(std::cout, std::nullopt, o.verbose));
    if (dist_) {
      shard(train);
      if (val) shard(*val);
      if (!dist_->is_chief()) cbs.remove_chief_only();
      start_replicas(m);
    }
    cbs.set_model(&m);
    cbs.set_params({{"epochs", o.epochs}, {"steps", static_cast<double>(train.steps())}, {"verbose", o.verbose}});
    m.stop_training = false;
    try {
      return fit_epochs(m, train, val, o, cbs);
    } catch (...) {
      std::cout << std::flush;  // keep the progress printed so far, even if the error is never caught
      throw;
    }
  }
  History fit_epochs(ModelT& m, BatchSource<T>& train, BatchSource<T>* val, const FitOptions<T>& o,
                     callbacks::CallbackList<T>& cbs) {
    History h;
    cbs.on_train_begin();
    auto ms = make_metrics(m);
    metrics::Mean<T> loss_mean;
    Tensor<T> xb, yb;
    for (int epoch = o.initial_epoch; epoch < o.epochs && !m.stop_training; ++epoch) {
      cbs.on_epoch_begin(epoch);
      loss_mean.reset_state();
      for (auto& mt : ms) mt->reset_state();
      train.begin_epoch(epoch);
      int step = 0;
      Logs logs;
      for (;;) {
        const bool got = train.next(xb, yb);
        const Index local = got ? xb.dim(0) : 0;
        Index total = local;
        if (dist_) {
          if (!begin_step(m, local, total)) break;  // every replica's part is done, or one stops
        } else if (!got) {
          break;
        }
        cbs.on_train_batch_begin(step);
        const Tensor<T>* sw = train.batch_weights();
        if (!o.class_weight.empty() && local > 0) {
          class_weights_to_sample_weights(yb, o.class_weight, class_w_);
          sw = &class_w_;
        }
        const double l = dist_ ? distributed_step(m, xb, yb, local, total, sw) : train_on_batch(m, xb, yb, sw);
        if (local > 0) {
          loss_mean.update_state(l, static_cast<double>(local));
          for (auto& mt : ms) mt->update_state(yb, *last_pred_);
        }
        logs = current_logs(loss_mean, ms);  // distributed: this replica's so far, reduced at the end of the epoch
        cbs.on_train_batch_end(step, logs);
        ++step;
        if (m.stop_training && !dist_) break;  // distributed: at the next step, on every replica
      }
      if (dist_) {
        reduce_states(loss_mean, ms);
        logs = current_logs(loss_mean, ms);
      }
      if (val) {
        Logs vl = evaluate(m, *val, &cbs);
        for (auto& [k, v] : vl) logs["val_" + k] = v;
      }
      cbs.on_epoch_end(epoch, logs);
      if (dist_) end_epoch(m);
      h.epoch.push_back(epoch);
      for (auto& [k, v] : logs) h.history[k].push_back(v);
    }
    cbs.on_train_end();
    return h;
  }

  // ---- evaluate and predict ----------------------------------------------------------------
  Logs evaluate(ModelT& m, const Tensor<T>& x, const Tensor<T>& y, Index batch_size,
                const Tensor<T>* sample_weight = nullptr) {
    require_compiled(m, "evaluate");
    m.ensure_built(x.shape());
    check_batch(m, x, y, "evaluate");
    if (sample_weight) check_sample_weight(*sample_weight, x.dim(0), "evaluate");
    TensorBatchSource<T> src(x, &y, 0, x.dim(0), batch_size, false, 0);
    src.set_weights(sample_weight);
    return evaluate(m, src);
  }
  /// evaluate(x, y, EvaluateOptions): Keras's evaluate with its callbacks and progress bar.
  Logs evaluate(ModelT& m, const Tensor<T>& x, const Tensor<T>& y, const EvaluateOptions<T>& o) {
    require_compiled(m, "evaluate");
    m.ensure_built(x.shape());
    check_batch(m, x, y, "evaluate");
    const Tensor<T>* sw = o.sample_weight.empty() ? nullptr : &o.sample_weight;
    if (sw) check_sample_weight(*sw, x.dim(0), "evaluate");
    TensorBatchSource<T> src(x, &y, 0, x.dim(0), o.batch_size, false, 0);
    src.set_weights(sw);
    auto cbs = with_callbacks(m, o.callbacks, o.verbose, src.steps());
    return evaluate(m, src, &cbs);
  }
  /// The callbacks of evaluate/predict: the user's, with Keras's progress bar first when verbose.
  static callbacks::CallbackList<T> with_callbacks(ModelT& m,
                                                   const std::vector<std::shared_ptr<callbacks::Callback<T>>>& user,
                                                   int verbose, Index steps) {
    callbacks::CallbackList<T> cbs(user);
    if (verbose) cbs.prepend(std::make_shared<callbacks::ProgbarLogger<T>>(std::cout, std::nullopt, verbose));
    cbs.set_model(&m);
    cbs.set_params({{"steps", static_cast<double>(steps)}, {"verbose", static_cast<double>(verbose)}});
    return cbs;
  }
  /// Loss and metrics over a source; the test hooks go to `cbs` (fit's callbacks, for validation).
  Logs evaluate(ModelT& m, BatchSource<T>& src, callbacks::CallbackList<T>* cbs = nullptr) {
    require_compiled(m, "evaluate");
    callbacks::CallbackList<T> none;
    if (!cbs) cbs = &none;
    if (dist_) shard(src);
    auto& graph = graph_of(m);
    auto ms = make_metrics(m);
    metrics::Mean<T> loss_mean;
    Tensor<T> xb, yb;
    src.begin_epoch(0);
    cbs->on_test_begin();
    int step = 0;
    while (src.next(xb, yb)) {
      if (xb.dim(0) == 0) continue;  // a sharded batch with no rows for this replica
      cbs->on_test_batch_begin(step);
      if (cache_cut_ < 0) m.ensure_built(xb.shape());
      const losses::Loss<T>* on_logits = logits_loss(graph);
      if (cache_cut_ >= 0)
        graph.forward_from(cache_cut_, xb, false, on_logits != nullptr);
      else
        graph.forward({&xb}, false, on_logits != nullptr);
      const Tensor<T>& pred = graph.output();
      if (!shapes_compatible(yb.shape(), pred.shape()) && !loss_->accepts_sparse_labels())
        throw ShapeError("evaluate: targets of shape " + shape_str(yb.shape()) + " do not match model output " +
                         shape_str(pred.shape()));
      const losses::Loss<T>& lf = on_logits ? *on_logits : *loss_;
      const Tensor<T>& lp = on_logits ? *graph.output_logits() : pred;
      const Tensor<T>* sw = src.batch_weights();
      const double l = sw ? weighted_loss<T>(lf, yb, lp, *sw, nullptr, weight_rows_) : lf.compute(yb, lp, nullptr);
      loss_mean.update_state(l, static_cast<double>(xb.dim(0)));
      for (auto& mt : ms) mt->update_state(yb, pred);
      cbs->on_test_batch_end(step++, current_logs(loss_mean, ms));
    }
    if (dist_) reduce_states(loss_mean, ms);
    Logs logs = current_logs(loss_mean, ms);
    cbs->on_test_end(logs);
    return logs;
  }

  /// Model outputs for a source, computed in batches in inference mode.
  Tensor<T> predict(ModelT& m, BatchSource<T>& src, callbacks::CallbackList<T>* cbs = nullptr) {
    callbacks::CallbackList<T> none;
    if (!cbs) cbs = &none;
    auto& graph = m.graph();
    Tensor<T> xb, yb;
    if (dist_) shard(src);
    src.begin_epoch(0);
    std::vector<Tensor<T>> parts;
    std::vector<Index> chunks;  // rows per step (distributed: the gather puts them in order)
    cbs->on_predict_begin();
    int step = 0;
    while (src.next(xb, yb)) {
      chunks.push_back(xb.dim(0));
      if (xb.dim(0) == 0) continue;
      cbs->on_predict_batch_begin(step);
      m.ensure_built(xb.shape());
      graph.forward({&xb}, false);
      parts.push_back(graph.output());
      cbs->on_predict_batch_end(step++);
    }
    cbs->on_predict_end();
    if (dist_) {  // the outputs in order on the chief; an empty tensor on the others
      Tensor<T> all = dist_->gather_steps(concat_rows(parts), chunks, false);
      if (dist_->is_chief() && all.empty()) throw ValueError("predict: no input samples");
      return all;
    }
    if (parts.empty()) throw ValueError("predict: no input samples");
    return concat_rows(parts);
  }

  // ---- several inputs / outputs ------------------------------------------------------------
  // Keras's lists of arrays, in the order of the model's inputs and outputs: one loss for every
  // output, the loss is their sum; with several outputs the logs also hold "<output>_loss" and
  // "<output>_<metric>" (the output layer's name), as Keras. A single output of softmax/sigmoid
  // logits takes the logits path as train_on_batch(x, y) does.

  /// One optimizer step on one batch of several inputs/outputs; returns the total loss.
  double train_on_batch(ModelT& m, const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& ys,
                        const Tensor<T>* sample_weight = nullptr) {
    require_compiled(m, "train_on_batch");
    check_multi(m, xs, &ys, "train_on_batch");
    if (sample_weight) check_sample_weight(*sample_weight, xs[0].dim(0), "train_on_batch");
    return step_multi(m, pointers(xs), pointers(ys), sample_weight);
  }

  /// Loss and metrics over several inputs/outputs.
  Logs evaluate(ModelT& m, const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& ys, Index batch_size,
                const Tensor<T>* sample_weight = nullptr, callbacks::CallbackList<T>* cbs = nullptr) {
    require_compiled(m, "evaluate");
    check_multi(m, xs, &ys, "evaluate");
    if (sample_weight) check_sample_weight(*sample_weight, xs[0].dim(0), "evaluate");
    return evaluate_rows(m, pointers(xs), pointers(ys), sample_weight, 0, xs[0].dim(0), batch_size, cbs);
  }

  /// Outputs of a model with several inputs (and outputs), in batches, in inference mode.
  std::vector<Tensor<T>> predict(ModelT& m, const std::vector<Tensor<T>>& xs, Index batch_size) {
    check_multi(m, xs, nullptr, "predict");
    auto srcs = sources(pointers(xs), 0, xs[0].dim(0), batch_size, false, 0);
    for (auto& s : srcs) s.begin_epoch(0);
    std::vector<Tensor<T>> xb(xs.size());
    std::vector<std::vector<Tensor<T>>> parts(m.graph().outputs().size());
    auto& graph = m.graph();
    while (next(srcs, xb)) {
      graph.forward(pointers(xb), false);
      for (std::size_t k = 0; k < parts.size(); ++k) parts[k].push_back(graph.output(k));
    }
    std::vector<Tensor<T>> out;
    for (auto& p : parts) out.push_back(concat_rows(p));
    return out;
  }

  /// fit on several inputs/outputs (tensors): epochs, batch_size, validation_split (the last
  /// samples), shuffle, seed, verbose, initial_epoch, callbacks and sample_weight (one per sample,
  /// for every output) as fit(x, y); validation_data, class_weight and steps_per_epoch are refused.
  History fit(ModelT& m, const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& ys, const FitOptions<T>& o) {
    require_compiled(m, "fit");
    check_multi(m, xs, &ys, "fit");
    if (o.validation_data)
      throw ValueError("fit: validation_data is not supported with several inputs/outputs; use validation_split");
    if (!o.class_weight.empty())
      throw ValueError(
          "fit: `class_weight` is only supported for models with a single output (Keras's rule); use sample_weight");
    if (o.steps_per_epoch > 0) throw ValueError("fit: steps_per_epoch is for datasets");
    if (o.validation_split < 0 || o.validation_split >= 1)
      throw ValueError("fit: validation_split must be in [0, 1), got " + std::to_string(o.validation_split));
    const Index n = xs[0].dim(0);
    const Index n_val = static_cast<Index>(static_cast<double>(n) * o.validation_split), n_train = n - n_val;
    if (n_train <= 0) throw ValueError("fit: no training samples left after validation_split");
    const Tensor<T>* sw = o.sample_weight.empty() ? nullptr : &o.sample_weight;
    if (sw) check_sample_weight(*sw, n, "fit");
    const std::uint64_t seed = o.seed ? *o.seed : next_global_seed();
    const std::vector<const Tensor<T>*> xp = pointers(xs), yp = pointers(ys);
    auto train = sources(joined(xp, yp, sw), 0, n_train, o.batch_size, o.shuffle, seed);
    callbacks::CallbackList<T> cbs(o.callbacks);
    if (o.verbose) cbs.prepend(std::make_shared<callbacks::ProgbarLogger<T>>(std::cout, std::nullopt, o.verbose));
    cbs.set_model(&m);
    cbs.set_params(
        {{"epochs", o.epochs}, {"steps", static_cast<double>(train.front().steps())}, {"verbose", o.verbose}});
    m.stop_training = false;
    History h;
    cbs.on_train_begin();
    std::vector<Tensor<T>> b(train.size());  // the batch of every array, reused
    try {
      for (int epoch = o.initial_epoch; epoch < o.epochs && !m.stop_training; ++epoch) {
        cbs.on_epoch_begin(epoch);
        MultiTrackers tr = trackers(m);
        for (auto& s : train) s.begin_epoch(epoch);
        int step = 0;
        Logs logs;
        while (next(train, b)) {
          cbs.on_train_batch_begin(step);
          const auto xb = slice(b, 0, xs.size()), yb = slice(b, xs.size(), ys.size());
          step_multi(m, xb, yb, sw ? &b.back() : nullptr);
          track(tr, m.graph(), yb, static_cast<double>(b[0].dim(0)));
          logs = tr.logs();
          cbs.on_train_batch_end(step++, logs);
          if (m.stop_training) break;
        }
        if (n_val > 0) {
          Logs vl = evaluate_rows(m, xp, yp, sw, n_train, n_val, o.batch_size, &cbs);
          for (auto& [k, v] : vl) logs["val_" + k] = v;
        }
        cbs.on_epoch_end(epoch, logs);
        h.epoch.push_back(epoch);
        for (auto& [k, v] : logs) h.history[k].push_back(v);
      }
    } catch (...) {
      std::cout << std::flush;
      throw;
    }
    cbs.on_train_end();
    return h;
  }

  // ---- checks ------------------------------------------------------------------------------
  void require_compiled(const ModelT& m, const char* what) const {
    if (!compiled_)
      throw StateError(std::string(what) + ": you must compile model '" + m.name() + "' first (model.compile(...))");
  }
  static void check_input(const ModelT& m, const Shape& s, const char* what) {
    auto mine = m.input_shapes_of_graph();
    if (mine.size() != 1) throw ValueError(std::string(what) + ": model '" + m.name() + "' has several inputs");
    if (!shapes_compatible(s, mine[0])) {
      Shape batched = s;
      batched.insert(batched.begin(), Index(1));
      const bool one_sample = shapes_compatible(batched, mine[0]);  // e.g. img_to_array(img) without its batch axis
      throw ShapeError(
          std::string(what) + ": model '" + m.name() + "' expects input shape " + shape_str(mine[0]) + ", got " +
          shape_str(s) +
          (one_sample ? " (one sample without the batch axis: add it with utils::expand_dims(x, 0))" : ""));
    }
  }
  void check_batch(const ModelT& m, const Tensor<T>& x, const Tensor<T>& y, const char* what) const {
    check_input(m, x.shape(), what);
    if (y.rank() == 0 || x.dim(0) != y.dim(0))
      throw ShapeError(std::string(what) + ": x and y have different numbers of samples: x " + shape_str(x.shape()) +
                       ", y " + shape_str(y.shape()));
    Shape out = m.output_shape();
    if (!loss_->accepts_sparse_labels() && !shapes_compatible(y.shape(), out))
      throw ShapeError(std::string(what) + ": targets of shape " + shape_str(y.shape()) +
                       " do not match the output of model '" + m.name() + "' " + shape_str(out) + " (loss " +
                       loss_->name() + ")");
  }

 private:
  std::shared_ptr<optimizers::Optimizer<T>> optimizer_;
  std::shared_ptr<losses::Loss<T>> loss_;
  std::vector<std::shared_ptr<losses::Loss<T>>> output_losses_;  ///< one per output (empty: loss_ for every output)
  std::vector<double> loss_weights_;                             ///< empty: all 1
  std::vector<std::string> metric_names_;
  bool compiled_ = false;
  std::shared_ptr<Distribution<T>> dist_;
  Tensor<T> dpred_;
  Tensor<T> class_w_;                   ///< the batch's weights from FitOptions::class_weight
  std::vector<Tensor<T>> weight_rows_;  ///< buffers of weighted_loss
  const Tensor<T>* last_pred_ = nullptr;
  int cache_cut_ = -1;                ///< >= 0 while fit() trains on cached features of this node
  engine::Graph<T>* exec_ = nullptr;  ///< the graph fit() runs while it trains on cached features
  std::unique_ptr<engine::Graph<T>>
      inlined_;  ///< the model's graph with nested models in line, when the cache cuts inside one
  std::shared_ptr<losses::Loss<T>> logits_twin_;  ///< loss_->on_logits_of(logits_act_)
  const losses::Loss<T>* twin_of_ = nullptr;
  keras::Activation logits_act_ = keras::Activation::Linear;

  /// The loss to compute on the output's logits, when the output layer is softmax/sigmoid of
  /// logits it computes and the loss has a from-logits form for it (Keras's _keras_logits rule);
  /// nullptr: compute the loss on the output itself.
  const losses::Loss<T>* logits_loss(const engine::Graph<T>& graph) {
    const int o = graph.logits_output();
    if (o < 0) return nullptr;
    const keras::Activation act = graph.nodes()[o].logits->logits_activation();
    if (twin_of_ != loss_.get() || act != logits_act_) {
      logits_twin_ = loss_->on_logits_of(act == keras::Activation::Softmax ? "softmax" : "sigmoid");
      twin_of_ = loss_.get();
      logits_act_ = act;
    }
    return logits_twin_.get();
  }

  // ---- several inputs / outputs: helpers ----
  std::vector<Tensor<T>> multi_grads_;
  std::vector<double> multi_losses_;
  double multi_total_ = 0.0;

  static std::vector<const Tensor<T>*> pointers(const std::vector<Tensor<T>>& ts) {
    std::vector<const Tensor<T>*> p;
    for (auto& t : ts) p.push_back(&t);
    return p;
  }
  /// One TensorBatchSource per tensor, all with the same order (same rows, seed and shuffling).
  static std::vector<TensorBatchSource<T>> sources(const std::vector<const Tensor<T>*>& ts, Index begin, Index count,
                                                   Index batch, bool shuffle, std::uint64_t seed) {
    std::vector<TensorBatchSource<T>> s;
    for (auto* t : ts) s.emplace_back(*t, nullptr, begin, count, batch, shuffle, seed);
    return s;
  }
  /// xs, then ys, then the weights (when given): the arrays batched together.
  static std::vector<const Tensor<T>*> joined(const std::vector<const Tensor<T>*>& xs,
                                              const std::vector<const Tensor<T>*>& ys, const Tensor<T>* sw) {
    std::vector<const Tensor<T>*> all(xs);
    all.insert(all.end(), ys.begin(), ys.end());
    if (sw) all.push_back(sw);
    return all;
  }
  static std::vector<const Tensor<T>*> slice(const std::vector<Tensor<T>>& b, std::size_t first, std::size_t n) {
    std::vector<const Tensor<T>*> r;
    for (std::size_t k = first; k < first + n; ++k) r.push_back(&b[k]);
    return r;
  }
  /// One optimizer step (inputs and targets checked by the caller).
  double step_multi(ModelT& m, const std::vector<const Tensor<T>*>& xs, const std::vector<const Tensor<T>*>& ys,
                    const Tensor<T>* sw) {
    auto& graph = m.graph();
    const losses::Loss<T>* on_logits = ys.size() == 1 ? logits_loss(graph) : nullptr;
    graph.forward(xs, true, on_logits != nullptr);
    multi_losses(graph, on_logits, ys, sw, true);
    auto vars = m.trainable_variables();
    for (auto* v : vars) v->grad.setZero();
    if (on_logits) {
      graph.backward_from_logits(multi_grads_[0]);
    } else {
      std::vector<const Tensor<T>*> g;
      for (auto& t : multi_grads_) g.push_back(&t);
      graph.backward(g, {});
    }
    optimizer_->apply_gradients(vars);
    return multi_total_;
  }
  static bool next(std::vector<TensorBatchSource<T>>& srcs, std::vector<Tensor<T>>& out) {
    Tensor<T> unused;
    bool any = false;
    for (std::size_t k = 0; k < srcs.size(); ++k) any = srcs[k].next(out[k], unused);
    return any;
  }
  void check_multi(const ModelT& m, const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>* ys,
                   const char* what) const {
    auto ins = m.input_shapes_of_graph();
    const auto& g = m.graph();
    if (xs.size() != ins.size())
      throw ValueError(std::string(what) + ": model '" + m.name() + "' has " + std::to_string(ins.size()) +
                       " input(s), got " + std::to_string(xs.size()) + " array(s)");
    if (ys && ys->size() != g.outputs().size())
      throw ValueError(std::string(what) + ": model '" + m.name() + "' has " + std::to_string(g.outputs().size()) +
                       " output(s), got " + std::to_string(ys->size()) + " target array(s)");
    const Index n = xs.empty() || xs[0].rank() == 0 ? -1 : xs[0].dim(0);
    for (std::size_t k = 0; k < xs.size(); ++k) {
      if (!shapes_compatible(xs[k].shape(), ins[k]))
        throw ShapeError(std::string(what) + ": input " + std::to_string(k) + " ('" +
                         g.nodes()[g.inputs()[k]].layer->name() + "') of model '" + m.name() + "' expects shape " +
                         shape_str(ins[k]) + ", got " + shape_str(xs[k].shape()));
      if (xs[k].dim(0) != n)
        throw ShapeError(std::string(what) + ": the input arrays have different numbers of samples");
    }
    if (ys)
      for (std::size_t k = 0; k < ys->size(); ++k) {
        const Shape& out = g.nodes()[g.outputs()[k]].shape;
        if ((*ys)[k].rank() == 0 || (*ys)[k].dim(0) != n)
          throw ShapeError(std::string(what) + ": target " + std::to_string(k) + " has " + shape_str((*ys)[k].shape()) +
                           ", not " + std::to_string(n) + " samples");
        if (!output_loss(k).accepts_sparse_labels() && !shapes_compatible((*ys)[k].shape(), out))
          throw ShapeError(std::string(what) + ": target " + std::to_string(k) + " of shape " +
                           shape_str((*ys)[k].shape()) + " does not match output '" +
                           g.nodes()[g.outputs()[k]].layer->name() + "' " + shape_str(out) + " (loss " +
                           output_loss(k).name() + ")");
      }
  }
  /// The losses of every output after a forward pass (gradients into multi_grads_ when asked).
  void multi_losses(engine::Graph<T>& graph, const losses::Loss<T>* on_logits, const std::vector<const Tensor<T>*>& ys,
                    const Tensor<T>* sw, bool grads) {
    multi_grads_.resize(ys.size());
    multi_losses_.assign(ys.size(), 0.0);
    multi_total_ = 0.0;
    for (std::size_t k = 0; k < ys.size(); ++k) {
      const losses::Loss<T>& lf = on_logits ? *on_logits : output_loss(k);
      const Tensor<T>& p = on_logits ? *graph.output_logits() : graph.output(k);
      Tensor<T>* g = grads ? &multi_grads_[k] : nullptr;
      multi_losses_[k] = sw ? weighted_loss<T>(lf, *ys[k], p, *sw, g, weight_rows_) : lf.compute(*ys[k], p, g);
      const double w = loss_weight(k);  // Keras's loss_weights: the total and its gradient, not the output's log
      multi_total_ += w * multi_losses_[k];
      if (g && w != 1.0)
        for (auto& v : *g) v *= static_cast<T>(w);
    }
  }
  /// Running means of the losses and metrics of every output, with Keras's log names.
  struct MultiTrackers {
    metrics::Mean<T> loss;
    std::vector<metrics::Mean<T>> outputs;
    std::vector<std::vector<std::unique_ptr<metrics::Metric<T>>>> ms;
    std::vector<std::string> names;  ///< output layer names ("" for a single output)
    Logs logs() const {
      Logs l;
      l["loss"] = loss.result();
      for (std::size_t k = 0; k < ms.size(); ++k) {
        const std::string pre = names[k].empty() ? "" : names[k] + "_";
        if (!pre.empty()) l[pre + "loss"] = outputs[k].result();
        for (auto& mt : ms[k]) l[pre + mt->name()] = mt->result();
      }
      return l;
    }
  };
  MultiTrackers trackers(ModelT& m) const {
    MultiTrackers t;
    const auto& g = m.graph();
    const std::size_t no = g.outputs().size();
    for (std::size_t k = 0; k < no; ++k) {
      const auto& node = g.nodes()[g.outputs()[k]];
      t.names.push_back(no > 1 ? node.layer->name() : std::string());
      t.outputs.emplace_back(t.names.back() + "_loss");
      t.ms.emplace_back();
      for (auto& name : metric_names_) t.ms.back().push_back(metrics::get<T>(name, output_loss(k).name(), node.shape));
    }
    return t;
  }
  void track(MultiTrackers& t, const engine::Graph<T>& graph, const std::vector<const Tensor<T>*>& ys,
             double batch) const {
    t.loss.update_state(multi_total_, batch);
    for (std::size_t k = 0; k < ys.size(); ++k) {
      t.outputs[k].update_state(multi_losses_[k], batch);
      for (auto& mt : t.ms[k]) mt->update_state(*ys[k], graph.output(k));
    }
  }
  /// evaluate over rows [begin, begin + count) of xs / ys (and the weights).
  Logs evaluate_rows(ModelT& m, const std::vector<const Tensor<T>*>& xs, const std::vector<const Tensor<T>*>& ys,
                     const Tensor<T>* sw, Index begin, Index count, Index batch_size, callbacks::CallbackList<T>* cbs) {
    callbacks::CallbackList<T> none;
    if (!cbs) cbs = &none;
    auto srcs = sources(joined(xs, ys, sw), begin, count, batch_size, false, 0);
    for (auto& s : srcs) s.begin_epoch(0);
    MultiTrackers tr = trackers(m);
    std::vector<Tensor<T>> b(srcs.size());
    auto& graph = m.graph();
    cbs->on_test_begin();
    int step = 0;
    while (next(srcs, b)) {
      cbs->on_test_batch_begin(step);
      const auto xb = slice(b, 0, xs.size()), yb = slice(b, xs.size(), ys.size());
      const losses::Loss<T>* on_logits = ys.size() == 1 ? logits_loss(graph) : nullptr;
      graph.forward(xb, false, on_logits != nullptr);
      multi_losses(graph, on_logits, yb, sw ? &b.back() : nullptr, false);
      track(tr, graph, yb, static_cast<double>(b[0].dim(0)));
      cbs->on_test_batch_end(step++, tr.logs());
    }
    Logs logs = tr.logs();
    cbs->on_test_end(logs);
    return logs;
  }

  /// The graph the model trains on: its own, or its inlined twin during a cached fit.
  engine::Graph<T>& graph_of(ModelT& m) { return exec_ ? *exec_ : m.graph(); }

  /// Where fit() can cache: the model's graph, or, when the cut lies inside a trainable nested
  /// model (a partly unfrozen base), the same layers with nested models in line (inlined_).
  engine::Graph<T>* cache_graph(ModelT& m, engine::CachePlan& plan, int verbose) {
    inlined_.reset();
    plan = m.graph().cache_plan();
    engine::Graph<T>* g = &m.graph();
    if (m.graph().topology().has_nested(true)) {  // every nested model in line: the cut may lie inside one
      auto flat = std::make_unique<engine::Graph<T>>(m.graph().topology().inlined(true));
      engine::CachePlan p = flat->cache_plan();
      if (p.cut >= 0) {
        plan = p;
        inlined_ = std::move(flat);
        g = inlined_.get();
      } else if (plan.why_not.empty()) {
        plan.why_not = p.why_not;
      }
    }
    if (plan.cut < 0 && !plan.why_not.empty() && verbose)
      std::cout << "Not caching the frozen layers: " << plan.why_not << " (fit computes them at every step).\n"
                << std::flush;
    return g;
  }
  /// The features fit() keeps for a later fit (FitOptions::keep_features_of).
  /// What identifies the data of a fit: the training and validation datasets (or tensors, with a
  /// sampled hash of their values, since a new tensor may take a freed one's address).
  struct DataIdentity {
    const void* train = nullptr;
    const void* val = nullptr;
    std::uint64_t content = 0;
    bool operator==(const DataIdentity& o) const { return train == o.train && val == o.val && content == o.content; }
  };
  static std::uint64_t sampled_hash(const Tensor<T>& t) {
    std::uint64_t h = 1469598103934665603ull ^ static_cast<std::uint64_t>(t.size());
    const Index step = std::max<Index>(1, t.size() / 4096);
    for (Index i = 0; i < t.size(); i += step) {
      std::uint64_t bits = 0;
      std::memcpy(&bits, t.data() + i, sizeof(T));
      h = (h ^ bits) * 1099511628211ull;
    }
    return h;
  }
  struct KeptFeatures {
    const layers::Layer<T>* layer = nullptr;  ///< whose outputs they are
    DataIdentity data;
    std::uint64_t weights = 0;  ///< fingerprint of the variables of every layer up to it
    const layers::Layer<T>* augmentation = nullptr;
    std::shared_ptr<const FeatureCache<T>> features;
  };
  std::optional<KeptFeatures> kept_;

  /// FNV-1a over the variables (values) of the distinct layers of nodes 0..k.
  static std::uint64_t weights_fingerprint(const engine::Graph<T>& g, int k) {
    std::uint64_t h = 1469598103934665603ull;
    std::unordered_set<const layers::Layer<T>*> seen;
    for (int i = 0; i <= k; ++i) {
      auto* l = g.nodes()[i].layer.get();
      if (!seen.insert(l).second) continue;
      for (auto* v : l->variables()) {
        auto* b = reinterpret_cast<const unsigned char*>(v->value.data());
        for (std::size_t j = 0; j < static_cast<std::size_t>(v->value.size()) * sizeof(T); ++j)
          h = (h ^ b[j]) * 1099511628211ull;
      }
    }
    return h;
  }

  /// The feature cache of `plan`: computed from kept features when an earlier fit kept the outputs
  /// of a layer of this frozen part for the same data and weights, else from the sources; and kept
  /// for later fits when o.keep_features_of names a layer of the frozen part. False when the
  /// features would exceed o.cache_max_bytes.
  bool make_cache(engine::Graph<T>& g, const engine::CachePlan& plan, BatchSource<T>& train, BatchSource<T>* val,
                  const DataIdentity& data, const FitOptions<T>& o, std::shared_ptr<const FeatureCache<T>>& out) {
    const auto& topo = g.topology();
    const layers::Layer<T>* aug = plan.augmentation >= 0 ? g.nodes()[plan.augmentation].layer.get() : nullptr;
    int keep = -1;
    if (!o.keep_features_of.empty()) {
      keep = topo.node_of(o.keep_features_of);
      if (keep < 0 || keep > plan.cut || !topo.is_cut(keep) || plan.augmentation > keep)
        throw ValueError("fit: keep_features_of: '" + o.keep_features_of +
                         "' is not a layer of the frozen part that fit() caches (" +
                         (keep < 0 ? std::string("no such layer")
                                   : "it must come after any random layer, at or before '" +
                                         g.nodes()[plan.cut].layer->name() + "', and be a cut of the graph") +
                         ")");
    }
    int from = -1;
    std::shared_ptr<const FeatureCache<T>> base;
    if (kept_ && kept_->data == data && kept_->augmentation == aug) {
      const int j = topo.node_of(kept_->layer->name());
      if (j >= 0 && g.nodes()[j].layer.get() == kept_->layer && j <= plan.cut && topo.is_cut(j) &&
          plan.augmentation <= j && (keep < 0 || keep == j) && weights_fingerprint(g, j) == kept_->weights) {
        from = j;
        base = kept_->features;
      }
    }
    if (!base) {
      kept_.reset();
      engine::CachePlan first = plan;
      first.cut = keep >= 0 ? keep : plan.cut;
      auto fc = std::make_shared<FeatureCache<T>>();
      bool built = build_feature_cache(g, first, train, val, o.cache_max_bytes, o.cache_batch_size,
                                       dist_ && !dist_->is_chief() ? 0 : o.verbose, *fc);
      if (dist_) {  // each replica computed its shard: every replica agrees, then gets them all
        std::vector<double> failed{built ? 0.0 : 1.0};
        dist_->all_sum(failed);
        built = failed[0] == 0 && gather_cache(*fc, val != nullptr, o.verbose);
      }
      if (!built) return false;
      from = first.cut;
      base = fc;
      if (keep >= 0) kept_ = KeptFeatures{g.nodes()[keep].layer.get(), data, weights_fingerprint(g, keep), aug, base};
    } else if (o.verbose) {
      std::cout << "Reusing the outputs of '" << kept_->layer->name()
                << "' kept by an earlier fit (keep_features_of).\n";
    }
    out = from == plan.cut ? base : derive_features(g, from, plan.cut, *base, o, dist_.get());
    if (keep < 0) kept_.reset();  // used, not kept for later: freed with this fit's cache
    return true;
  }

  /// The features of node `to` computed from those of node `from` (inference, in chunks).
  /// Distributed: each replica runs its contiguous share of the rows, then all are gathered.
  static std::shared_ptr<const FeatureCache<T>> derive_features(engine::Graph<T>& g, int from, int to,
                                                                const FeatureCache<T>& in, const FitOptions<T>& o,
                                                                Distribution<T>* dist = nullptr) {
    auto t0 = std::chrono::steady_clock::now();
    auto fc = std::make_shared<FeatureCache<T>>();
    fc->y = in.y;
    fc->vy = in.vy;
    fc->batch = in.batch;
    const Index chunk = std::max<Index>(1, o.cache_batch_size > 0 ? 4 * o.cache_batch_size : in.batch);
    auto run = [&](const Tensor<T>& x) {
      if (x.empty()) return Tensor<T>();
      std::vector<Tensor<T>> parts;
      Tensor<T> part;
      Shape cs = x.shape();
      const Index row = x.size() / x.dim(0), n = x.dim(0);
      const Index lo = dist ? n * dist->replica_id() / dist->num_replicas() : 0;
      const Index hi = dist ? n * (dist->replica_id() + 1) / dist->num_replicas() : n;
      for (Index b0 = lo; b0 < hi; b0 += chunk) {
        cs[0] = std::min(chunk, hi - b0);
        part.resize(cs);
        std::copy(x.data() + b0 * row, x.data() + (b0 + cs[0]) * row, part.data());
        parts.push_back(g.forward_between(from, to, part));
      }
      return dist ? dist->gather_steps(concat_rows(parts), {hi - lo}, true) : concat_rows(parts);
    };
    for (auto& x : in.x) fc->x.push_back(run(x));
    fc->vx = run(in.vx);
    if (o.verbose && (!dist || dist->is_chief())) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1fs",
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::cout << "Computed the outputs of '" << g.nodes()[to].layer->name() << "' " << shape_str(g.nodes()[to].shape)
                << " from those of '" << g.nodes()[from].layer->name() << "' in " << buf
                << "; training the rest on them.\n"
                << std::flush;
    }
    return fc;
  }

  /// With a FiniteAugmentation in the cached part: each sample's features come from the outcome
  /// the layer draws for it, at every step, as its own training forward would.
  static void attach_outcomes(TensorBatchSource<T>& src, engine::Graph<T>& g, const engine::CachePlan& plan,
                              const FeatureCache<T>& fc) {
    layers::FiniteAugmentation<T>* aug = plan_augmentation(g, plan);
    if (!aug) return;
    std::vector<const Tensor<T>*> alternatives;
    for (std::size_t k = 1; k < fc.x.size(); ++k) alternatives.push_back(&fc.x[k]);
    src.set_alternatives(std::move(alternatives),
                         [aug](Index n, std::vector<int>& out) { aug->draw_outcomes(n, out); });
  }

  /// fit_sources on cached features: graph g runs from node `cut` on.
  History fit_cached(ModelT& m, engine::Graph<T>* g, int cut, BatchSource<T>& train, BatchSource<T>* val,
                     const FitOptions<T>& o) {
    cache_cut_ = cut;
    exec_ = g;
    struct Reset {
      Trainer* t;
      ~Reset() {
        t->cache_cut_ = -1;
        t->exec_ = nullptr;
        t->inlined_.reset();
      }
    } reset{this};
    return fit_sources(m, train, val, o);
  }
  // ---- data parallelism: the few calls into Distribution (distribution.hpp) ---------------------
  void shard(BatchSource<T>& src) const {
    if (dist_) src.shard(dist_->num_replicas(), dist_->replica_id());
  }
  /// Start of a distributed fit: same variable shapes everywhere, then the chief's values.
  void start_replicas(ModelT& m) {
    if (!m.built())
      throw StateError("fit: model '" + m.name() +
                       "' must be built before a distributed fit (give it an input shape), so that every replica "
                       "starts from the chief's weights");
    auto vars = m.variables();
    std::uint64_t sig = 1469598103934665603ull;
    for (auto* v : vars)
      for (Index d : v->value.shape()) sig = (sig ^ static_cast<std::uint64_t>(d)) * 1099511628211ull;
    std::vector<double> differ{dist_->broadcast(sig) != sig ? 1.0 : 0.0};
    dist_->all_sum(differ);
    if (differ[0] > 0)
      throw ValueError("fit: model '" + m.name() +
                       "' does not have the same variables (number and shapes) on every replica (" +
                       std::to_string(static_cast<int>(differ[0])) + " of " + std::to_string(dist_->num_replicas()) +
                       " differ from the chief's)");
    dist_->broadcast(vars);
  }
  /// The step's total samples over the replicas; false when there are none (the epoch is over) or
  /// a replica's model asked to stop (then every replica stops).
  bool begin_step(ModelT& m, Index local, Index& total) {
    std::vector<double> v{static_cast<double>(local), m.stop_training ? 1.0 : 0.0};
    dist_->all_sum(v);
    total = static_cast<Index>(v[0]);
    if (v[1] > 0) m.stop_training = true;
    return total > 0 && v[1] == 0;
  }
  /// One data-parallel step: local gradients (none without local samples), averaged, applied.
  double distributed_step(ModelT& m, const Tensor<T>& x, const Tensor<T>& y, Index local, Index total,
                          const Tensor<T>* sample_weight = nullptr) {
    const double l = local > 0 ? compute_gradients(m, x, y, sample_weight) : 0.0;
    auto vars = m.trainable_variables();
    dist_->reduce_gradients(vars, local, total);
    optimizer_->apply_gradients(vars);
    return l;
  }
  /// Loss and metric states summed over the replicas (weighted by their sample counts).
  void reduce_states(metrics::Mean<T>& loss_mean, std::vector<std::unique_ptr<metrics::Metric<T>>>& ms) {
    std::vector<double> all = loss_mean.state();
    for (auto& mt : ms)
      for (double v : mt->state()) all.push_back(v);
    dist_->all_sum(all);
    std::size_t k = 0;
    auto take = [&](std::size_t n) {
      std::vector<double> r(all.begin() + k, all.begin() + k + n);
      k += n;
      return r;
    };
    loss_mean.set_state(take(loss_mean.state().size()));
    for (auto& mt : ms) mt->set_state(take(mt->state().size()));
  }
  /// End of a distributed epoch: the chief's non-trainable variables (BatchNormalization moving
  /// statistics that each replica updated from its own samples), and one stop decision for all.
  void end_epoch(ModelT& m) {
    std::vector<Variable<T>*> fixed;
    for (auto* v : m.variables())
      if (!v->trainable) fixed.push_back(v);
    dist_->broadcast(fixed);
    std::vector<double> stop{m.stop_training ? 1.0 : 0.0};
    dist_->all_sum(stop);
    m.stop_training = stop[0] > 0;
  }
  /// The replicas' features of a sharded cache pass, gathered in order on every replica.
  bool gather_cache(FeatureCache<T>& fc, bool has_val, int verbose) {
    fc.batch = static_cast<Index>(
        dist_->broadcast(static_cast<std::uint64_t>(fc.batch)));  // the chief's first batch is a full one
    for (auto& x : fc.x) x = dist_->gather_steps(x, fc.train_chunks, true);
    fc.y = dist_->gather_steps(fc.y, fc.train_chunks, true);
    if (has_val) {
      fc.vx = dist_->gather_steps(fc.vx, fc.val_chunks, true);
      fc.vy = dist_->gather_steps(fc.vy, fc.val_chunks, true);
    }
    if (verbose && dist_->is_chief())
      std::cout << "Cached the outputs of the frozen layers for " << fc.x[0].dim(0) + (has_val ? fc.vx.dim(0) : 0)
                << " samples on " << dist_->num_replicas() << " replicas, each its shard; training the rest on them.\n"
                << std::flush;
    return true;
  }
  std::vector<std::unique_ptr<metrics::Metric<T>>> make_metrics(const ModelT& m) const {
    std::vector<std::unique_ptr<metrics::Metric<T>>> ms;
    for (auto& n : metric_names_) ms.push_back(metrics::get<T>(n, loss_->name(), m.output_shape()));
    return ms;
  }
  static Logs current_logs(const metrics::Mean<T>& loss_mean,
                           const std::vector<std::unique_ptr<metrics::Metric<T>>>& ms) {
    Logs l;
    l["loss"] = loss_mean.result();
    for (auto& mt : ms) l[mt->name()] = mt->result();
    return l;
  }
};

}  // namespace trainers
}  // namespace keras
