// Optimizers: SGD (momentum, Nesterov), Adam (amsgrad), AdamW, RMSprop (momentum, centered).
//
// Formulas and defaults follow Keras 3 (keras/src/optimizers/{optimizer,base_optimizer,sgd,adam,adamw,
// rmsprop}.py). Differences from tf.keras 2.x (optimizer_v2) are noted where they exist:
//   SGD      m = momentum m - lr g;  w += m            (nesterov: w += momentum m - lr g)
//            plain: w -= lr g.                          (identical in tf.keras 2.x)
//   Adam     t = iterations + 1; alpha = lr sqrt(1 - b2^t) / (1 - b1^t)
//            m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); amsgrad: vhat = max(vhat, v), v := vhat
//            w -= alpha m / (sqrt(v) + eps)             (identical in tf.keras 2.x: eps is "epsilon hat")
//   AdamW    Adam with weight_decay 0.004 by default (Keras 3 applies decay to every optimizer: below).
//   RMSprop  v = rho v + (1 - rho) g^2;  centered: a = rho a + (1 - rho) g, denom = v - a^2 + eps,
//            else denom = v + eps;  inc = lr g / sqrt(denom);  momentum > 0: m = momentum m + inc, w -= m;
//            else w -= inc.
//            tf.keras 2.x optimizer_v2 WITHOUT momentum used w -= lr g / (sqrt(denom') + eps) (eps outside
//            the root); with momentum it used eps inside, as here. Keras >= 2.11 / Keras 3: eps inside always.
// Common options (Keras 3 base optimizer), applied in Keras's order on each apply_gradients call:
//   1. variables with trainable == false, a null pointer or an empty grad are skipped (Keras skips None
//      gradients); a grad whose shape differs from the value's throws ShapeError naming the variable;
//   2. gradient clipping, at most one of: clipnorm (per variable, g * c / max(|g|, c)), global_clipnorm
//      (all variables jointly), clipvalue (clip to [-c, c]); 0 means unset. Clipping rewrites var->grad
//      in place;
//   3. weight decay: w -= w * weight_decay * lr (0 means unset);
//   4. the update step; then iterations += 1.
// Slot variables (momenta, velocities) are zero-initialised per Variable on its first update and kept in a
// map keyed by the Variable's address; a slot whose shape no longer matches its variable is re-created, and
// forget(var) / reset() drop them (needed when a Variable is destroyed and its address may be reused).
// learning_rate is a number or a schedule (optimizers/schedules.hpp), evaluated at `iterations` before
// each update, as Keras; learning_rate() is the current rate and set_learning_rate refuses to replace
// a schedule (Keras: "...its learning rate is not settable").
// Arithmetic on tensors is in T; the powers b^t and the bias correction are computed in double.
#pragma once
#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../core/variable.hpp"
#include "schedules.hpp"

namespace keras::optimizers {

template <class T = float>
class Optimizer {
 public:
  struct Common {
    LearningRate learning_rate = 0.001;
    double weight_decay = 0.0;
    double clipnorm = 0.0;
    double clipvalue = 0.0;
    double global_clipnorm = 0.0;
  };

  explicit Optimizer(const Common& c) : c_(c) {
    auto nonneg = [&](double v, const char* what) {
      if (!(v >= 0)) throw ValueError(std::string("Optimizer: ") + what + " must be >= 0, got " + std::to_string(v));
    };
    if (!c.learning_rate.schedule()) nonneg(c.learning_rate.value(), "learning_rate");
    nonneg(c.weight_decay, "weight_decay");
    nonneg(c.clipnorm, "clipnorm");
    nonneg(c.clipvalue, "clipvalue");
    nonneg(c.global_clipnorm, "global_clipnorm");
    if ((c.clipnorm > 0) + (c.clipvalue > 0) + (c.global_clipnorm > 0) > 1)
      throw ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: clipnorm=" +
                       std::to_string(c.clipnorm) + ", clipvalue=" + std::to_string(c.clipvalue) +
                       ", global_clipnorm=" + std::to_string(c.global_clipnorm));
  }
  virtual ~Optimizer() = default;

  /// Keras name of the instance ("adam", "sgd", "rmsprop", "adamw").
  virtual std::string name() const = 0;
  /// Keras class name ("Adam", "SGD", "RMSprop", "AdamW").
  virtual std::string class_name() const = 0;

  /// The learning rate of the next step (a schedule's value at iterations()).
  double learning_rate() const { return c_.learning_rate.at(iterations_); }
  /// The schedule given as learning_rate, or null.
  const std::shared_ptr<const schedules::LearningRateSchedule>& learning_rate_schedule() const {
    return c_.learning_rate.schedule();
  }
  void set_learning_rate(double lr) {
    if (c_.learning_rate.schedule())
      throw StateError(
          "Optimizer " + name() + " was created with a `LearningRateSchedule` (" +
          c_.learning_rate.schedule()->class_name() +
          ") as its `learning_rate` constructor argument, hence its learning rate is not settable. If you need the "
          "learning "
          "rate to be settable, you should instantiate the optimizer with a float `learning_rate` argument.");
    if (!(lr >= 0)) throw ValueError("Optimizer: learning_rate must be >= 0, got " + std::to_string(lr));
    c_.learning_rate = lr;
  }
  /// Number of apply_gradients calls so far (Keras optimizer.iterations).
  Index iterations() const { return iterations_; }
  void set_iterations(Index it) { iterations_ = it; }
  double weight_decay() const { return c_.weight_decay; }

  /// One optimization step over `vars` using each var->grad (see the header comment for the rules).
  void apply_gradients(const std::vector<Variable<T>*>& vars) {
    active_.clear();
    for (Variable<T>* v : vars) {
      if (!v || !v->trainable || v->grad.empty()) continue;
      if (v->grad.shape() != v->value.shape())
        throw ShapeError("Optimizer " + name() + ": gradient of variable '" + v->name + "' has shape " +
                         shape_str(v->grad.shape()) + " but the variable has shape " + shape_str(v->value.shape()));
      active_.push_back(v);
    }
    clip_gradients();
    const double lr = learning_rate();
    if (c_.weight_decay > 0) {
      const T f = static_cast<T>(c_.weight_decay * lr);
      for (Variable<T>* v : active_) v->value.array() -= v->value.array() * f;
    }
    const Index step = iterations_ + 1;
    for (Variable<T>* v : active_) {
      update_step(*v, slots_for(*v), lr, step);
      v->changed();
    }
    ++iterations_;
  }

  /// Keras get_config().
  virtual nlohmann::json get_config() const {
    auto opt = [](double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
    return {{"name", name()},
            {"learning_rate", c_.learning_rate.to_json()},
            {"weight_decay", opt(c_.weight_decay)},
            {"clipnorm", opt(c_.clipnorm)},
            {"global_clipnorm", opt(c_.global_clipnorm)},
            {"clipvalue", opt(c_.clipvalue)},
            {"use_ema", false},
            {"ema_momentum", 0.99},
            {"ema_overwrite_frequency", nullptr},
            {"loss_scale_factor", nullptr},
            {"gradient_accumulation_steps", nullptr}};
  }

  /// Number of slot tensors per variable (0 for plain SGD, 1 for momentum SGD, 2 for Adam, ...).
  virtual int num_slots() const = 0;
  /// The slot tensors of a variable (empty when it has not been updated yet).
  const std::vector<Tensor<T>>* slots(const Variable<T>* v) const {
    auto it = slots_.find(v);
    return it == slots_.end() ? nullptr : &it->second;
  }
  /// Number of variables that have slot state.
  std::size_t num_tracked_variables() const { return slots_.size(); }
  /// Drops the slot state of one variable.
  void forget(const Variable<T>* v) { slots_.erase(v); }
  /// Drops all slot state and sets iterations to 0.
  void reset() {
    slots_.clear();
    iterations_ = 0;
  }

 protected:
  /// Updates var.value from var.grad; `slots` has num_slots() zero-initialised tensors of var's shape;
  /// `step` is iterations() + 1.
  virtual void update_step(Variable<T>& var, std::vector<Tensor<T>>& slots, double lr, Index step) = 0;

  const Common& common() const { return c_; }

 private:
  Common c_;
  Index iterations_ = 0;
  std::unordered_map<const Variable<T>*, std::vector<Tensor<T>>> slots_;
  std::vector<Variable<T>*> active_;

  std::vector<Tensor<T>>& slots_for(const Variable<T>& v) {
    auto& s = slots_[&v];
    const std::size_t n = static_cast<std::size_t>(num_slots());
    bool fresh = s.size() != n;
    for (auto& t : s) fresh = fresh || t.shape() != v.value.shape();
    if (fresh) {
      s.clear();
      s.resize(n);  // default-constructed
      for (auto& t : s) {
        t.resize(v.value.shape());
        t.setZero();
      }
    }
    return s;
  }

  void clip_gradients() {
    if (c_.clipnorm > 0) {
      for (Variable<T>* v : active_) {
        const double norm = std::sqrt(v->grad.array().template cast<double>().square().sum());
        if (norm > c_.clipnorm) v->grad.array() *= static_cast<T>(c_.clipnorm / norm);
      }
    } else if (c_.global_clipnorm > 0) {
      double sq = 0.0;
      for (Variable<T>* v : active_) sq += v->grad.array().template cast<double>().square().sum();
      const double norm = std::sqrt(sq);
      if (norm > c_.global_clipnorm)
        for (Variable<T>* v : active_) v->grad.array() *= static_cast<T>(c_.global_clipnorm / norm);
    } else if (c_.clipvalue > 0) {
      const T cv = static_cast<T>(c_.clipvalue);
      for (Variable<T>* v : active_) v->grad.array() = v->grad.array().max(-cv).min(cv);
    }
  }
};

// ---------------------------------------------------------------------------------------------------------

struct SGDOptions {
  LearningRate learning_rate = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
  double global_clipnorm = 0.0;
};

template <class T = float>
class SGD : public Optimizer<T> {
 public:
  explicit SGD(SGDOptions o = {})
      : Optimizer<T>({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm}), o_(o) {
    if (!(o.momentum >= 0 && o.momentum <= 1))
      throw ValueError("`momentum` must be a float between [0, 1]. Received: momentum=" + std::to_string(o.momentum));
  }
  std::string name() const override { return "SGD"; }
  std::string class_name() const override { return "SGD"; }
  int num_slots() const override { return o_.momentum != 0 ? 1 : 0; }
  const SGDOptions& options() const { return o_; }
  nlohmann::json get_config() const override {
    auto c = Optimizer<T>::get_config();
    c["momentum"] = o_.momentum;
    c["nesterov"] = o_.nesterov;
    return c;
  }

 protected:
  void update_step(Variable<T>& var, std::vector<Tensor<T>>& slots, double lr, Index) override {
    auto w = var.value.array();
    auto g = var.grad.array();
    const T lr_t = static_cast<T>(lr);
    if (o_.momentum == 0) {
      w -= lr_t * g;
      return;
    }
    const T mu = static_cast<T>(o_.momentum);
    auto m = slots[0].array();
    m = mu * m - lr_t * g;
    if (o_.nesterov)
      w += mu * m - lr_t * g;
    else
      w += m;
  }

 private:
  SGDOptions o_;
};

// ---------------------------------------------------------------------------------------------------------

struct AdamOptions {
  LearningRate learning_rate = 0.001;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  bool amsgrad = false;
  double weight_decay = 0.0;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
  double global_clipnorm = 0.0;
};

template <class T = float>
class Adam : public Optimizer<T> {
 public:
  explicit Adam(AdamOptions o = {})
      : Optimizer<T>({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm}), o_(o) {}
  std::string name() const override { return "adam"; }
  std::string class_name() const override { return "Adam"; }
  int num_slots() const override { return o_.amsgrad ? 3 : 2; }
  const AdamOptions& options() const { return o_; }
  nlohmann::json get_config() const override {
    auto c = Optimizer<T>::get_config();
    c["beta_1"] = o_.beta_1;
    c["beta_2"] = o_.beta_2;
    c["epsilon"] = o_.epsilon;
    c["amsgrad"] = o_.amsgrad;
    return c;
  }

 protected:
  void update_step(Variable<T>& var, std::vector<Tensor<T>>& slots, double lr, Index step) override {
    const double t = static_cast<double>(step);
    const double b1p = std::pow(o_.beta_1, t), b2p = std::pow(o_.beta_2, t);
    const T alpha = static_cast<T>(lr * std::sqrt(1.0 - b2p) / (1.0 - b1p));
    const T one_b1 = static_cast<T>(1.0 - o_.beta_1), one_b2 = static_cast<T>(1.0 - o_.beta_2);
    const T eps = static_cast<T>(o_.epsilon);
    auto w = var.value.array();
    auto g = var.grad.array();
    auto m = slots[0].array();
    auto v = slots[1].array();
    m += (g - m) * one_b1;
    v += (g.square() - v) * one_b2;
    if (o_.amsgrad) {
      auto vhat = slots[2].array();
      vhat = vhat.max(v);
      w -= alpha * m / (vhat.sqrt() + eps);
    } else {
      w -= alpha * m / (v.sqrt() + eps);
    }
  }

  AdamOptions o_;
};

struct AdamWOptions {
  LearningRate learning_rate = 0.001;
  double weight_decay = 0.004;
  double beta_1 = 0.9;
  double beta_2 = 0.999;
  double epsilon = 1e-7;
  bool amsgrad = false;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
  double global_clipnorm = 0.0;
};

/// Adam with decoupled weight decay (w -= w * weight_decay * lr before the Adam step), Keras 3 defaults.
template <class T = float>
class AdamW : public Adam<T> {
 public:
  explicit AdamW(AdamWOptions o = {})
      : Adam<T>(AdamOptions{o.learning_rate, o.beta_1, o.beta_2, o.epsilon, o.amsgrad, o.weight_decay, o.clipnorm,
                            o.clipvalue, o.global_clipnorm}) {}
  std::string name() const override { return "adamw"; }
  std::string class_name() const override { return "AdamW"; }
};

// ---------------------------------------------------------------------------------------------------------

struct RMSpropOptions {
  LearningRate learning_rate = 0.001;
  double rho = 0.9;
  double momentum = 0.0;
  double epsilon = 1e-7;
  bool centered = false;
  double weight_decay = 0.0;
  double clipnorm = 0.0;
  double clipvalue = 0.0;
  double global_clipnorm = 0.0;
};

template <class T = float>
class RMSprop : public Optimizer<T> {
 public:
  explicit RMSprop(RMSpropOptions o = {})
      : Optimizer<T>({o.learning_rate, o.weight_decay, o.clipnorm, o.clipvalue, o.global_clipnorm}), o_(o) {}
  std::string name() const override { return "rmsprop"; }
  std::string class_name() const override { return "RMSprop"; }
  /// slot 0: velocity; then momentum (if momentum > 0); then average_gradient (if centered).
  int num_slots() const override { return 1 + (o_.momentum > 0) + (o_.centered ? 1 : 0); }
  const RMSpropOptions& options() const { return o_; }
  nlohmann::json get_config() const override {
    auto c = Optimizer<T>::get_config();
    c["rho"] = o_.rho;
    c["momentum"] = o_.momentum;
    c["epsilon"] = o_.epsilon;
    c["centered"] = o_.centered;
    return c;
  }

 protected:
  void update_step(Variable<T>& var, std::vector<Tensor<T>>& slots, double lr, Index) override {
    const T rho = static_cast<T>(o_.rho), one_rho = static_cast<T>(1.0 - o_.rho);
    const T eps = static_cast<T>(o_.epsilon), lr_t = static_cast<T>(lr);
    auto w = var.value.array();
    auto g = var.grad.array();
    auto vel = slots[0].array();
    vel = rho * vel + one_rho * g.square();
    const std::size_t mom_i = 1, avg_i = o_.momentum > 0 ? 2 : 1;
    auto apply = [&](const auto& denom) {
      if (o_.momentum > 0) {
        auto mom = slots[mom_i].array();
        mom = static_cast<T>(o_.momentum) * mom + lr_t * g / denom.sqrt();
        w -= mom;
      } else {
        w -= lr_t * g / denom.sqrt();
      }
    };
    if (o_.centered) {
      auto avg = slots[avg_i].array();
      avg = rho * avg + one_rho * g;
      apply(vel - avg.square() + eps);
    } else {
      apply(vel + eps);
    }
  }

 private:
  RMSpropOptions o_;
};

// ---------------------------------------------------------------------------------------------------------

/// An optimizer with Keras defaults by (case-insensitive) name: "adam", "adamw", "sgd", "rmsprop".
/// Throws ValueError "Unknown optimizer: 'x'. ..." otherwise.
template <class T = float>
std::unique_ptr<Optimizer<T>> get(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (n == "adam") return std::make_unique<Adam<T>>();
  if (n == "adamw") return std::make_unique<AdamW<T>>();
  if (n == "sgd") return std::make_unique<SGD<T>>();
  if (n == "rmsprop") return std::make_unique<RMSprop<T>>();
  throw ValueError("Unknown optimizer: '" + name + "'. Valid names: adam, adamw, rmsprop, sgd");
}

namespace detail {
/// config[key], also under its TF.js camelCase spelling ("learning_rate" / "learningRate",
/// "beta_1" / "beta1"); `def` when absent or null.
inline double config_number(const nlohmann::json& c, const std::string& key, double def) {
  std::string camel;
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '_' && i + 1 < key.size())
      camel += static_cast<char>(std::toupper(static_cast<unsigned char>(key[++i])));
    else
      camel += key[i];
  }
  for (const std::string& k : {key, camel})
    if (c.contains(k) && !c[k].is_null()) {
      if (c[k].is_boolean()) return c[k].get<bool>() ? 1.0 : 0.0;
      if (!c[k].is_number()) throw ValueError("optimizer config: '" + k + "' must be a number, got " + c[k].dump());
      return c[k].get<double>();
    }
  return def;
}
/// The options every optimizer shares (weight decay and gradient clipping), read from a config.
template <class O, class Num>
O with_common_options(O o, const Num& num, const nlohmann::json& c) {
  const char* lr_key = c.contains("learning_rate") ? "learning_rate" : "learningRate";
  if (c.contains(lr_key) && c[lr_key].is_object())
    o.learning_rate = schedules::deserialize(c[lr_key]);  // a serialized schedule
  else
    o.learning_rate = num("learning_rate", o.learning_rate.value());
  o.weight_decay = num("weight_decay", o.weight_decay);
  o.clipnorm = num("clipnorm", o.clipnorm);
  o.clipvalue = num("clipvalue", o.clipvalue);
  o.global_clipnorm = num("global_clipnorm", o.global_clipnorm);
  return o;
}
}  // namespace detail

/// The optimizer of a Keras/TF.js optimizer config {"class_name": "Adam", "config": {...}}
/// (trainingConfig.optimizer_config). Throws ValueError for an unknown class.
template <class T = float>
std::unique_ptr<Optimizer<T>> from_config(const nlohmann::json& oc) {
  if (!oc.is_object() || !oc.contains("class_name") || !oc["class_name"].is_string())
    throw ValueError("optimizer config must be {\"class_name\": ..., \"config\": {...}}, got " + oc.dump());
  const std::string cls = oc["class_name"];
  const nlohmann::json c = oc.contains("config") && oc["config"].is_object() ? oc["config"] : nlohmann::json::object();
  auto num = [&](const char* k, double d) { return detail::config_number(c, k, d); };
  if (cls == "SGD" || cls == "sgd") {
    SGDOptions o;
    o.momentum = num("momentum", o.momentum);
    o.nesterov = num("nesterov", 0) != 0;
    return std::make_unique<SGD<T>>(detail::with_common_options(o, num, c));
  }
  if (cls == "Adam" || cls == "adam") {
    AdamOptions o;
    o.beta_1 = num("beta_1", o.beta_1);
    o.beta_2 = num("beta_2", o.beta_2);
    o.epsilon = num("epsilon", o.epsilon);
    o.amsgrad = num("amsgrad", 0) != 0;
    return std::make_unique<Adam<T>>(detail::with_common_options(o, num, c));
  }
  if (cls == "AdamW" || cls == "adamw") {
    AdamWOptions o;
    o.beta_1 = num("beta_1", o.beta_1);
    o.beta_2 = num("beta_2", o.beta_2);
    o.epsilon = num("epsilon", o.epsilon);
    o.amsgrad = num("amsgrad", 0) != 0;
    return std::make_unique<AdamW<T>>(detail::with_common_options(o, num, c));
  }
  if (cls == "RMSprop" || cls == "rmsprop") {
    RMSpropOptions o;
    o.rho = num("rho", o.rho);
    o.momentum = num("momentum", o.momentum);
    o.epsilon = num("epsilon", o.epsilon);
    o.centered = num("centered", 0) != 0;
    return std::make_unique<RMSprop<T>>(detail::with_common_options(o, num, c));
  }
  throw ValueError("Unknown optimizer: '" + cls + "' in optimizer config. Valid classes: Adam, AdamW, RMSprop, SGD");
}

}  // namespace keras::optimizers
