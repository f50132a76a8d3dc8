// keras::Model<T>: a Functional model (a graph of layers) with Keras's training API:
// compile / fit / evaluate / predict / summary. A Model is also a Layer, so models nest.
// What it is lives in engine/topology.hpp, how it runs in engine/graph.hpp, how it trains in
// trainers/trainer.hpp; this class is the public face and delegates.
#pragma once
#include <iostream>
#include <memory>
#include <optional>

#include "../engine/graph.hpp"
#include "../trainers/trainer.hpp"
#include "summary.hpp"

namespace keras {

template <class T = float>
class Model : public layers::Layer<T>, public engine::NestedGraph<T> {
 public:
  using Layer = layers::Layer<T>;
  std::string class_name() const override { return "Functional"; }
  std::shared_ptr<Layer> move_to_shared() override { return std::make_shared<Model>(std::move(*this)); }

  Model(const KerasTensor<T>& input, const KerasTensor<T>& output, const std::string& name = "")
      : Model(std::vector<KerasTensor<T>>{input}, std::vector<KerasTensor<T>>{output}, name) {}
  Model(const std::vector<KerasTensor<T>>& inputs, const std::vector<KerasTensor<T>>& outputs,
        const std::string& name = "")
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
  const engine::Graph<T>& graph() const { return graph_; }
  /// The engine may run a nested model's nodes in line (engine::Topology::inlined).
  const engine::Topology<T>& nested_topology() const override { return graph_.topology(); }
  engine::Graph<T>& graph() { return graph_; }
  std::vector<Shape> input_shapes_of_graph() const {
    std::vector<Shape> r;
    for (int i : graph_.inputs()) r.push_back(graph_.nodes()[i].shape);
    return r;
  }

  // ---- Layer interface (a model inside a model) ----------------------------------------------
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    auto mine = input_shapes_of_graph();
    if (in.size() != mine.size())
      throw ShapeError("model '" + this->name() + "' expects " + std::to_string(mine.size()) + " input(s), got " +
                       std::to_string(in.size()));
    for (std::size_t i = 0; i < in.size(); ++i)
      if (!shapes_compatible(in[i], mine[i]))
        throw ShapeError("model '" + this->name() + "': expected input shape " + shape_str(mine[i]) + ", got " +
                         shape_str(in[i]));
    if (graph_.outputs().size() != 1)
      throw ValueError("model '" + this->name() + "' has several outputs and cannot be used as a layer");
    return graph_.nodes()[graph_.outputs()[0]].shape;
  }
  void forward(const typename Layer::Inputs& in, Tensor<T>& out, bool training) override {
    graph_.forward(in, training);
    out = graph_.output();
  }
  void backward(const typename Layer::Inputs& /*in*/, const Tensor<T>& /*out*/, const Tensor<T>& dy,
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
      layers_json.push_back(json{{"class_name", n.layer->class_name()},
                                 {"config", n.layer->get_config()},
                                 {"name", n.layer->name()},
                                 {"inbound_nodes", inbound}});
    }
    json ins = json::array(), outs = json::array();
    for (int i : graph_.inputs()) ins.push_back(json::array({nodes[i].layer->name(), 0, 0}));
    for (int o : graph_.outputs()) outs.push_back(json::array({nodes[o].layer->name(), 0, 0}));
    return json{{"name", this->name()},
                {"trainable", this->trainable()},
                {"layers", layers_json},
                {"input_layers", ins},
                {"output_layers", outs}};
  }

  // ---- compile -----------------------------------------------------------------------------
  /// What compile() accepts as an optimizer / a loss: a Keras name, an object, or a shared_ptr.
  static std::shared_ptr<optimizers::Optimizer<T>> as_optimizer(const std::string& name) {
    return optimizers::get<T>(name);
  }
  static std::shared_ptr<optimizers::Optimizer<T>> as_optimizer(std::shared_ptr<optimizers::Optimizer<T>> o) {
    return o;
  }
  template <class O, class = std::enable_if_t<std::is_base_of_v<optimizers::Optimizer<T>, std::decay_t<O>>>>
  static std::shared_ptr<optimizers::Optimizer<T>> as_optimizer(O&& o) {
    return std::make_shared<std::decay_t<O>>(std::forward<O>(o));
  }
  static std::shared_ptr<losses::Loss<T>> as_loss(const std::string& name) { return losses::get<T>(name); }
  static std::shared_ptr<losses::Loss<T>> as_loss(std::shared_ptr<losses::Loss<T>> l) { return l; }
  template <class L, class = std::enable_if_t<std::is_base_of_v<losses::Loss<T>, std::decay_t<L>>>>
  static std::shared_ptr<losses::Loss<T>> as_loss(L&& l) {
    return std::make_shared<std::decay_t<L>>(std::forward<L>(l));
  }

  void compile(std::shared_ptr<optimizers::Optimizer<T>> optimizer, std::shared_ptr<losses::Loss<T>> loss,
               const std::vector<std::string>& metrics = {}) {
    trainer_.compile(std::move(optimizer), std::move(loss), metrics);
  }
  /// compile("adam", "categorical_crossentropy", {"accuracy"}) with Keras's names.
  void compile(const std::string& optimizer, const std::string& loss, const std::vector<std::string>& metrics = {}) {
    compile(optimizers::get<T>(optimizer), losses::get<T>(loss), metrics);
  }
  /// Any mix of Keras names, objects and shared_ptrs: compile("adam", losses::BinaryCrossentropy<float>()),
  /// compile(optimizers::Adam<float>({.learning_rate = 1e-4}), "categorical_crossentropy"), ...
  template <class O, class L, class = decltype(as_optimizer(std::declval<O>())),
            class = decltype(as_loss(std::declval<L>()))>
  void compile(O&& optimizer, L&& loss, const std::vector<std::string>& metrics = {}) {
    compile(as_optimizer(std::forward<O>(optimizer)), as_loss(std::forward<L>(loss)), metrics);
  }
  /// A loss in compile()'s per-output list or dict: a Keras name, a loss object or a shared_ptr.
  struct LossArg {
    std::shared_ptr<losses::Loss<T>> loss;
    LossArg(const char* name) : loss(losses::get<T>(name)) {}            // NOLINT: implicit, as Keras's strings
    LossArg(const std::string& name) : loss(losses::get<T>(name)) {}     // NOLINT
    LossArg(std::shared_ptr<losses::Loss<T>> l) : loss(std::move(l)) {}  // NOLINT
    template <class L, class = std::enable_if_t<std::is_base_of_v<losses::Loss<T>, std::decay_t<L>>>>
    LossArg(L&& l) : loss(std::make_shared<std::decay_t<L>>(std::forward<L>(l))) {}  // NOLINT
  };
  /// Keras's compile(loss=[...], loss_weights=[...]) for several outputs: one loss per output in
  /// the order of the outputs; the loss is sum_k loss_weights[k] * loss_k (default weights 1) and
  /// "<output>_loss" logs each loss_k unweighted, as Keras:
  ///   m.compile("adam", {"mse", losses::BinaryCrossentropy<float>()}, {"mse"}, {1.0, 0.5});
  template <class O, class = decltype(as_optimizer(std::declval<O>()))>
  void compile(O&& optimizer, const std::vector<LossArg>& losses, const std::vector<std::string>& metrics = {},
               const std::vector<double>& loss_weights = {}) {
    const auto names = output_names();
    auto count = [](std::size_t n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); };
    if (losses.size() != names.size())
      throw ValueError("compile: model '" + this->name() + "' has " + count(names.size(), "output") + ", got " +
                       count(losses.size(), "loss") + " (give one loss per output, or one loss for all)");
    if (!loss_weights.empty() && loss_weights.size() != names.size())
      throw ValueError("compile: model '" + this->name() + "' has " + count(names.size(), "output") + ", got " +
                       count(loss_weights.size(), "loss weight"));
    if (names.size() == 1 && !loss_weights.empty() && loss_weights[0] != 1.0)
      throw ValueError("compile: loss_weights other than 1 need several outputs in kerascpp (model '" + this->name() +
                       "' has one): scale the learning rate instead");
    std::vector<std::shared_ptr<losses::Loss<T>>> ls;
    for (auto& l : losses) ls.push_back(l.loss);
    trainer_.compile(as_optimizer(std::forward<O>(optimizer)), std::move(ls), metrics, loss_weights);
  }
  /// compile(loss={output name: loss}, loss_weights={output name: weight}): every output needs a
  /// loss; a weight left out is 1. (A one-entry brace list {{"a", "mse"}} also reads as a list of two
  /// losses: write Model<float>::LossDict{{"a", "mse"}} then.)
  using LossDict = std::map<std::string, LossArg>;
  template <class O, class = decltype(as_optimizer(std::declval<O>()))>
  void compile(O&& optimizer, const std::map<std::string, LossArg>& losses,
               const std::vector<std::string>& metrics = {}, const std::map<std::string, double>& loss_weights = {}) {
    std::vector<LossArg> ls;
    std::vector<double> ws;
    by_output_name(losses, "loss", [&](const std::string& n) { ls.push_back(losses.at(n)); });
    by_output_name(loss_weights, "loss_weights", [&](const std::string&) {});
    if (!loss_weights.empty())
      for (auto& n : output_names()) ws.push_back(loss_weights.count(n) ? loss_weights.at(n) : 1.0);
    compile(std::forward<O>(optimizer), ls, metrics, ws);
  }
  /// The output layers' names, in the order of the outputs (Keras's model.output_names).
  std::vector<std::string> output_names() const {
    std::vector<std::string> r;
    for (int o : graph_.outputs()) r.push_back(graph_.nodes()[o].layer->name());
    if (r.empty()) r.push_back(this->name());  // a Sequential not built yet: one output
    return r;
  }
  bool compiled() const { return trainer_.compiled(); }
  /// Keras's training config (trainingConfig in model.json): loss, metrics, optimizer; null when
  /// not compiled. save_model writes it and load_model compiles the model from it.
  json training_config() const { return trainer_.training_config(); }
  void compile_from_config(const json& training_config) {
    json tc = training_config;
    // Keras saves compile(loss={name: ...}) as a dict: to the list in the order of the outputs
    for (const char* key : {"loss", "loss_config", "loss_weights"}) {
      if (!tc.is_object() || !tc.contains(key) || !tc[key].is_object() || tc[key].contains("class_name")) continue;
      json list = json::array();
      by_output_name(tc[key], key, [&](const std::string& n) { list.push_back(tc[key][n]); });
      if (std::string(key) == "loss_weights") {  // a weight left out is 1
        list = json::array();
        for (auto& n : output_names()) list.push_back(tc[key].contains(n) ? tc[key][n] : json(1.0));
      }
      tc[key] = list;
    }
    trainer_.compile_from_config(tc);
  }
  optimizers::Optimizer<T>& optimizer() { return trainer_.optimizer(*this); }
  losses::Loss<T>& loss() { return trainer_.loss(*this); }
  bool stop_training = false;
  /// Data-parallel fit / evaluate / predict over a group of replicas (processes), e.g.
  /// keras/distribute/mpi.hpp's MPI one (docs/distributed.md); nullptr: this process alone.
  void set_distribution(std::shared_ptr<trainers::Distribution<T>> d) { trainer_.set_distribution(std::move(d)); }
  /// User metadata saved with the model (TF.js userDefinedMetadata), e.g. {"class_names": [...]}.
  json metadata;

  /// Calls f(name) for each output name in order, after checking the keys of a {output name: ...}
  /// map: unknown names raise (Keras's "Unknown entries in loss dictionary"), and for "loss" every
  /// output needs an entry.
  template <class M, class F>
  void by_output_name(const M& by_name, const std::string& what, F&& f) const {
    const auto names = output_names();
    auto known = [&](const std::string& k) { return std::find(names.begin(), names.end(), k) != names.end(); };
    std::string all;
    for (auto& n : names) all += (all.empty() ? "'" : ", '") + n + "'";
    auto check_key = [&](const std::string& k) {
      if (!known(k))
        throw ValueError("compile: unknown entry '" + k + "' in the " + what + " dict of model '" + this->name() +
                         "': its outputs are " + all);
    };
    if constexpr (std::is_same_v<M, json>)
      for (auto& [k, v] : by_name.items()) check_key(k);
    else
      for (auto& [k, v] : by_name) check_key(k);
    for (auto& n : names) {
      if (by_name.count(n))
        f(n);
      else if (what.rfind("loss_weights", 0) != 0)
        throw ValueError("compile: output '" + n + "' of model '" + this->name() + "' has no entry in the " + what +
                         " dict (kerascpp trains every output)");
    }
  }

  // ---- fit / evaluate / predict ------------------------------------------------------------
  /// One optimizer step on one batch; returns the batch loss.
  double train_on_batch(const Tensor<T>& x, const Tensor<T>& y) { return trainer_.train_on_batch(*this, x, y); }
  /// train_on_batch with one weight per sample (Keras's sample_weight): the loss is mean(w * loss).
  double train_on_batch(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& sample_weight) {
    trainers::check_sample_weight(sample_weight, x.rank() ? x.dim(0) : 0, "train_on_batch");
    return trainer_.train_on_batch(*this, x, y, &sample_weight);
  }
  History fit(const Tensor<T>& x, const Tensor<T>& y, FitOptions<T> o = {}) { return trainer_.fit(*this, x, y, o); }
  /// fit on a dataset of (x, y) batches, e.g. from utils::image_dataset_from_directory.
  /// Frozen-part caching applies when the dataset is deterministic (no random augmentation):
  /// the features of one pass are computed once, then shuffled per epoch with o.seed.
  History fit(const data::Dataset<T>& ds, FitOptions<T> o = {},
              std::optional<data::Dataset<T>> validation = std::nullopt) {
    return trainer_.fit(*this, ds, o, validation);
  }
  /// Several inputs / outputs (Keras's lists of arrays, in the order of inputs and outputs): the
  /// compiled loss on every output, summed; logs "<output>_loss" and "<output>_<metric>" too when
  /// there are several outputs (trainers/trainer.hpp).
  double train_on_batch(const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& ys) {
    return trainer_.train_on_batch(*this, xs, ys);
  }
  History fit(const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& ys, FitOptions<T> o = {}) {
    return trainer_.fit(*this, xs, ys, o);
  }
  Logs evaluate(const std::vector<Tensor<T>>& xs, const std::vector<Tensor<T>>& ys, Index batch_size = 32) {
    return trainer_.evaluate(*this, xs, ys, batch_size);
  }
  /// The outputs (one tensor per model output) for several inputs.
  std::vector<Tensor<T>> predict(const std::vector<Tensor<T>>& xs, Index batch_size = 32) {
    if (!this->built() || graph_.empty()) throw StateError("predict: model '" + this->name() + "' is not built yet");
    return trainer_.predict(*this, xs, batch_size);
  }
  /// Loss and metrics over x, y (Keras's evaluate(..., return_dict=True)).
  Logs evaluate(const Tensor<T>& x, const Tensor<T>& y, Index batch_size = 32) {
    return trainer_.evaluate(*this, x, y, batch_size);
  }
  /// evaluate with one weight per sample (Keras's sample_weight): the loss is mean(w * loss); metrics are not weighted.
  Logs evaluate(const Tensor<T>& x, const Tensor<T>& y, Index batch_size, const Tensor<T>& sample_weight) {
    return trainer_.evaluate(*this, x, y, batch_size, &sample_weight);
  }
  /// verbose: 1 Keras's progress bar, 2 one line (0, the default here: silent, so that programs
  /// printing their results keep their stdout to themselves).
  Logs evaluate(const data::Dataset<T>& ds, int verbose = 0) {
    trainer_.require_compiled(*this, "evaluate");
    trainers::DatasetBatchSource<T> src(ds);
    auto cbs = trainers::progress_callbacks<T>(verbose, src.steps());
    return trainer_.evaluate(*this, src, &cbs);
  }
  /// Model outputs for x, computed in batches in inference mode.
  Tensor<T> predict(const Tensor<T>& x, Index batch_size = 32) {
    if (!this->built() || graph_.empty())
      throw StateError("predict: model '" + this->name() +
                       "' is not built yet (give it an input shape or call build())");
    trainers::Trainer<T>::check_input(*this, x.shape(), "predict");
    trainers::TensorBatchSource<T> src(x, nullptr, 0, x.dim(0), batch_size, false, 0);
    return trainer_.predict(*this, src);
  }
  /// Keras's evaluate(x, y, batch_size=, verbose=, sample_weight=, callbacks=): callbacks get the
  /// on_test_* hooks, verbose shows the progress bar (Keras's default 1).
  Logs evaluate(const Tensor<T>& x, const Tensor<T>& y, const EvaluateOptions<T>& o) {
    return trainer_.evaluate(*this, x, y, o);
  }
  /// Keras's predict(x, batch_size=, verbose=, callbacks=): callbacks get the on_predict_* hooks.
  Tensor<T> predict(const Tensor<T>& x, const PredictOptions<T>& o) {
    if (!this->built() || graph_.empty())
      throw StateError("predict: model '" + this->name() +
                       "' is not built yet (give it an input shape or call build())");
    trainers::Trainer<T>::check_input(*this, x.shape(), "predict");
    trainers::TensorBatchSource<T> src(x, nullptr, 0, x.dim(0), o.batch_size, false, 0);
    auto cbs = trainers::Trainer<T>::with_callbacks(*this, o.callbacks, o.verbose, src.steps());
    return trainer_.predict(*this, src, &cbs);
  }
  /// Outputs for every batch of a dataset, in order (verbose as evaluate).
  Tensor<T> predict(const data::Dataset<T>& ds, int verbose = 0) {
    trainers::DatasetBatchSource<T> src(ds);
    auto cbs = trainers::progress_callbacks<T>(verbose, src.steps());
    return trainer_.predict(*this, src, &cbs);
  }
  /// One forward pass in inference mode (Keras's model(x)).
  const Tensor<T>& operator()(const Tensor<T>& x, bool training = false) {
    ensure_built(x.shape());
    trainers::Trainer<T>::check_input(*this, x.shape(), "call");
    graph_.forward({&x}, training);
    return graph_.output();
  }
  using Layer::operator();

  // ---- summary -----------------------------------------------------------------------------
  /// Keras's model.summary() table.
  std::string summary_string() const {
    if (!this->built()) throw StateError("summary: model '" + this->name() + "' is not built yet");
    Index trainable = 0;
    for (auto* v : const_cast<Model*>(this)->trainable_variables()) trainable += v->value.size();
    return detail::summary_table(this->name(), graph_, is_sequential(), this->count_params(), trainable);
  }
  void summary(std::ostream& os = std::cout) const { os << summary_string(); }

 protected:
  explicit Model(const std::string& name) : Layer(name) {}
  engine::Graph<T> graph_;

  virtual bool is_sequential() const { return false; }
  /// Sequential builds lazily from the first data it sees; a Functional model is always built.
  virtual void ensure_built(const Shape& /*x_shape*/) {
    if (!this->built()) throw StateError("model '" + this->name() + "' is not built");
  }
  void mark_built_from_graph() {
    std::vector<Shape> outs;
    for (int o : graph_.outputs()) outs.push_back(graph_.nodes()[o].shape);
    this->mark_built(input_shapes_of_graph(), outs.empty() ? Shape{} : outs[0]);
  }

 private:
  friend class trainers::Trainer<T>;
  trainers::Trainer<T> trainer_;
};

}  // namespace keras
