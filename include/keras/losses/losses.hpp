// Losses: value and gradient with respect to y_pred, Keras semantics.
//
// Every loss returns the batch loss with Keras's default reduction "sum_over_batch_size": the per-sample
// loss (e.g. cross-entropy over the class axis, or the mean over the last axis for MSE / BCE) averaged over
// all remaining positions (batch, and spatial positions for NHWC outputs). compute(y_true, y_pred, &grad)
// also writes d(loss)/d(y_pred) (grad is resized to y_pred's shape; its buffer is reused).
// Sums are accumulated in double; the result is returned as double.
//
// Formulas follow Keras 3 (keras/src/losses/losses.py, keras/src/backend/tensorflow/nn.py); where tf.keras
// 2.x differs it is noted:
//  * CategoricalCrossentropy, probabilities: p = y_pred / sum(y_pred, axis); p = clip(p, 1e-7, 1 - 1e-7);
//    loss = -sum(y * log p, axis). The gradient is the exact derivative of that, including the
//    normalization, and zero where p was clipped (strictly outside [eps, 1 - eps], as tf.clip_by_value).
//    (Same in tf.keras 2.x.) NOTE: TF-backed Keras, both versions, silently uses the softmax's logits when
//    y_pred comes straight from a softmax activation (output._keras_logits); that is from_logits=true on
//    the pre-softmax tensor, without the clipping. So does kerascpp's trainer: when the model's output
//    layer is a softmax (or sigmoid, for BinaryCrossentropy) of logits it computes, fit, evaluate and
//    train_on_batch use on_logits_of() on those logits (trainers/trainer.hpp).
//  * label_smoothing: y = y * (1 - ls) + ls / num_classes (categorical); y * (1 - ls) + 0.5 ls (binary).
//  * SparseCategoricalCrossentropy, probabilities: as TF (both versions): l = log(clip(p, eps, 1 - eps)),
//    loss = -log_softmax(l)[label] = -log(clip(p_y)) + log(sum_j clip(p_j)). (Keras 3's numpy/jax backends
//    normalize first and clip after; the results agree unless clipping is active.) Labels are integer class
//    ids stored as T, shape y_pred.shape without the last axis, or with a trailing 1.
//    Keras 3's ignore_class is not implemented.
//  * from_logits: stable log-softmax (max subtracted); gradient softmax * sum(y) - y.
//  * MeanSquaredError: mean((y_true - y_pred)^2, axis=-1), averaged: gradient 2 (y_pred - y_true) / size.
//  * BinaryCrossentropy, probabilities: p = clip(p, eps, 1 - eps); -(y log p + (1 - y) log(1 - p)),
//    mean over the last axis. Keras 3 form; tf.keras 2.x added eps inside the logs (log(p + eps)).
//    from_logits: max(x, 0) - x y + log1p(exp(-|x|)).
// Shapes: y_true and y_pred must match, except that a trailing dimension of 1 may be missing on either side
// (Keras squeezes/expands it); otherwise ShapeError naming the loss and both shapes.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace keras::losses {

/// Keras backend.epsilon().
inline constexpr double kEpsilon = 1e-7;

template <class T = float>
class Loss {
 public:
  virtual ~Loss() = default;
  /// Keras name of the loss instance, e.g. "categorical_crossentropy" (also its metric key).
  virtual std::string name() const = 0;
  /// Keras class name, e.g. "CategoricalCrossentropy".
  virtual std::string class_name() const = 0;
  /// Batch loss (sum_over_batch_size); writes d(loss)/d(y_pred) into *grad_y_pred when non-null.
  virtual double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad_y_pred) const = 0;
  double operator()(const Tensor<T>& y_true, const Tensor<T>& y_pred) const { return compute(y_true, y_pred, nullptr); }
  /// True when y_true holds class ids rather than a tensor of y_pred's shape.
  virtual bool accepts_sparse_labels() const { return false; }
  /// Keras get_config() (name, reduction and the loss's own arguments).
  virtual nlohmann::json get_config() const { return {{"name", name()}, {"reduction", "sum_over_batch_size"}}; }
  /// The same loss computed from the logits z when y_pred = activation(z) ("softmax" or "sigmoid"),
  /// as Keras does when y_pred comes straight from that activation: from_logits = true, the other
  /// arguments kept. nullptr when that does not apply (other losses, already from logits).
  virtual std::shared_ptr<Loss<T>> on_logits_of(const std::string& /*activation*/) const { return nullptr; }
};

namespace detail {

inline std::string fmt_double(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

/// Equal shapes, or equal up to a trailing 1 on one side (Keras squeeze_or_expand_to_same_rank).
inline void check_shapes(const std::string& loss, const Shape& t, const Shape& p) {
  if (t == p) return;
  auto drop1 = [](const Shape& a, const Shape& b) {
    return a.size() == b.size() + 1 && a.back() == 1 && std::equal(b.begin(), b.end(), a.begin());
  };
  if (drop1(t, p) || drop1(p, t)) return;
  throw ShapeError(loss + ": y_true and y_pred shapes differ: y_true " + shape_str(t) + ", y_pred " + shape_str(p));
}

/// Splits a shape around `axis` into outer * C * inner (row-major).
struct AxisSplit {
  Index outer = 1, classes = 1, inner = 1;
};
inline AxisSplit split_axis(const std::string& loss, const Shape& s, int axis) {
  const int r = static_cast<int>(s.size());
  const int a = axis < 0 ? axis + r : axis;
  if (r == 0 || a < 0 || a >= r)
    throw ValueError(loss + ": axis " + std::to_string(axis) + " is out of range for y_pred of shape " + shape_str(s));
  AxisSplit sp;
  for (int i = 0; i < a; ++i) sp.outer *= s[i];
  sp.classes = s[a];
  for (int i = a + 1; i < r; ++i) sp.inner *= s[i];
  return sp;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------------

struct CategoricalCrossentropyOptions {
  bool from_logits = false;
  double label_smoothing = 0.0;
  int axis = -1;
  std::string name = "categorical_crossentropy";
};

template <class T = float>
class CategoricalCrossentropy : public Loss<T> {
 public:
  explicit CategoricalCrossentropy(CategoricalCrossentropyOptions o = {}) : o_(std::move(o)) {
    if (o_.label_smoothing < 0 || o_.label_smoothing > 1)
      throw ValueError("CategoricalCrossentropy: label_smoothing must be in [0, 1], got " +
                       detail::fmt_double(o_.label_smoothing));
  }
  std::string name() const override { return o_.name; }
  std::string class_name() const override { return "CategoricalCrossentropy"; }
  const CategoricalCrossentropyOptions& options() const { return o_; }
  std::shared_ptr<Loss<T>> on_logits_of(const std::string& activation) const override {
    if (o_.from_logits || activation != "softmax" || o_.axis != -1) return nullptr;
    auto o = o_;
    o.from_logits = true;
    return std::make_shared<CategoricalCrossentropy>(o);
  }
  nlohmann::json get_config() const override {
    auto c = Loss<T>::get_config();
    c["from_logits"] = o_.from_logits;
    c["label_smoothing"] = o_.label_smoothing;
    c["axis"] = o_.axis;
    return c;
  }

  double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad) const override {
    if (y_true.shape() != y_pred.shape())
      throw ShapeError(class_name() + ": y_true and y_pred shapes differ: y_true " + shape_str(y_true.shape()) +
                       ", y_pred " + shape_str(y_pred.shape()));
    const auto sp = detail::split_axis(class_name(), y_pred.shape(), o_.axis);
    const Index C = sp.classes, inner = sp.inner, rows = sp.outer * sp.inner;
    if (grad) grad->resize(y_pred.shape());
    if (rows == 0 || C == 0) return 0.0;
    const double ls = o_.label_smoothing, off = ls / static_cast<double>(C);
    const double inv_rows = 1.0 / static_cast<double>(rows);
    const T* yt = y_true.data();
    const T* yp = y_pred.data();
    T* g = grad ? grad->data() : nullptr;
    std::vector<double> q(static_cast<std::size_t>(C)), tgt(static_cast<std::size_t>(C));
    double total = 0.0;
    for (Index o = 0; o < sp.outer; ++o) {
      for (Index in = 0; in < inner; ++in) {
        const Index base = o * C * inner + in;
        auto at = [&](Index c) { return base + c * inner; };
        double tsum = 0.0;
        for (Index c = 0; c < C; ++c) {
          tgt[c] = ls > 0 ? static_cast<double>(yt[at(c)]) * (1.0 - ls) + off : static_cast<double>(yt[at(c)]);
          tsum += tgt[c];
        }
        if (o_.from_logits) {
          double m = -std::numeric_limits<double>::infinity();
          for (Index c = 0; c < C; ++c) m = std::max(m, static_cast<double>(yp[at(c)]));
          double s = 0.0;
          for (Index c = 0; c < C; ++c) {
            q[c] = std::exp(static_cast<double>(yp[at(c)]) - m);
            s += q[c];
          }
          const double lse = m + std::log(s);
          double l = 0.0;
          for (Index c = 0; c < C; ++c) l -= tgt[c] * (static_cast<double>(yp[at(c)]) - lse);
          total += l;
          if (g)
            for (Index c = 0; c < C; ++c) g[at(c)] = static_cast<T>((q[c] / s * tsum - tgt[c]) * inv_rows);
        } else {
          double S = 0.0;
          for (Index c = 0; c < C; ++c) S += static_cast<double>(yp[at(c)]);
          double l = 0.0, gq = 0.0;  // gq = sum_j g_j q_j
          for (Index c = 0; c < C; ++c) {
            const double qc = static_cast<double>(yp[at(c)]) / S;
            const double cl = std::clamp(qc, kEpsilon, 1.0 - kEpsilon);
            l -= tgt[c] * std::log(cl);
            // g_c = dL/dq_c: -t_c / q_c where q_c is inside the clip range, 0 where it was clipped.
            const double gc = (qc >= kEpsilon && qc <= 1.0 - kEpsilon) ? -tgt[c] / cl : 0.0;
            q[c] = qc;
            tgt[c] = gc;  // reuse as g
            gq += gc * qc;
          }
          total += l;
          if (g)  // dL/dp_k = (g_k - sum_j g_j q_j) / S
            for (Index c = 0; c < C; ++c) g[at(c)] = static_cast<T>((tgt[c] - gq) / S * inv_rows);
        }
      }
    }
    return total * inv_rows;
  }

 private:
  CategoricalCrossentropyOptions o_;
};

// ---------------------------------------------------------------------------------------------------------

struct SparseCategoricalCrossentropyOptions {
  bool from_logits = false;
  std::string name = "sparse_categorical_crossentropy";
};

template <class T = float>
class SparseCategoricalCrossentropy : public Loss<T> {
 public:
  explicit SparseCategoricalCrossentropy(SparseCategoricalCrossentropyOptions o = {}) : o_(std::move(o)) {}
  std::string name() const override { return o_.name; }
  std::string class_name() const override { return "SparseCategoricalCrossentropy"; }
  bool accepts_sparse_labels() const override { return true; }
  const SparseCategoricalCrossentropyOptions& options() const { return o_; }
  std::shared_ptr<Loss<T>> on_logits_of(const std::string& activation) const override {
    if (o_.from_logits || activation != "softmax") return nullptr;
    auto o = o_;
    o.from_logits = true;
    return std::make_shared<SparseCategoricalCrossentropy>(o);
  }
  nlohmann::json get_config() const override {
    auto c = Loss<T>::get_config();
    c["from_logits"] = o_.from_logits;
    c["ignore_class"] = nullptr;
    return c;
  }

  double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad) const override {
    const Shape& ps = y_pred.shape();
    if (ps.empty()) throw ShapeError(class_name() + ": y_pred must have a class axis, got shape " + shape_str(ps));
    const Shape lead(ps.begin(), ps.end() - 1);
    Shape lead1 = lead;
    lead1.push_back(1);
    if (y_true.shape() != lead && y_true.shape() != lead1)
      throw ShapeError(class_name() + ": y_true must hold one class id per sample (shape " + shape_str(lead) + " or " +
                       shape_str(lead1) + "), got y_true " + shape_str(y_true.shape()) + " for y_pred " +
                       shape_str(ps));
    const Index C = ps.back(), rows = y_true.size();
    if (grad) grad->resize(ps);
    if (rows == 0) return 0.0;
    const double inv_rows = 1.0 / static_cast<double>(rows);
    const T* yt = y_true.data();
    const T* yp = y_pred.data();
    T* g = grad ? grad->data() : nullptr;
    double total = 0.0;
    for (Index r = 0; r < rows; ++r) {
      const double lv = static_cast<double>(yt[r]);
      if (!(lv >= 0 && lv < static_cast<double>(C)) || lv != std::floor(lv))
        throw ValueError(class_name() + ": label " + detail::fmt_double(lv) + " (sample " + std::to_string(r) +
                         ") is not a class id in [0, " + std::to_string(C) + ")");
      const Index label = static_cast<Index>(lv);
      const T* p = yp + r * C;
      T* gr = g ? g + r * C : nullptr;
      if (o_.from_logits) {
        double m = -std::numeric_limits<double>::infinity();
        for (Index c = 0; c < C; ++c) m = std::max(m, static_cast<double>(p[c]));
        double s = 0.0;
        for (Index c = 0; c < C; ++c) s += std::exp(static_cast<double>(p[c]) - m);
        total += m + std::log(s) - static_cast<double>(p[label]);
        if (gr)
          for (Index c = 0; c < C; ++c)
            gr[c] = static_cast<T>((std::exp(static_cast<double>(p[c]) - m) / s - (c == label ? 1.0 : 0.0)) * inv_rows);
      } else {
        double s = 0.0;
        for (Index c = 0; c < C; ++c) s += std::clamp(static_cast<double>(p[c]), kEpsilon, 1.0 - kEpsilon);
        const double cy = std::clamp(static_cast<double>(p[label]), kEpsilon, 1.0 - kEpsilon);
        total += std::log(s) - std::log(cy);
        if (gr)
          for (Index c = 0; c < C; ++c) {
            const double pc = static_cast<double>(p[c]);
            const bool inside = pc >= kEpsilon && pc <= 1.0 - kEpsilon;
            const double d = inside ? (1.0 / s - (c == label ? 1.0 / pc : 0.0)) : 0.0;
            gr[c] = static_cast<T>(d * inv_rows);
          }
      }
    }
    return total * inv_rows;
  }

 private:
  SparseCategoricalCrossentropyOptions o_;
};

// ---------------------------------------------------------------------------------------------------------

struct MeanSquaredErrorOptions {
  std::string name = "mean_squared_error";
};

template <class T = float>
class MeanSquaredError : public Loss<T> {
 public:
  explicit MeanSquaredError(MeanSquaredErrorOptions o = {}) : o_(std::move(o)) {}
  std::string name() const override { return o_.name; }
  std::string class_name() const override { return "MeanSquaredError"; }

  double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad) const override {
    detail::check_shapes(class_name(), y_true.shape(), y_pred.shape());
    const Index n = y_pred.size();
    if (grad) grad->resize(y_pred.shape());
    if (n == 0) return 0.0;
    const double inv = 1.0 / static_cast<double>(n);
    double total = 0.0;
    for (Index i = 0; i < n; ++i) {
      const double d = static_cast<double>(y_pred[i]) - static_cast<double>(y_true[i]);
      total += d * d;
      if (grad) (*grad)[i] = static_cast<T>(2.0 * d * inv);
    }
    return total * inv;
  }

 private:
  MeanSquaredErrorOptions o_;
};

// ---------------------------------------------------------------------------------------------------------

struct BinaryCrossentropyOptions {
  bool from_logits = false;
  double label_smoothing = 0.0;
  std::string name = "binary_crossentropy";
};

template <class T = float>
class BinaryCrossentropy : public Loss<T> {
 public:
  explicit BinaryCrossentropy(BinaryCrossentropyOptions o = {}) : o_(std::move(o)) {
    if (o_.label_smoothing < 0 || o_.label_smoothing > 1)
      throw ValueError("BinaryCrossentropy: label_smoothing must be in [0, 1], got " +
                       detail::fmt_double(o_.label_smoothing));
  }
  std::string name() const override { return o_.name; }
  std::string class_name() const override { return "BinaryCrossentropy"; }
  const BinaryCrossentropyOptions& options() const { return o_; }
  std::shared_ptr<Loss<T>> on_logits_of(const std::string& activation) const override {
    if (o_.from_logits || activation != "sigmoid") return nullptr;
    auto o = o_;
    o.from_logits = true;
    return std::make_shared<BinaryCrossentropy>(o);
  }
  nlohmann::json get_config() const override {
    auto c = Loss<T>::get_config();
    c["from_logits"] = o_.from_logits;
    c["label_smoothing"] = o_.label_smoothing;
    c["axis"] = -1;
    return c;
  }

  double compute(const Tensor<T>& y_true, const Tensor<T>& y_pred, Tensor<T>* grad) const override {
    detail::check_shapes(class_name(), y_true.shape(), y_pred.shape());
    const Index n = y_pred.size();
    if (grad) grad->resize(y_pred.shape());
    if (n == 0) return 0.0;
    const double inv = 1.0 / static_cast<double>(n), ls = o_.label_smoothing;
    double total = 0.0;
    for (Index i = 0; i < n; ++i) {
      double t = static_cast<double>(y_true[i]);
      if (ls > 0) t = t * (1.0 - ls) + 0.5 * ls;
      const double x = static_cast<double>(y_pred[i]);
      double d;
      if (o_.from_logits) {
        total += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x)));
        const double s = x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
        d = s - t;
      } else {
        const double c = std::clamp(x, kEpsilon, 1.0 - kEpsilon);
        total -= t * std::log(c) + (1.0 - t) * std::log(1.0 - c);
        d = (x >= kEpsilon && x <= 1.0 - kEpsilon) ? (1.0 - t) / (1.0 - c) - t / c : 0.0;
      }
      if (grad) (*grad)[i] = static_cast<T>(d * inv);
    }
    return total * inv;
  }

 private:
  BinaryCrossentropyOptions o_;
};

// ---------------------------------------------------------------------------------------------------------

/// The loss with the given Keras name: "categorical_crossentropy", "sparse_categorical_crossentropy",
/// "mse" / "mean_squared_error", "binary_crossentropy", or the class names ("CategoricalCrossentropy", ...).
/// The loss's name() is the canonical Keras name ("mse" gives "mean_squared_error").
/// Throws ValueError "Unknown loss function: 'x'. ..." otherwise.
template <class T = float>
std::unique_ptr<Loss<T>> get(const std::string& name) {
  if (name == "categorical_crossentropy" || name == "CategoricalCrossentropy")
    return std::make_unique<CategoricalCrossentropy<T>>();
  if (name == "sparse_categorical_crossentropy" || name == "SparseCategoricalCrossentropy")
    return std::make_unique<SparseCategoricalCrossentropy<T>>();
  if (name == "mse" || name == "mean_squared_error" || name == "MeanSquaredError")
    return std::make_unique<MeanSquaredError<T>>();
  if (name == "binary_crossentropy" || name == "BinaryCrossentropy") return std::make_unique<BinaryCrossentropy<T>>();
  throw ValueError("Unknown loss function: '" + name +
                   "'. Valid names: categorical_crossentropy, sparse_categorical_crossentropy, mse, "
                   "mean_squared_error, binary_crossentropy");
}

/// The loss of a Keras loss config {"class_name": "CategoricalCrossentropy", "config": {...}}, or
/// of a name (a JSON string, Keras's or TF.js's camelCase spelling: "categoricalCrossentropy").
template <class T = float>
std::unique_ptr<Loss<T>> from_config(const nlohmann::json& lc) {
  if (lc.is_string()) {
    std::string n;
    for (char ch : lc.get<std::string>()) {
      if (ch >= 'A' && ch <= 'Z') {
        if (!n.empty()) n += '_';
        n += static_cast<char>(ch - 'A' + 'a');
      } else {
        n += ch;
      }
    }
    return get<T>(lc.get<std::string>().find('_') != std::string::npos || lc.get<std::string>() == "mse"
                      ? lc.get<std::string>()
                      : n);
  }
  if (!lc.is_object() || !lc.contains("class_name") || !lc["class_name"].is_string())
    throw ValueError("loss config must be a name or {\"class_name\": ..., \"config\": {...}}, got " + lc.dump());
  const std::string cls = lc["class_name"];
  const nlohmann::json c = lc.contains("config") && lc["config"].is_object() ? lc["config"] : nlohmann::json::object();
  auto flag = [&](const char* k) { return c.contains(k) && c[k].is_boolean() && c[k].get<bool>(); };
  auto num = [&](const char* k, double d) { return c.contains(k) && c[k].is_number() ? c[k].get<double>() : d; };
  auto name = [&](const std::string& d) {
    return c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : d;
  };
  if (cls == "CategoricalCrossentropy") {
    CategoricalCrossentropyOptions o;
    o.from_logits = flag("from_logits");
    o.label_smoothing = num("label_smoothing", 0);
    o.axis = static_cast<int>(num("axis", -1));
    o.name = name(o.name);
    return std::make_unique<CategoricalCrossentropy<T>>(o);
  }
  if (cls == "SparseCategoricalCrossentropy") {
    SparseCategoricalCrossentropyOptions o;
    o.from_logits = flag("from_logits");
    o.name = name(o.name);
    return std::make_unique<SparseCategoricalCrossentropy<T>>(o);
  }
  if (cls == "BinaryCrossentropy") {
    BinaryCrossentropyOptions o;
    o.from_logits = flag("from_logits");
    o.label_smoothing = num("label_smoothing", 0);
    o.name = name(o.name);
    return std::make_unique<BinaryCrossentropy<T>>(o);
  }
  if (cls == "MeanSquaredError") return get<T>("mean_squared_error");
  throw ValueError("Unknown loss class: '" + cls + "' in loss config");
}

}  // namespace keras::losses
