// ModelCheckpoint: saves the model (TF.js layers format) after epochs, optionally only when the
// monitored value improves. Saving is crash-safe and durable (see io::save_model: temp file,
// fsync, rename, fsync of the folder): a run killed at any moment, or a power cut, leaves the last
// complete checkpoint loadable.
#pragma once
#include "../io/tfjs.hpp"
#include "callbacks.hpp"

namespace keras::callbacks {

struct ModelCheckpointOptions {
  std::string monitor = "val_loss";
  int verbose = 0;
  bool save_best_only = false;
  std::string mode = "auto";
};

template <class T = float>
class ModelCheckpoint : public Callback<T> {
 public:
  /// `dirpath` may contain "{epoch}" (1-based epoch number), as Keras's filepath.
  explicit ModelCheckpoint(std::string dirpath, ModelCheckpointOptions o = {})
      : path_(std::move(dirpath)), o_(std::move(o)), max_(detail::monitor_is_max(o_.monitor, o_.mode)) {}
  bool chief_only() const override { return true; }
  void on_train_begin(const Logs&) override { best_ = max_ ? -INFINITY : INFINITY; }
  void on_epoch_end(int epoch, Logs& logs) override {
    std::string path = path_;
    if (auto p = path.find("{epoch}"); p != std::string::npos) path.replace(p, 7, std::to_string(epoch + 1));
    if (o_.save_best_only) {
      auto it = logs.find(o_.monitor);
      if (it == logs.end()) {
        std::cerr << "Can save best model only with " << o_.monitor << " available, skipping.\n";
        return;
      }
      double cur = it->second;
      if (!(max_ ? cur > best_ : cur < best_)) {
        if (o_.verbose) std::cout << "\nEpoch " << epoch + 1 << ": " << o_.monitor << " did not improve from " << best_ << "\n";
        return;
      }
      if (o_.verbose)
        std::cout << "\nEpoch " << epoch + 1 << ": " << o_.monitor << " improved from " << best_ << " to " << cur << ", saving model to " << path << "\n";
      best_ = cur;
    } else if (o_.verbose) {
      std::cout << "\nEpoch " << epoch + 1 << ": saving model to " << path << "\n";
    }
    io::save_model(*this->model_, path);
  }
  double best() const { return best_; }

 private:
  std::string path_;
  ModelCheckpointOptions o_;
  bool max_;
  double best_ = INFINITY;
};

}  // namespace keras::callbacks
