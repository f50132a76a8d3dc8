// Callbacks: Keras's hooks into fit/evaluate/predict (the Callback base class), the CallbackList
// the trainer dispatches every hook through, and History. Logs are name -> value maps. The
// callbacks themselves (EarlyStopping, ModelCheckpoint, ...) live in callbacks/.
#pragma once
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace keras {

using Logs = std::map<std::string, double>;

template <class T>
class Model;

namespace callbacks {

/// Base class of every callback; override the hooks you need (all default to nothing).
template <class T = float>
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void set_model(Model<T>* m) { model_ = m; }
  /// Training parameters: epochs, steps (per epoch), verbose.
  virtual void set_params(const std::map<std::string, double>& p) { params_ = p; }
  /// Data-parallel training (trainers/distribution.hpp): true for a callback that prints or writes
  /// files (progress bar, CSVLogger, ModelCheckpoint), which then runs on the chief replica only.
  /// The others run on every replica, on the same (reduced) logs, and so decide the same.
  virtual bool chief_only() const { return false; }
  virtual void on_train_begin(const Logs&) {}
  virtual void on_train_end(const Logs&) {}
  virtual void on_epoch_begin(int /*epoch*/, const Logs&) {}
  virtual void on_epoch_end(int /*epoch*/, Logs&) {}
  virtual void on_train_batch_begin(int /*batch*/, const Logs&) {}
  virtual void on_train_batch_end(int /*batch*/, const Logs&) {}
  virtual void on_test_begin(const Logs&) {}
  virtual void on_test_end(const Logs&) {}
  virtual void on_test_batch_begin(int /*batch*/, const Logs&) {}
  virtual void on_test_batch_end(int /*batch*/, const Logs&) {}
  virtual void on_predict_begin(const Logs&) {}
  virtual void on_predict_end(const Logs&) {}
  virtual void on_predict_batch_begin(int /*batch*/, const Logs&) {}
  virtual void on_predict_batch_end(int /*batch*/, const Logs&) {}

 protected:
  Model<T>* model_ = nullptr;
  std::map<std::string, double> params_;
};

/// The callbacks of one fit/evaluate/predict call: each hook goes to every callback, in order.
template <class T = float>
class CallbackList {
 public:
  using Ptr = std::shared_ptr<Callback<T>>;
  CallbackList() = default;
  explicit CallbackList(std::vector<Ptr> cbs) : cbs_(std::move(cbs)) {}
  void prepend(Ptr cb) { cbs_.insert(cbs_.begin(), std::move(cb)); }
  bool empty() const { return cbs_.empty(); }
  /// Drops the chief-only callbacks (on the replicas other than the chief).
  void remove_chief_only() {
    std::erase_if(cbs_, [](const Ptr& cb) { return cb->chief_only(); });
  }
  void set_model(Model<T>* m) {
    for (auto& cb : cbs_) cb->set_model(m);
  }
  void set_params(const std::map<std::string, double>& p) {
    for (auto& cb : cbs_) cb->set_params(p);
  }
  void on_train_begin(const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_train_begin(l); });
  }
  void on_train_end(const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_train_end(l); });
  }
  void on_epoch_begin(int epoch, const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_epoch_begin(epoch, l); });
  }
  void on_epoch_end(int epoch, Logs& l) {
    each([&](Callback<T>& c) { c.on_epoch_end(epoch, l); });
  }
  void on_train_batch_begin(int b, const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_train_batch_begin(b, l); });
  }
  void on_train_batch_end(int b, const Logs& l) {
    each([&](Callback<T>& c) { c.on_train_batch_end(b, l); });
  }
  void on_test_begin(const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_test_begin(l); });
  }
  void on_test_end(const Logs& l) {
    each([&](Callback<T>& c) { c.on_test_end(l); });
  }
  void on_test_batch_begin(int b, const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_test_batch_begin(b, l); });
  }
  void on_test_batch_end(int b, const Logs& l) {
    each([&](Callback<T>& c) { c.on_test_batch_end(b, l); });
  }
  void on_predict_begin(const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_predict_begin(l); });
  }
  void on_predict_end(const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_predict_end(l); });
  }
  void on_predict_batch_begin(int b, const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_predict_batch_begin(b, l); });
  }
  void on_predict_batch_end(int b, const Logs& l = {}) {
    each([&](Callback<T>& c) { c.on_predict_batch_end(b, l); });
  }

 private:
  std::vector<Ptr> cbs_;
  template <class F>
  void each(F&& f) {
    for (auto& cb : cbs_) f(*cb);
  }
};

}  // namespace callbacks

/// What fit returns: per-epoch values of loss, metrics, val_loss, val_metrics (Keras History).
struct History {
  std::map<std::string, std::vector<double>> history;
  std::vector<int> epoch;
  const std::vector<double>& operator[](const std::string& k) const {
    auto it = history.find(k);
    if (it == history.end()) throw std::out_of_range("History has no key '" + k + "'");
    return it->second;
  }
};

}  // namespace keras
