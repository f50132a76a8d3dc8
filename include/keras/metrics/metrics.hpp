// Metrics with running state: Mean, Accuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
// BinaryAccuracy, Precision, Recall, AUC, (Sparse)TopKCategoricalAccuracy, and losses used as metrics; plus Keras's
// "accuracy" resolution rule.
//
// Semantics follow Keras 3 (keras/src/metrics/accuracy_metrics.py, reduction_metrics.py,
// keras/src/trainers/compile_utils.py); tf.keras 2.x behaves the same for everything here.
//  * A MeanMetricWrapper-style metric computes one value per position, averages it per sample (over all
//    non-batch positions), then keeps total += sum over samples, count += number of samples;
//    result() = total / count (0 when count is 0, like Keras's divide_no_nan).
//  * Argmax ties resolve to the first index, like tf.argmax / np.argmax.
//  * BinaryAccuracy: y_pred > threshold (strictly) gives 1, compared for equality with y_true.
//  * SparseCategoricalAccuracy: y_true holds class ids, shape y_pred.shape without the last axis or with a
//    trailing 1; a sample matches when its id equals argmax(y_pred).
//  * "accuracy" / "acc" (any case) resolve like Keras's compile(): binary when y_pred's last dim is 1, else
//    sparse categorical when y_true has lower rank than y_pred or its last dim is 1, else categorical.
//    The metric is named by the identifier as given ("acc" stays "acc").
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../losses/losses.hpp"

namespace keras::metrics {

template <class T = float>
class Metric {
 public:
  explicit Metric(std::string name) : name_(std::move(name)) {}
  virtual ~Metric() = default;
  /// The metric's name, used as its key in logs ("accuracy", "categorical_accuracy", "loss", ...).
  virtual std::string name() const { return name_; }
  /// Adds a batch. Metrics that do not take (y_true, y_pred), such as Mean, throw StateError.
  virtual void update_state(const Tensor<T>& y_true, const Tensor<T>& y_pred) {
    (void)y_true;
    (void)y_pred;
    throw StateError("Metric '" + name_ + "' does not take (y_true, y_pred)");
  }
  virtual double result() const = 0;
  virtual void reset_state() = 0;
  /// The running state as numbers that add up over disjoint parts of the data: data-parallel
  /// fit and evaluate sum them over the replicas, then set_state. Mean and the per-sample means
  /// (accuracies, loss metrics): {total, count}. A metric without them cannot be distributed.
  virtual std::vector<double> state() const {
    throw StateError("Metric '" + name_ +
                     "' cannot be reduced over replicas: it does not implement state() / set_state()");
  }
  virtual void set_state(const std::vector<double>& s) {
    (void)s;
    throw StateError("Metric '" + name_ +
                     "' cannot be reduced over replicas: it does not implement state() / set_state()");
  }

 protected:
  std::string name_;
  static void check_state(const std::vector<double>& s, std::size_t n, const std::string& who) {
    if (s.size() != n)
      throw ValueError("Metric '" + who + "'.set_state: expected " + std::to_string(n) + " numbers, got " +
                       std::to_string(s.size()));
  }
};

/// Running weighted mean: update_state(value, count) adds `value` with weight `count` (e.g. a batch-mean loss
/// weighted by the batch size).
template <class T = float>
class Mean : public Metric<T> {
 public:
  explicit Mean(std::string name = "mean") : Metric<T>(std::move(name)) {}
  using Metric<T>::update_state;
  void update_state(double value, double count = 1.0) {
    if (!(count >= 0)) throw ValueError("Mean.update_state: count must be >= 0, got " + std::to_string(count));
    total_ += value * count;
    count_ += count;
  }
  double result() const override { return count_ > 0 ? total_ / count_ : 0.0; }
  void reset_state() override { total_ = count_ = 0.0; }
  double total() const { return total_; }
  double count() const { return count_; }
  std::vector<double> state() const override { return {total_, count_}; }
  void set_state(const std::vector<double>& s) override {
    this->check_state(s, 2, this->name_);
    total_ = s[0];
    count_ = s[1];
  }

 private:
  double total_ = 0.0, count_ = 0.0;
};

/// Base of metrics that average a per-sample value over all samples seen.
template <class T = float>
class MeanMetricWrapper : public Metric<T> {
 public:
  using Metric<T>::Metric;
  void update_state(const Tensor<T>& y_true, const Tensor<T>& y_pred) override {
    double sum = 0.0;
    Index samples = 0;
    batch(y_true, y_pred, sum, samples);
    total_ += sum;
    count_ += static_cast<double>(samples);
  }
  double result() const override { return count_ > 0 ? total_ / count_ : 0.0; }
  void reset_state() override { total_ = count_ = 0.0; }
  double total() const { return total_; }
  double count() const { return count_; }
  std::vector<double> state() const override { return {total_, count_}; }
  void set_state(const std::vector<double>& s) override {
    this->check_state(s, 2, this->name_);
    total_ = s[0];
    count_ = s[1];
  }

 protected:
  /// Adds the sum over samples of the per-sample value to `sum`, and the number of samples to `samples`.
  virtual void batch(const Tensor<T>& y_true, const Tensor<T>& y_pred, double& sum, Index& samples) const = 0;

  /// Samples = leading dimension (1 for rank 0/1 data).
  static Index num_samples(const Shape& s) { return s.size() >= 2 ? s[0] : 1; }

  /// Sums per-position matches averaged per sample: `positions` positions, `samples` samples.
  template <class F>
  static double per_sample_mean(Index positions, Index samples, F match) {
    if (samples == 0 || positions == 0) return 0.0;
    const Index per = positions / samples;
    double sum = 0.0;
    for (Index s = 0; s < samples; ++s) {
      Index hits = 0;
      for (Index p = s * per; p < (s + 1) * per; ++p) hits += match(p) ? 1 : 0;
      sum += static_cast<double>(hits) / static_cast<double>(per);
    }
    return sum;
  }

  static Index argmax(const T* row, Index n) {
    Index best = 0;
    for (Index i = 1; i < n; ++i)
      if (row[i] > row[best]) best = i;
    return best;
  }

  void check_same(const Tensor<T>& y_true, const Tensor<T>& y_pred, bool allow_trailing_one) const {
    const Shape &t = y_true.shape(), &p = y_pred.shape();
    if (t == p) return;
    auto drop1 = [](const Shape& a, const Shape& b) {
      return a.size() == b.size() + 1 && a.back() == 1 && std::equal(b.begin(), b.end(), a.begin());
    };
    if (allow_trailing_one && (drop1(t, p) || drop1(p, t))) return;
    throw ShapeError("Metric '" + this->name_ + "': y_true and y_pred shapes differ: y_true " + shape_str(t) +
                     ", y_pred " + shape_str(p));
  }

 private:
  double total_ = 0.0, count_ = 0.0;
};

/// keras.metrics.Accuracy: how often y_pred equals y_true exactly (element-wise).
template <class T = float>
class Accuracy : public MeanMetricWrapper<T> {
 public:
  explicit Accuracy(std::string name = "accuracy") : MeanMetricWrapper<T>(std::move(name)) {}

 protected:
  void batch(const Tensor<T>& yt, const Tensor<T>& yp, double& sum, Index& samples) const override {
    this->check_same(yt, yp, true);
    samples = this->num_samples(yp.shape());
    sum = this->per_sample_mean(yp.size(), samples, [&](Index i) { return yt[i] == yp[i]; });
  }
};

/// argmax(y_true) == argmax(y_pred) over the last axis.
template <class T = float>
class CategoricalAccuracy : public MeanMetricWrapper<T> {
 public:
  explicit CategoricalAccuracy(std::string name = "categorical_accuracy") : MeanMetricWrapper<T>(std::move(name)) {}

 protected:
  void batch(const Tensor<T>& yt, const Tensor<T>& yp, double& sum, Index& samples) const override {
    this->check_same(yt, yp, false);
    if (yp.shape().empty() || yp.shape().back() == 0) {
      samples = 0;
      return;
    }
    const Index C = yp.shape().back(), rows = yp.size() / C;
    samples = this->num_samples(yp.shape());
    sum = this->per_sample_mean(rows, samples, [&](Index r) {
      return this->argmax(yt.data() + r * C, C) == this->argmax(yp.data() + r * C, C);
    });
  }
};

/// y_true (class ids) == argmax(y_pred) over the last axis.
template <class T = float>
class SparseCategoricalAccuracy : public MeanMetricWrapper<T> {
 public:
  explicit SparseCategoricalAccuracy(std::string name = "sparse_categorical_accuracy")
      : MeanMetricWrapper<T>(std::move(name)) {}

 protected:
  void batch(const Tensor<T>& yt, const Tensor<T>& yp, double& sum, Index& samples) const override {
    const Shape& ps = yp.shape();
    if (ps.empty())
      throw ShapeError("Metric '" + this->name_ + "': y_pred must have a class axis, got " + shape_str(ps));
    Shape lead(ps.begin(), ps.end() - 1), lead1 = lead;
    lead1.push_back(1);
    if (yt.shape() != lead && yt.shape() != lead1)
      throw ShapeError("Metric '" + this->name_ + "': y_true must hold one class id per sample (shape " +
                       shape_str(lead) + " or " + shape_str(lead1) + "), got y_true " + shape_str(yt.shape()) +
                       " for y_pred " + shape_str(ps));
    const Index C = ps.back(), rows = yt.size();
    samples = this->num_samples(ps);
    if (C == 0) return;
    sum = this->per_sample_mean(rows, samples, [&](Index r) {
      return static_cast<double>(yt[r]) == static_cast<double>(this->argmax(yp.data() + r * C, C));
    });
  }
};

/// (y_pred > threshold) == y_true.
template <class T = float>
class BinaryAccuracy : public MeanMetricWrapper<T> {
 public:
  explicit BinaryAccuracy(std::string name = "binary_accuracy", double threshold = 0.5)
      : MeanMetricWrapper<T>(std::move(name)), threshold_(threshold) {}
  double threshold() const { return threshold_; }

 protected:
  void batch(const Tensor<T>& yt, const Tensor<T>& yp, double& sum, Index& samples) const override {
    this->check_same(yt, yp, true);
    samples = this->num_samples(yp.shape());
    sum = this->per_sample_mean(yp.size(), samples, [&](Index i) {
      const double pred = static_cast<double>(yp[i]) > threshold_ ? 1.0 : 0.0;
      return static_cast<double>(yt[i]) == pred;
    });
  }

 private:
  double threshold_;
};

/// A loss used as a metric (e.g. metrics=["mse"]): the batch loss weighted by the number of samples.
template <class T = float>
class LossMetric : public MeanMetricWrapper<T> {
 public:
  LossMetric(std::string name, std::unique_ptr<losses::Loss<T>> loss)
      : MeanMetricWrapper<T>(std::move(name)), loss_(std::move(loss)) {}

 protected:
  void batch(const Tensor<T>& yt, const Tensor<T>& yp, double& sum, Index& samples) const override {
    samples = this->num_samples(yp.shape());
    sum = loss_->compute(yt, yp, nullptr) * static_cast<double>(samples);
  }

 private:
  std::unique_ptr<losses::Loss<T>> loss_;
};

// ---------------------------------------------------------------------------------------------------------
// Confusion-matrix metrics (keras/src/metrics/confusion_metrics.py, metrics_utils.py). y_true is positive
// where it is non-zero; every element counts (the batch flattened), or only column class_id of the last axis.

struct PrecisionOptions {
  double thresholds = 0.5;        ///< a prediction is positive when > thresholds (Keras's default 0.5)
  std::optional<Index> class_id;  ///< only this class (last axis) counts
  std::string name = "precision";
};
using RecallOptions = PrecisionOptions;

/// Base of Precision and Recall: the true/false positive/negative counts at one threshold.
template <class T = float>
class ThresholdConfusion : public Metric<T> {
 public:
  explicit ThresholdConfusion(PrecisionOptions o) : Metric<T>(o.name), o_(std::move(o)) {}
  void update_state(const Tensor<T>& y_true, const Tensor<T>& y_pred) override {
    if (y_true.size() != y_pred.size())
      throw ShapeError("Metric '" + this->name_ + "': y_true and y_pred shapes differ: y_true " +
                       shape_str(y_true.shape()) + ", y_pred " + shape_str(y_pred.shape()));
    const Index C = y_pred.shape().empty() ? 1 : y_pred.shape().back();
    if (o_.class_id && (*o_.class_id < 0 || *o_.class_id >= C))
      throw ValueError("Metric '" + this->name_ + "': class_id " + std::to_string(*o_.class_id) +
                       " is not a class of y_pred " + shape_str(y_pred.shape()));
    for (Index i = 0; i < y_pred.size(); ++i) {
      if (o_.class_id && i % C != *o_.class_id) continue;
      const bool pos = static_cast<double>(y_true[i]) != 0.0, pred = static_cast<double>(y_pred[i]) > o_.thresholds;
      (pos ? (pred ? tp_ : fn_) : (pred ? fp_ : tn_)) += 1.0;
    }
  }
  void reset_state() override { tp_ = fp_ = tn_ = fn_ = 0.0; }
  double true_positives() const { return tp_; }
  double false_positives() const { return fp_; }
  double true_negatives() const { return tn_; }
  double false_negatives() const { return fn_; }

 protected:
  PrecisionOptions o_;
  double tp_ = 0, fp_ = 0, tn_ = 0, fn_ = 0;
  static double divide_no_nan(double a, double b) { return b == 0 ? 0.0 : a / b; }
};

/// keras.metrics.Precision: tp / (tp + fp) (0 when nothing was predicted positive).
template <class T = float>
class Precision : public ThresholdConfusion<T> {
 public:
  explicit Precision(PrecisionOptions o = {}) : ThresholdConfusion<T>(std::move(o)) {}
  double result() const override { return this->divide_no_nan(this->tp_, this->tp_ + this->fp_); }
};

/// keras.metrics.Recall: tp / (tp + fn) (0 when there was no positive label).
template <class T = float>
class Recall : public ThresholdConfusion<T> {
 public:
  explicit Recall(RecallOptions o = {.thresholds = 0.5, .class_id = std::nullopt, .name = "recall"})
      : ThresholdConfusion<T>(std::move(o)) {}
  double result() const override { return this->divide_no_nan(this->tp_, this->tp_ + this->fn_); }
};

struct AUCOptions {
  Index num_thresholds = 200;
  std::string curve = "ROC";                       ///< "ROC" or "PR"
  std::string summation_method = "interpolation";  ///< "interpolation", "minoring" or "majoring"
  std::string name = "auc";
  bool from_logits = false;  ///< apply a sigmoid to y_pred first
};

/// keras.metrics.AUC: confusion counts at num_thresholds thresholds evenly spaced in [0, 1] (the first
/// -1e-7, the last 1 + 1e-7), y_pred clipped to [0, 1]; a prediction p is positive at threshold i when
/// p > i / (num_thresholds - 1), counted as Keras does by buckets ceil(p (n - 1)) - 1 (at least 0). The
/// area is the Riemann sum over consecutive thresholds of (x_i - x_{i+1}) * height: ROC x = fp rate, y =
/// recall, height the mean of y_i and y_{i+1} ("interpolation"), their minimum or maximum; PR with
/// "interpolation" is Davis & Goadrich's interpolation (Keras's interpolate_pr_auc).
template <class T = float>
class AUC : public Metric<T> {
 public:
  explicit AUC(AUCOptions o = {}) : Metric<T>(o.name), o_(std::move(o)) {
    if (o_.num_thresholds <= 1)
      throw ValueError("Argument `num_thresholds` must be an integer > 1. Received: num_thresholds=" +
                       std::to_string(o_.num_thresholds));
    if (o_.curve != "ROC" && o_.curve != "PR")
      throw ValueError("Invalid AUC curve value: \"" + o_.curve + "\". Expected values are [\"ROC\", \"PR\"]");
    if (o_.summation_method != "interpolation" && o_.summation_method != "minoring" &&
        o_.summation_method != "majoring")
      throw ValueError("Invalid AUC summation method value: \"" + o_.summation_method +
                       "\". Expected values are [\"interpolation\", \"majoring\", \"minoring\"]");
    reset_state();
  }
  void update_state(const Tensor<T>& y_true, const Tensor<T>& y_pred) override {
    if (y_true.size() != y_pred.size())
      throw ShapeError("Metric '" + this->name_ + "': y_true and y_pred shapes differ: y_true " +
                       shape_str(y_true.shape()) + ", y_pred " + shape_str(y_pred.shape()));
    const Index n = o_.num_thresholds;
    std::vector<double> tp_b(static_cast<std::size_t>(n), 0.0), fp_b(static_cast<std::size_t>(n), 0.0);
    double pos = 0, neg = 0;
    for (Index i = 0; i < y_pred.size(); ++i) {
      double p = static_cast<double>(y_pred[i]);
      if (o_.from_logits) p = 1.0 / (1.0 + std::exp(-p));
      p = std::min(1.0, std::max(0.0, p));
      const auto b = static_cast<std::size_t>(std::max(0.0, std::ceil(p * static_cast<double>(n - 1)) - 1.0));
      if (static_cast<double>(y_true[i]) != 0.0) {
        tp_b[b] += 1;
        pos += 1;
      } else {
        fp_b[b] += 1;
        neg += 1;
      }
    }
    double tp = 0, fp = 0;  // reversed cumulative sums: counts with bucket >= i
    for (Index i = n - 1; i >= 0; --i) {
      const auto k = static_cast<std::size_t>(i);
      tp += tp_b[k];
      fp += fp_b[k];
      tp_[k] += tp;
      fp_[k] += fp;
      fn_[k] += pos - tp;
      tn_[k] += neg - fp;
    }
  }
  double result() const override {
    const auto n = static_cast<std::size_t>(o_.num_thresholds);
    auto dnn = [](double a, double b) { return b == 0 ? 0.0 : a / b; };
    if (o_.curve == "PR" && o_.summation_method == "interpolation") {
      // Keras interpolate_pr_auc
      double area = 0;
      for (std::size_t i = 0; i + 1 < n; ++i) {
        const double dtp = tp_[i] - tp_[i + 1];
        const double p = tp_[i] + fp_[i], p_next = tp_[i + 1] + fp_[i + 1];
        const double dp = p - p_next;
        const double slope = dnn(dtp, std::max(dp, 0.0));
        const double intercept = tp_[i + 1] - slope * p_next;
        const double safe_p_ratio = (p > 0 && p_next > 0) ? dnn(p, std::max(p_next, 0.0)) : 1.0;
        area += dnn(slope * (dtp + intercept * std::log(safe_p_ratio)), std::max(tp_[i + 1] + fn_[i + 1], 0.0));
      }
      return area;
    }
    std::vector<double> x(n), y(n);
    for (std::size_t i = 0; i < n; ++i) {
      const double recall = dnn(tp_[i], tp_[i] + fn_[i]);
      if (o_.curve == "ROC") {
        x[i] = dnn(fp_[i], fp_[i] + tn_[i]);
        y[i] = recall;
      } else {
        x[i] = recall;
        y[i] = dnn(tp_[i], tp_[i] + fp_[i]);
      }
    }
    double area = 0;
    for (std::size_t i = 0; i + 1 < n; ++i) {
      const double h = o_.summation_method == "interpolation" ? (y[i] + y[i + 1]) / 2
                       : o_.summation_method == "minoring"    ? std::min(y[i], y[i + 1])
                                                              : std::max(y[i], y[i + 1]);
      area += (x[i] - x[i + 1]) * h;
    }
    return area;
  }
  void reset_state() override {
    const auto n = static_cast<std::size_t>(o_.num_thresholds);
    tp_.assign(n, 0.0);
    fp_.assign(n, 0.0);
    tn_.assign(n, 0.0);
    fn_.assign(n, 0.0);
  }
  /// The thresholds, as Keras's AUC.thresholds.
  std::vector<double> thresholds() const {
    const Index n = o_.num_thresholds;
    std::vector<double> t{-1e-7};
    for (Index i = 0; i < n - 2; ++i) t.push_back(static_cast<double>(i + 1) / static_cast<double>(n - 1));
    t.push_back(1.0 + 1e-7);
    return t;
  }
  const std::vector<double>& true_positives() const { return tp_; }
  const std::vector<double>& false_positives() const { return fp_; }

 private:
  AUCOptions o_;
  std::vector<double> tp_, fp_, tn_, fn_;
};

/// keras.metrics.TopKCategoricalAccuracy (k = 5): the true class (argmax of the one-hot y_true) is among
/// the k largest predictions: its prediction >= the k-th largest value (ties count, as Keras's in_top_k).
/// SparseTopKCategoricalAccuracy takes class ids.
template <class T = float>
class TopKCategoricalAccuracy : public MeanMetricWrapper<T> {
 public:
  explicit TopKCategoricalAccuracy(Index k = 5, std::string name = "top_k_categorical_accuracy", bool sparse = false)
      : MeanMetricWrapper<T>(std::move(name)), k_(k), sparse_(sparse) {
    if (k < 1) throw ValueError("Metric '" + this->name_ + "': k must be >= 1, got " + std::to_string(k));
  }
  Index k() const { return k_; }

 protected:
  void batch(const Tensor<T>& yt, const Tensor<T>& yp, double& sum, Index& samples) const override {
    const Shape& ps = yp.shape();
    if (ps.size() < 1 || ps.back() == 0)
      throw ShapeError("Metric '" + this->name_ + "': y_pred must have a class axis, got " + shape_str(ps));
    const Index C = ps.back(), rows = yp.size() / C;
    if (sparse_ ? yt.size() != rows : yt.shape() != ps)
      throw ShapeError("Metric '" + this->name_ + "': y_true " + shape_str(yt.shape()) + " does not fit y_pred " +
                       shape_str(ps) +
                       (sparse_ ? " (one class id per row expected)" : " (one-hot labels of the same shape expected)"));
    samples = this->num_samples(ps);
    std::vector<T> row(static_cast<std::size_t>(C));
    sum = this->per_sample_mean(rows, samples, [&](Index r) {
      const T* p = yp.data() + r * C;
      const Index target = sparse_ ? static_cast<Index>(yt[r]) : this->argmax(yt.data() + r * C, C);
      if (target < 0 || target >= C) return false;
      if (k_ >= C) return true;
      std::copy(p, p + C, row.begin());
      std::nth_element(row.begin(), row.begin() + (k_ - 1), row.end(), std::greater<T>());
      return p[target] >= row[static_cast<std::size_t>(k_ - 1)];
    });
  }

 private:
  Index k_;
  bool sparse_;
};

// ---------------------------------------------------------------------------------------------------------

enum class AccuracyKind { Binary, SparseCategorical, Categorical };

/// Keras's rule (compile_utils.is_binary_or_sparse_categorical) from the label and prediction shapes.
inline AccuracyKind resolve_accuracy(const Shape& y_true_shape, const Shape& y_pred_shape) {
  const Index t_last = y_true_shape.empty() ? -1 : y_true_shape.back();
  const Index p_last = y_pred_shape.empty() ? -1 : y_pred_shape.back();
  if (p_last == 1) return AccuracyKind::Binary;
  if (y_true_shape.size() < y_pred_shape.size() || (t_last == 1 && p_last > 1)) return AccuracyKind::SparseCategorical;
  return AccuracyKind::Categorical;
}

/// The same decision at compile time, when y_true's shape is not known yet: the loss stands in for it
/// (sparse_categorical_crossentropy <=> labels are class ids). Binary when the output's last dim is 1.
inline AccuracyKind resolve_accuracy(const std::string& loss_name, const Shape& output_shape) {
  const Index p_last = output_shape.empty() ? -1 : output_shape.back();
  if (p_last == 1) return AccuracyKind::Binary;
  if (loss_name == "sparse_categorical_crossentropy" || loss_name == "SparseCategoricalCrossentropy")
    return AccuracyKind::SparseCategorical;
  if (p_last < 0 && (loss_name == "binary_crossentropy" || loss_name == "BinaryCrossentropy"))
    return AccuracyKind::Binary;
  return AccuracyKind::Categorical;
}

namespace detail {
inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
template <class T>
std::unique_ptr<Metric<T>> make_accuracy(AccuracyKind k, const std::string& name) {
  switch (k) {
    case AccuracyKind::Binary:
      return std::make_unique<BinaryAccuracy<T>>(name);
    case AccuracyKind::SparseCategorical:
      return std::make_unique<SparseCategoricalAccuracy<T>>(name);
    default:
      return std::make_unique<CategoricalAccuracy<T>>(name);
  }
}
template <class T>
std::unique_ptr<Metric<T>> get_named(const std::string& name) {
  if (name == "categorical_accuracy" || name == "CategoricalAccuracy")
    return std::make_unique<CategoricalAccuracy<T>>();
  if (name == "sparse_categorical_accuracy" || name == "SparseCategoricalAccuracy")
    return std::make_unique<SparseCategoricalAccuracy<T>>();
  if (name == "binary_accuracy" || name == "BinaryAccuracy") return std::make_unique<BinaryAccuracy<T>>();
  if (name == "Accuracy") return std::make_unique<Accuracy<T>>();
  if (name == "precision" || name == "Precision") return std::make_unique<Precision<T>>();
  if (name == "recall" || name == "Recall") return std::make_unique<Recall<T>>();
  if (name == "auc" || name == "AUC") return std::make_unique<AUC<T>>();
  if (name == "top_k_categorical_accuracy" || name == "TopKCategoricalAccuracy")
    return std::make_unique<TopKCategoricalAccuracy<T>>();
  if (name == "sparse_top_k_categorical_accuracy" || name == "SparseTopKCategoricalAccuracy")
    return std::make_unique<TopKCategoricalAccuracy<T>>(5, "sparse_top_k_categorical_accuracy", true);
  if (name == "mse" || name == "mean_squared_error" || name == "categorical_crossentropy" ||
      name == "sparse_categorical_crossentropy" || name == "binary_crossentropy")
    return std::make_unique<LossMetric<T>>(name, losses::get<T>(name));
  throw ValueError("Unknown metric function: '" + name +
                   "'. Valid names: accuracy, acc, categorical_accuracy, sparse_categorical_accuracy, "
                   "binary_accuracy, Accuracy, precision, recall, auc, top_k_categorical_accuracy, "
                   "sparse_top_k_categorical_accuracy, "
                   "mse, mean_squared_error, categorical_crossentropy, "
                   "sparse_categorical_crossentropy, binary_crossentropy");
}
}  // namespace detail

/// A metric by Keras name, for a model compiled with `loss_name` whose output has shape `output_shape`
/// ("accuracy"/"acc" resolved by resolve_accuracy(loss_name, output_shape)). Throws ValueError
/// "Unknown metric function: 'x'. ..." for unknown names.
template <class T = float>
std::unique_ptr<Metric<T>> get(const std::string& name, const std::string& loss_name = "",
                               const Shape& output_shape = {}) {
  const std::string l = detail::lower(name);
  if (l == "accuracy" || l == "acc") return detail::make_accuracy<T>(resolve_accuracy(loss_name, output_shape), name);
  return detail::get_named<T>(name);
}

/// Like get(), resolving "accuracy" from the actual label and prediction shapes (Keras's exact rule).
template <class T = float>
std::unique_ptr<Metric<T>> get_for_shapes(const std::string& name, const Shape& y_true_shape,
                                          const Shape& y_pred_shape) {
  const std::string l = detail::lower(name);
  if (l == "accuracy" || l == "acc")
    return detail::make_accuracy<T>(resolve_accuracy(y_true_shape, y_pred_shape), name);
  return detail::get_named<T>(name);
}

}  // namespace keras::metrics
