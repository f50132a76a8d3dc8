// Learning-rate schedules (keras.optimizers.schedules): a function of the optimizer's step, passed
// as an optimizer's learning_rate. Formulas, defaults, names and configs follow Keras 3
// (keras/src/optimizers/schedules/learning_rate_schedule.py); the step is the optimizer's
// `iterations` before the update (0 at the first step), as Keras's _get_current_learning_rate.
//   ExponentialDecay       lr0 * rate^(step / decay_steps)   (staircase: floor of the exponent)
//   PiecewiseConstantDecay values[0] while step <= boundaries[0], values[i] while
//                          boundaries[i-1] < step <= boundaries[i], values.back() after the last
//   CosineDecay            no warmup: s = min(step, decay_steps),
//                            lr0 * ((1 - alpha) * 0.5 * (1 + cos(pi s / decay_steps)) + alpha);
//                          with warmup_target: s = min(step, decay_steps + warmup_steps);
//                            s < warmup_steps: lr0 + (warmup_target - lr0) * s / warmup_steps,
//                            else the cosine decay of (s - warmup_steps) from warmup_target.
// Serialized as Keras writes them in an optimizer config:
//   {"module": "keras.optimizers.schedules", "class_name": ..., "config": {...}, "registered_name": null}.
#pragma once
#include <cmath>
#include <memory>
#include <numbers>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/error.hpp"
#include "../core/shape.hpp"

namespace keras::optimizers::schedules {

class LearningRateSchedule {
 public:
  virtual ~LearningRateSchedule() = default;
  /// The learning rate at optimizer step `step` (0-based).
  virtual double operator()(Index step) const = 0;
  virtual std::string class_name() const = 0;
  virtual nlohmann::json get_config() const = 0;
};

struct ExponentialDecayOptions {
  bool staircase = false;
  std::string name = "ExponentialDecay";
};

class ExponentialDecay : public LearningRateSchedule {
 public:
  ExponentialDecay(double initial_learning_rate, Index decay_steps, double decay_rate, ExponentialDecayOptions o = {})
      : lr0_(initial_learning_rate), steps_(decay_steps), rate_(decay_rate), o_(std::move(o)) {
    if (decay_steps <= 0)
      throw ValueError("Argument `decay_steps` must be > 0. Received: decay_steps=" + std::to_string(decay_steps));
  }
  double operator()(Index step) const override {
    double p = static_cast<double>(step) / static_cast<double>(steps_);
    if (o_.staircase) p = std::floor(p);
    return lr0_ * std::pow(rate_, p);
  }
  std::string class_name() const override { return "ExponentialDecay"; }
  nlohmann::json get_config() const override {
    return {{"initial_learning_rate", lr0_},
            {"decay_steps", steps_},
            {"decay_rate", rate_},
            {"staircase", o_.staircase},
            {"name", o_.name}};
  }

 private:
  double lr0_;
  Index steps_;
  double rate_;
  ExponentialDecayOptions o_;
};

class PiecewiseConstantDecay : public LearningRateSchedule {
 public:
  PiecewiseConstantDecay(std::vector<double> boundaries, std::vector<double> values,
                         std::string name = "PiecewiseConstant")
      : b_(std::move(boundaries)), v_(std::move(values)), name_(std::move(name)) {
    if (b_.size() + 1 != v_.size())
      throw ValueError(
          "The length of boundaries should be 1 less than the length of values. Received: boundaries of length " +
          std::to_string(b_.size()) + ", and values of length " + std::to_string(v_.size()) + ".");
  }
  double operator()(Index step) const override {
    const double s = static_cast<double>(step);
    for (std::size_t i = 0; i < b_.size(); ++i)
      if (s <= b_[i]) return v_[i];
    return v_.back();
  }
  std::string class_name() const override { return "PiecewiseConstantDecay"; }
  nlohmann::json get_config() const override { return {{"boundaries", b_}, {"values", v_}, {"name", name_}}; }

 private:
  std::vector<double> b_, v_;
  std::string name_;
};

struct CosineDecayOptions {
  double alpha = 0.0;  ///< the final learning rate as a fraction of the decay's starting rate
  std::string name = "CosineDecay";
  std::optional<double> warmup_target;  ///< unset: no warmup, decay from initial_learning_rate
  Index warmup_steps = 0;
};

class CosineDecay : public LearningRateSchedule {
 public:
  CosineDecay(double initial_learning_rate, Index decay_steps, CosineDecayOptions o = {})
      : lr0_(initial_learning_rate), steps_(decay_steps), o_(std::move(o)) {
    if (decay_steps <= 0)
      throw ValueError("Argument `decay_steps` must be > 0. Received: decay_steps=" + std::to_string(decay_steps));
    if (o_.warmup_steps < 0)
      throw ValueError("Argument `warmup_steps` must be >= 0. Received: warmup_steps=" +
                       std::to_string(o_.warmup_steps));
  }
  double operator()(Index step) const override {
    const double d = static_cast<double>(steps_);
    double s = static_cast<double>(step);
    if (!o_.warmup_target) return decay(std::min(s, d), lr0_);
    const double w = static_cast<double>(o_.warmup_steps);
    s = std::min(s, d + w);
    if (s < w) return (*o_.warmup_target - lr0_) * (s / w) + lr0_;
    return decay(s - w, *o_.warmup_target);
  }
  std::string class_name() const override { return "CosineDecay"; }
  nlohmann::json get_config() const override {
    return {{"initial_learning_rate", lr0_},
            {"decay_steps", steps_},
            {"alpha", o_.alpha},
            {"name", o_.name},
            {"warmup_target", o_.warmup_target ? nlohmann::json(*o_.warmup_target) : nlohmann::json(nullptr)},
            {"warmup_steps", o_.warmup_steps}};
  }

 private:
  double lr0_;
  Index steps_;
  CosineDecayOptions o_;
  double decay(double s, double from) const {
    const double cosine = 0.5 * (1.0 + std::cos(std::numbers::pi * s / static_cast<double>(steps_)));
    return from * ((1.0 - o_.alpha) * cosine + o_.alpha);
  }
};

/// Keras's serialize(schedule): {"module", "class_name", "config", "registered_name"}.
inline nlohmann::json serialize(const LearningRateSchedule& s) {
  return {{"module", "keras.optimizers.schedules"},
          {"class_name", s.class_name()},
          {"config", s.get_config()},
          {"registered_name", nullptr}};
}

/// A schedule from its serialized form ({"class_name", "config"}, with or without "module");
/// ValueError naming what is wrong otherwise.
inline std::shared_ptr<const LearningRateSchedule> deserialize(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("class_name") || !j["class_name"].is_string())
    throw ValueError("learning rate schedule config must be {\"class_name\": ..., \"config\": {...}}, got " +
                     j.dump().substr(0, 120));
  const std::string cls = j["class_name"];
  const nlohmann::json c = j.contains("config") && j["config"].is_object() ? j["config"] : nlohmann::json::object();
  const std::string who = "learning rate schedule " + cls;
  auto num = [&](const char* k, std::optional<double> def = std::nullopt) -> double {
    if (!c.contains(k) || c[k].is_null()) {
      if (def) return *def;
      throw ValueError(who + ": config has no '" + k + "'");
    }
    if (!c[k].is_number()) throw ValueError(who + ": '" + k + "' must be a number, got " + c[k].dump().substr(0, 80));
    return c[k].get<double>();
  };
  auto steps = [&](const char* k, std::optional<double> def = std::nullopt) {
    const double v = num(k, def);
    if (v != std::floor(v) || !(std::fabs(v) < 9e15))
      throw ValueError(who + ": '" + std::string(k) + "' must be an integer, got " + c[k].dump());
    return static_cast<Index>(v);
  };
  auto name = [&](const char* def) {
    return c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : std::string(def);
  };
  auto list = [&](const char* k) {
    if (!c.contains(k) || !c[k].is_array())
      throw ValueError(who + ": '" + std::string(k) + "' must be a list of numbers");
    std::vector<double> r;
    for (auto& v : c[k]) {
      if (!v.is_number())
        throw ValueError(who + ": '" + std::string(k) + "' must be a list of numbers, got " +
                         c[k].dump().substr(0, 80));
      r.push_back(v.get<double>());
    }
    return r;
  };
  if (cls == "ExponentialDecay") {
    const bool staircase = c.contains("staircase") && c["staircase"].is_boolean() && c["staircase"].get<bool>();
    return std::make_shared<ExponentialDecay>(num("initial_learning_rate"), steps("decay_steps"), num("decay_rate"),
                                              ExponentialDecayOptions{staircase, name("ExponentialDecay")});
  }
  if (cls == "PiecewiseConstantDecay")
    return std::make_shared<PiecewiseConstantDecay>(list("boundaries"), list("values"), name("PiecewiseConstant"));
  if (cls == "CosineDecay") {
    CosineDecayOptions o{num("alpha", 0.0), name("CosineDecay"), std::nullopt, steps("warmup_steps", 0.0)};
    if (c.contains("warmup_target") && !c["warmup_target"].is_null()) o.warmup_target = num("warmup_target");
    return std::make_shared<CosineDecay>(num("initial_learning_rate"), steps("decay_steps"), o);
  }
  throw ValueError("Unknown learning rate schedule: '" + cls +
                   "'. Valid classes: CosineDecay, ExponentialDecay, PiecewiseConstantDecay");
}

}  // namespace keras::optimizers::schedules

namespace keras::optimizers {

/// An optimizer's learning_rate: a number or a schedule (Keras's `learning_rate=` takes either).
/// `.learning_rate = 1e-3`, `.learning_rate = schedules::CosineDecay(1e-3, 1000)`.
class LearningRate {
 public:
  LearningRate(double value) : value_(value) {}  // NOLINT: as Keras, a plain number
  LearningRate(std::shared_ptr<const schedules::LearningRateSchedule> s) : schedule_(std::move(s)) {  // NOLINT
    if (!schedule_) throw ValueError("learning_rate: the schedule is null");
    value_ = (*schedule_)(0);
  }
  template <class S, class = std::enable_if_t<std::is_base_of_v<schedules::LearningRateSchedule, std::decay_t<S>>>>
  LearningRate(S&& s)
      : LearningRate(std::shared_ptr<const schedules::LearningRateSchedule>(
            std::make_shared<std::decay_t<S>>(std::forward<S>(s)))) {}  // NOLINT
  /// The rate at optimizer step `step` (the constant, or the schedule's value).
  double at(Index step) const { return schedule_ ? (*schedule_)(step) : value_; }
  const std::shared_ptr<const schedules::LearningRateSchedule>& schedule() const { return schedule_; }
  /// The number, or the schedule's value at step 0.
  double value() const { return value_; }
  /// As Keras's optimizer config writes it: the number, or the serialized schedule.
  nlohmann::json to_json() const { return schedule_ ? schedules::serialize(*schedule_) : nlohmann::json(value_); }

 private:
  double value_ = 0.0;
  std::shared_ptr<const schedules::LearningRateSchedule> schedule_;
};

}  // namespace keras::optimizers
