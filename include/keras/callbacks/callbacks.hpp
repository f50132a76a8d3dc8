// Keras's built-in callbacks: ProgbarLogger, EarlyStopping, CSVLogger, TerminateOnNaN,
// LearningRateScheduler, ReduceLROnPlateau, LambdaCallback. (ModelCheckpoint: model_checkpoint.hpp.)
#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <sstream>
#include <unistd.h>

#include "../models/model.hpp"
#include "callback.hpp"
#include "progbar.hpp"

namespace keras::callbacks {

namespace detail {
/// Keras's mode="auto": maximise accuracies and AUC-like metrics, minimise the rest.
inline bool monitor_is_max(const std::string& monitor, const std::string& mode) {
  if (mode == "max") return true;
  if (mode == "min") return false;
  if (mode != "auto") throw ValueError("mode must be 'auto', 'min' or 'max', got '" + mode + "'");
  return monitor.find("acc") != std::string::npos || monitor.find("auc") != std::string::npos;
}
}  // namespace detail

/// Stops training when `monitor` has stopped improving for `patience` epochs.
struct EarlyStoppingOptions {
  std::string monitor = "val_loss";
  double min_delta = 0.0;
  int patience = 0;
  int verbose = 0;
  std::string mode = "auto";
  std::optional<double> baseline;
  bool restore_best_weights = false;
  int start_from_epoch = 0;
};

template <class T = float>
class EarlyStopping : public Callback<T> {
 public:
  explicit EarlyStopping(EarlyStoppingOptions o = {})
      : o_(std::move(o)), max_(detail::monitor_is_max(o_.monitor, o_.mode)) {}
  void on_train_begin(const Logs&) override {
    wait_ = 0;
    stopped_epoch_ = 0;
    best_epoch_ = 0;
    best_ = max_ ? -INFINITY : INFINITY;
    best_weights_.clear();
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    auto it = logs.find(o_.monitor);
    if (it == logs.end()) {
      std::cerr << "Early stopping conditioned on metric `" << o_.monitor << "` which is not available.\n";
      return;
    }
    if (epoch < o_.start_from_epoch) return;
    double cur = it->second;
    if (o_.restore_best_weights && best_weights_.empty()) save_weights();
    ++wait_;
    if (improved(cur, best_)) {
      best_ = cur;
      best_epoch_ = epoch;
      if (o_.restore_best_weights) save_weights();
      if (!o_.baseline || improved(cur, *o_.baseline)) wait_ = 0;
      return;
    }
    if (wait_ >= o_.patience && epoch > 0) {
      stopped_epoch_ = epoch;
      this->model_->stop_training = true;
      if (o_.restore_best_weights && !best_weights_.empty()) {
        if (o_.verbose)
          std::cout << "Restoring model weights from the end of the best epoch: " << best_epoch_ + 1 << ".\n";
        restore_weights();
      }
    }
  }
  void on_train_end(const Logs&) override {
    if (stopped_epoch_ > 0 && o_.verbose) std::cout << "Epoch " << stopped_epoch_ + 1 << ": early stopping\n";
  }
  int stopped_epoch() const { return stopped_epoch_; }
  int best_epoch() const { return best_epoch_; }
  double best() const { return best_; }

 private:
  EarlyStoppingOptions o_;
  bool max_;
  int wait_ = 0, stopped_epoch_ = 0, best_epoch_ = 0;
  double best_ = INFINITY;
  std::vector<Tensor<T>> best_weights_;
  bool improved(double cur, double ref) const { return max_ ? cur - o_.min_delta > ref : cur + o_.min_delta < ref; }
  void save_weights() {
    best_weights_.clear();
    for (auto* v : this->model_->variables()) best_weights_.push_back(v->value);
  }
  void restore_weights() {
    auto vars = this->model_->variables();
    for (std::size_t i = 0; i < vars.size(); ++i) {
      vars[i]->value = best_weights_[i];
      vars[i]->changed();
    }
  }
};

/// Streams epoch results to a CSV file: one header row (epoch + sorted log keys), one row per epoch.
template <class T = float>
class CSVLogger : public Callback<T> {
 public:
  explicit CSVLogger(std::string filename, char separator = ',', bool append = false)
      : filename_(std::move(filename)), sep_(separator), append_(append) {}
  bool chief_only() const override { return true; }
  void on_train_begin(const Logs&) override {
    bool had = append_ && std::ifstream(filename_).good();
    f_.open(filename_, append_ ? std::ios::app : std::ios::trunc);
    if (!f_) throw IOError("CSVLogger: cannot open '" + filename_ + "' for writing");
    header_written_ = had;
    keys_.clear();
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    if (keys_.empty())
      for (auto& [k, v] : logs) keys_.push_back(k);  // std::map: sorted, as Keras
    if (!header_written_) {
      f_ << "epoch";
      for (auto& k : keys_) f_ << sep_ << k;
      f_ << "\n";
      header_written_ = true;
    }
    f_ << epoch;
    for (auto& k : keys_) {
      auto it = logs.find(k);
      f_ << sep_;
      if (it != logs.end())
        f_ << std::setprecision(17) << it->second;
      else
        f_ << "NA";
    }
    f_ << "\n" << std::flush;
  }
  void on_train_end(const Logs&) override { f_.close(); }

 private:
  std::string filename_;
  char sep_;
  bool append_;
  std::ofstream f_;
  bool header_written_ = false;
  std::vector<std::string> keys_;
};

/// Stops training as soon as a batch loss is NaN or infinite.
template <class T = float>
class TerminateOnNaN : public Callback<T> {
 public:
  void on_train_batch_end(int batch, const Logs& logs) override {
    auto it = logs.find("loss");
    if (it != logs.end() && !std::isfinite(it->second)) {
      std::cout << "\nBatch " << batch << ": Invalid loss, terminating training\n" << std::flush;
      this->model_->stop_training = true;
      terminated_ = true;
    }
  }
  bool terminated() const { return terminated_; }

 private:
  bool terminated_ = false;
};

/// Sets the learning rate at the start of each epoch: lr = schedule(epoch, current_lr).
template <class T = float>
class LearningRateScheduler : public Callback<T> {
 public:
  explicit LearningRateScheduler(std::function<double(int, double)> schedule, int verbose = 0)
      : schedule_(std::move(schedule)), verbose_(verbose) {}
  void on_epoch_begin(int epoch, const Logs&) override {
    auto& opt = this->model_->optimizer();
    double lr = schedule_(epoch, opt.learning_rate());
    if (!std::isfinite(lr)) throw ValueError("LearningRateScheduler: the schedule returned an invalid learning rate");
    opt.set_learning_rate(lr);
    if (verbose_)
      std::cout << "\nEpoch " << epoch + 1 << ": LearningRateScheduler setting learning rate to " << lr << ".\n";
  }
  void on_epoch_end(int, Logs& logs) override { logs["learning_rate"] = this->model_->optimizer().learning_rate(); }

 private:
  std::function<double(int, double)> schedule_;
  int verbose_;
};

struct ReduceLROnPlateauOptions {
  std::string monitor = "val_loss";
  double factor = 0.1;
  int patience = 10;
  int verbose = 0;
  std::string mode = "auto";
  double min_delta = 1e-4;
  int cooldown = 0;
  double min_lr = 0.0;
};

/// Multiplies the learning rate by `factor` when `monitor` stops improving.
template <class T = float>
class ReduceLROnPlateau : public Callback<T> {
 public:
  explicit ReduceLROnPlateau(ReduceLROnPlateauOptions o = {})
      : o_(std::move(o)), max_(detail::monitor_is_max(o_.monitor, o_.mode)) {
    if (o_.factor >= 1.0) throw ValueError("ReduceLROnPlateau does not support a factor >= 1.0");
  }
  void on_train_begin(const Logs&) override {
    best_ = max_ ? -INFINITY : INFINITY;
    wait_ = 0;
    cooldown_counter_ = 0;
  }
  void on_epoch_end(int epoch, Logs& logs) override {
    auto& opt = this->model_->optimizer();
    logs["learning_rate"] = opt.learning_rate();
    auto it = logs.find(o_.monitor);
    if (it == logs.end()) return;
    double cur = it->second;
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      wait_ = 0;
    }
    if (max_ ? cur > best_ + o_.min_delta : cur < best_ - o_.min_delta) {
      best_ = cur;
      wait_ = 0;
    } else if (cooldown_counter_ <= 0) {
      if (++wait_ >= o_.patience) {
        double old_lr = opt.learning_rate();
        if (old_lr > o_.min_lr) {
          double new_lr = std::max(old_lr * o_.factor, o_.min_lr);
          opt.set_learning_rate(new_lr);
          if (o_.verbose)
            std::cout << "\nEpoch " << epoch + 1 << ": ReduceLROnPlateau reducing learning rate to " << new_lr << ".\n";
          cooldown_counter_ = o_.cooldown;
          wait_ = 0;
        }
      }
    }
  }

 private:
  ReduceLROnPlateauOptions o_;
  bool max_;
  double best_ = INFINITY;
  int wait_ = 0, cooldown_counter_ = 0;
};

/// A callback from plain functions (Keras's LambdaCallback).
template <class T = float>
class LambdaCallback : public Callback<T> {
 public:
  std::function<void(int, Logs&)> on_epoch_end_fn;
  std::function<void(int, const Logs&)> on_batch_end_fn;
  void on_epoch_end(int e, Logs& l) override {
    if (on_epoch_end_fn) on_epoch_end_fn(e, l);
  }
  void on_train_batch_end(int b, const Logs& l) override {
    if (on_batch_end_fn) on_batch_end_fn(b, l);
  }
};

}  // namespace keras::callbacks
