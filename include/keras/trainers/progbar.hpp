// ProgbarLogger: Keras's progress bar for fit().
#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>
#include <vector>

#include "callback.hpp"

namespace keras::callbacks {

namespace detail {
/// Keras's number format in logs: %.4f, or %.4e for tiny values.
inline std::string format_value(double v) {
  char b[32];
  std::snprintf(b, sizeof b, std::abs(v) > 1e-3 || v == 0 ? "%.4f" : "%.4e", v);
  return b;
}
/// "loss", the metrics, then "val_loss" and the validation metrics (Keras's order).
inline std::vector<std::string> ordered_keys(const Logs& logs) {
  std::vector<std::string> ks;
  if (logs.count("loss")) ks.push_back("loss");
  for (auto& [k, v] : logs)
    if (k != "loss" && k.rfind("val_", 0) != 0) ks.push_back(k);
  if (logs.count("val_loss")) ks.push_back("val_loss");
  for (auto& [k, v] : logs)
    if (k != "val_loss" && k.rfind("val_", 0) == 0) ks.push_back(k);
  return ks;
}
}  // namespace detail

/// Keras's progress bar: `Epoch 3/10` then `39/39 [======>.....] - 2s 51ms/step - loss: 0.4200 - ...`.
/// On a terminal the bar is redrawn in place; otherwise one line per epoch is printed.
/// verbose 2 (fit's verbose=2): one line per epoch without a bar, as Keras:
/// `39/39 - 2s - 51ms/step - loss: 0.4200 - ...`.
template <class T = float>
class ProgbarLogger : public Callback<T> {
 public:
  explicit ProgbarLogger(std::ostream& os = std::cout, std::optional<bool> dynamic = std::nullopt, int verbose = 1)
      : os_(os), verbose_(verbose) {
    dynamic_ = verbose != 2 && (dynamic ? *dynamic : (&os == &std::cout && isatty(STDOUT_FILENO)));
  }
  bool chief_only() const override { return true; }
  void on_train_begin(const Logs&) override { in_fit_ = true; }
  void on_train_end(const Logs&) override { in_fit_ = false; }
  // evaluate() and predict() (not fit's validation, as Keras): a bar over the batches, then one line.
  void on_test_begin(const Logs&) override { begin_pass(); }
  void on_predict_begin(const Logs&) override { begin_pass(); }
  void on_test_batch_end(int batch, const Logs& logs) override { pass_batch(batch, logs); }
  void on_predict_batch_end(int batch, const Logs& logs) override { pass_batch(batch, logs); }
  void on_test_end(const Logs& logs) override { end_pass(logs); }
  void on_predict_end(const Logs& logs) override { end_pass(logs); }

  void on_epoch_begin(int epoch, const Logs&) override {
    start_ = last_draw_ = std::chrono::steady_clock::now();
    target_ = static_cast<int>(this->params_["steps"]);
    os_ << "Epoch " << epoch + 1 << "/" << static_cast<int>(this->params_["epochs"]) << "\n" << std::flush;
    width_ = 0;
  }
  void on_train_batch_end(int batch, const Logs& logs) override { draw_progress(batch, logs); }
  void draw_progress(int batch, const Logs& logs) {
    if (!dynamic_) return;
    auto now = std::chrono::steady_clock::now();
    if (batch + 1 < target_ && std::chrono::duration<double>(now - last_draw_).count() < 0.05) return;
    last_draw_ = now;
    double elapsed = std::chrono::duration<double>(now - start_).count();
    double eta = (batch + 1) ? elapsed / (batch + 1) * (target_ - batch - 1) : 0;
    std::string line = bar(batch + 1) + " - ETA: " + format_eta(eta);
    for (auto& k : detail::ordered_keys(logs)) line += " - " + k + ": " + detail::format_value(logs.at(k));
    draw(line);
  }
  void on_epoch_end(int, Logs& logs) override { draw_final(logs); }
  void draw_final(const Logs& logs) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const std::string secs_s = std::to_string(static_cast<long>(std::lround(secs))) + "s";
    std::string line = verbose_ == 2 ? count(target_) + " - " + secs_s + " - " + per_step(secs / std::max(1, target_))
                                     : bar(target_) + " - " + secs_s + " " + per_step(secs / std::max(1, target_));
    for (auto& k : detail::ordered_keys(logs)) line += " - " + k + ": " + detail::format_value(logs.at(k));
    draw(line);
    os_ << "\n" << std::flush;
    width_ = 0;
  }
  /// "12/39", the count right-aligned to the target's width.
  std::string count(int current) const {
    int digits = static_cast<int>(std::log10(std::max(1, target_))) + 1;
    char head[64];
    std::snprintf(head, sizeof head, "%*d/%d", digits, current, target_);
    return head;
  }
  /// The bar part: "12/39 [=======>......................]".
  std::string bar(int current) const {
    std::string b = count(current) + " [";
    int prog = target_ ? static_cast<int>(30.0 * current / target_) : 30;
    if (prog > 0) {
      b += std::string(prog - 1, '=');
      b += current < target_ ? '>' : '=';
    }
    b += std::string(30 - prog, '.') + "]";
    return b;
  }
  static std::string per_step(double s) {
    char b[32];
    if (s >= 1)
      std::snprintf(b, sizeof b, "%.0fs/step", s);
    else if (s >= 1e-3)
      std::snprintf(b, sizeof b, "%.0fms/step", s * 1e3);
    else
      std::snprintf(b, sizeof b, "%.0fus/step", s * 1e6);
    return b;
  }

 private:
  std::ostream& os_;
  int verbose_ = 1;
  bool in_fit_ = false, in_pass_ = false;
  void begin_pass() {
    in_pass_ = !in_fit_;
    if (!in_pass_) return;
    start_ = last_draw_ = std::chrono::steady_clock::now();
    target_ = this->params_.contains("steps") ? static_cast<int>(this->params_["steps"]) : 0;
    width_ = 0;
  }
  void pass_batch(int batch, const Logs& logs) {
    if (!in_pass_) return;
    if (target_ <= batch) target_ = batch + 1;  // a source of unknown length: count as we go
    draw_progress(batch, logs);
  }
  void end_pass(const Logs& logs) {
    if (!in_pass_) return;
    draw_final(logs);
    in_pass_ = false;
  }
  bool dynamic_;
  int target_ = 0;
  std::size_t width_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  static std::string format_eta(double eta) {
    char b[32];
    if (eta > 3600)
      std::snprintf(b, sizeof b, "%d:%02d:%02d", int(eta) / 3600, (int(eta) % 3600) / 60, int(eta) % 60);
    else if (eta > 60)
      std::snprintf(b, sizeof b, "%d:%02d", int(eta) / 60, int(eta) % 60);
    else
      std::snprintf(b, sizeof b, "%ds", int(eta));
    return b;
  }
  void draw(const std::string& line) {
    if (dynamic_) {
      os_ << "\r" << line;
      if (line.size() < width_) os_ << std::string(width_ - line.size(), ' ');
    } else {
      os_ << line;
    }
    width_ = line.size();
    os_ << std::flush;
  }
};

}  // namespace keras::callbacks
