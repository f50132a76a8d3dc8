// Callbacks: Keras's hooks into fit/evaluate/predict. Logs are name -> value maps.
#pragma once
#include <map>
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
  virtual void on_train_begin(const Logs&) {}
  virtual void on_train_end(const Logs&) {}
  virtual void on_epoch_begin(int epoch, const Logs&) {}
  virtual void on_epoch_end(int epoch, Logs&) {}
  virtual void on_train_batch_begin(int batch, const Logs&) {}
  virtual void on_train_batch_end(int batch, const Logs&) {}
  virtual void on_test_begin(const Logs&) {}
  virtual void on_test_end(const Logs&) {}
  virtual void on_test_batch_begin(int batch, const Logs&) {}
  virtual void on_test_batch_end(int batch, const Logs&) {}
  virtual void on_predict_begin(const Logs&) {}
  virtual void on_predict_end(const Logs&) {}
  virtual void on_predict_batch_begin(int batch, const Logs&) {}
  virtual void on_predict_batch_end(int batch, const Logs&) {}

 protected:
  Model<T>* model_ = nullptr;
  std::map<std::string, double> params_;
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
