// Keras's random image-augmentation layers: RandomFlip, RandomRotation, RandomZoom and
// RandomTranslation. Each acts only when called with training = true, per sample, from its own
// seeded random stream; in inference it is the identity. Inputs are NHWC images of any value range.
//
// RandomFlip has a finite set of outcomes (layers::FiniteAugmentation), so fit() can still cache
// the frozen layers after it (once per outcome); the others have infinitely many and switch the
// cache off. The random streams are kerascpp's own (std::mt19937_64): the same seed gives the same
// augmentations here on every machine, not the ones TensorFlow would draw.
#pragma once
#include <array>
#include <optional>
#include <utility>

#include "../ops/image_transform.hpp"
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

/// The base of the random image layers: seed, random stream, NHWC input checks.
template <class T>
class RandomImageLayer : public Layer<T>, public InferenceKernel<T> {
 public:
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 4, "images (batch, height, width, channels)");
    return in[0];
  }
  /// Random in training: fit() cannot cache what follows (unless FiniteAugmentation says how).
  bool cacheable() const override { return false; }
  std::optional<std::uint64_t> seed() const { return seed_; }

 protected:
  RandomImageLayer(std::optional<std::uint64_t> seed, std::string name, Shape input_shape)
      : Layer<T>(std::move(name), std::move(input_shape)), seed_(seed), rng_(seed ? *seed : next_global_seed()) {}
  std::optional<std::uint64_t> seed_;
  Random rng_;
  json base_config() const {
    json c = Layer<T>::get_config();
    c["seed"] = seed_ ? json(*seed_) : json(nullptr);
    c["data_format"] = "channels_last";
    return c;
  }
  static std::optional<std::uint64_t> seed_from(const json& c, const std::string& who) {
    if (!c.contains("seed") || c["seed"].is_null()) return std::nullopt;
    return static_cast<std::uint64_t>(config::get_int(c, "seed", 0, who, 0, std::numeric_limits<Index>::max()));
  }
  static void check_data_format(const json& c, const std::string& who) {
    const std::string f = config::get_string(c, "data_format", "channels_last", who);
    if (f != "channels_last")
      throw ValueError(who + ": only data_format 'channels_last' is supported, got '" + f + "'");
  }
};

struct RandomFlipOptions {
  std::optional<std::uint64_t> seed;
  std::string name;   ///< empty: Keras's automatic name
  Shape input_shape;  ///< per-sample input shape; on a Sequential's first layer it creates the InputLayer
};

/// Flips each image left-right ("horizontal"), top-bottom ("vertical") or both independently
/// ("horizontal_and_vertical", Keras's default), each with probability 1/2.
template <class T = float>
class RandomFlip : public RandomImageLayer<T>, public FiniteAugmentation<T> {
 public:
  KERAS_LAYER(RandomFlip)
  explicit RandomFlip(std::string mode = "horizontal_and_vertical", RandomFlipOptions o = {})
      : RandomImageLayer<T>(o.seed, std::move(o.name), std::move(o.input_shape)), mode_(std::move(mode)) {
    if (mode_ != "horizontal" && mode_ != "vertical" && mode_ != "horizontal_and_vertical")
      throw ValueError("RandomFlip '" + this->name() +
                       "': mode must be 'horizontal', 'vertical' or 'horizontal_and_vertical', got '" + mode_ + "'");
  }
  const std::string& mode() const { return mode_; }

  // Outcome bits: 1 = left-right, 2 = top-bottom.
  int num_outcomes() const override { return mode_ == "horizontal_and_vertical" ? 4 : 2; }
  void draw_outcomes(Index n, std::vector<int>& out) override {
    out.assign(static_cast<std::size_t>(n), 0);
    const bool h = mode_ != "vertical", v = mode_ != "horizontal";
    if (h)
      for (auto& o : out) o |= this->rng_.uniform() < 0.5 ? 1 : 0;
    if (v)
      for (auto& o : out) o |= this->rng_.uniform() < 0.5 ? (mode_ == "vertical" ? 1 : 2) : 0;
  }
  void set_inference_outcome(int k) override {
    if (k < 0 || k >= num_outcomes()) throw ValueError("RandomFlip: no outcome " + std::to_string(k));
    inference_outcome_ = k;
  }

  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    y = *in.at(0);
    if (inference_outcome_) apply(y, std::vector<int>(static_cast<std::size_t>(y.dim(0)), inference_outcome_));
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool training) override {
    if (!training) {
      forward_inference(in, y);
      last_.clear();
      return;
    }
    y = *in.at(0);
    draw_outcomes(y.dim(0), last_);
    apply(y, last_);
  }
  void backward(const typename Layer<T>::Inputs&, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    *dx[0] = dy;  // a flip is its own inverse and its own transpose
    if (!last_.empty()) apply(*dx[0], last_);
  }
  json get_config() const override {
    json c = this->base_config();
    c["mode"] = mode_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("RandomFlip", c);
    RandomImageLayer<T>::check_data_format(c, who);
    return std::make_shared<RandomFlip>(
        config::get_string(c, "mode", "horizontal_and_vertical", who),
        RandomFlipOptions{RandomImageLayer<T>::seed_from(c, who), config::name(c, "RandomFlip"), {}});
  }

 private:
  std::string mode_;
  std::vector<int> last_;  ///< outcomes of the last training forward (for backward)
  int inference_outcome_ = 0;

  /// outcome bit 1 = the mode's first flip (left-right, or top-bottom in "vertical" mode), 2 = top-bottom
  void apply(Tensor<T>& y, const std::vector<int>& outcomes) const {
    const Index n = y.dim(0), h = y.dim(1), w = y.dim(2), ch = y.dim(3), img = h * w * ch;
    for (Index i = 0; i < n; ++i) {
      const int o = outcomes[static_cast<std::size_t>(i)];
      if (o & 1) ops::flip_image(y.data() + i * img, h, w, ch, mode_ != "vertical");
      if (o & 2) ops::flip_image(y.data() + i * img, h, w, ch, false);
    }
  }
};

/// Options shared by the resampling layers (Keras's names and defaults).
struct RandomTransformOptions {
  std::string fill_mode = "reflect";       ///< reflect, wrap, constant, nearest
  std::string interpolation = "bilinear";  ///< bilinear, nearest
  std::optional<std::uint64_t> seed;
  double fill_value = 0.0;  ///< for fill_mode "constant"
  std::string name;         ///< empty: Keras's automatic name
  Shape input_shape;        ///< per-sample input shape; on a Sequential's first layer it creates the InputLayer
};

/// A factor as Keras takes it: one number f means the range [-f, f], a pair [lo, hi].
using FactorRange = std::pair<double, double>;

/// The base of RandomRotation, RandomZoom and RandomTranslation: draws one affine transform per
/// sample in training and resamples the image through it (ops::affine_transform).
template <class T>
class RandomAffineLayer : public RandomImageLayer<T> {
 public:
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override { y = *in.at(0); }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool training) override {
    const Tensor<T>& x = *in.at(0);
    transforms_.clear();
    if (!training) {
      y = x;
      return;
    }
    const Index n = x.dim(0), h = x.dim(1), w = x.dim(2), c = x.dim(3), img = h * w * c;
    draw_transforms(n, h, w, transforms_);
    y.resize(x.shape());
    for (Index i = 0; i < n; ++i)
      ops::affine_transform(x.data() + i * img, y.data() + i * img, h, w, c, transforms_[static_cast<std::size_t>(i)],
                            fill_, bilinear_, static_cast<T>(opt_.fill_value));
  }
  void backward(const typename Layer<T>::Inputs&, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    if (transforms_.empty()) {
      *dx[0] = dy;
      return;
    }
    const Index n = dy.dim(0), h = dy.dim(1), w = dy.dim(2), c = dy.dim(3), img = h * w * c;
    dx[0]->resize(dy.shape());
    dx[0]->setZero();
    for (Index i = 0; i < n; ++i)
      ops::affine_transform_backward(dy.data() + i * img, dx[0]->data() + i * img, h, w, c,
                                     transforms_[static_cast<std::size_t>(i)], fill_, bilinear_);
  }
  const RandomTransformOptions& options() const { return opt_; }

 protected:
  RandomAffineLayer(RandomTransformOptions o, const char* cls)
      : RandomImageLayer<T>(o.seed, o.name, o.input_shape), opt_(std::move(o)) {
    // (name() is not callable yet: the automatic name needs the derived class)
    const std::string who = std::string(cls) + (opt_.name.empty() ? "" : " '" + opt_.name + "'");
    fill_ = ops::fill_mode_from(opt_.fill_mode, who);
    if (opt_.interpolation != "bilinear" && opt_.interpolation != "nearest")
      throw ValueError(who + ": interpolation must be 'bilinear' or 'nearest', got '" + opt_.interpolation + "'");
    bilinear_ = opt_.interpolation == "bilinear";
  }
  /// One transform per sample (output pixel -> input point) for images of h x w.
  virtual void draw_transforms(Index n, Index h, Index w, std::vector<std::array<double, 8>>& out) = 0;
  json transform_config() const {
    json c = this->base_config();
    c["fill_mode"] = opt_.fill_mode;
    c["interpolation"] = opt_.interpolation;
    c["fill_value"] = opt_.fill_value;
    return c;
  }
  static RandomTransformOptions options_from(const json& c, const char* cls) {
    const std::string who = config::where(cls, c);
    RandomImageLayer<T>::check_data_format(c, who);
    RandomTransformOptions o;
    o.fill_mode = config::get_string(c, "fill_mode", o.fill_mode, who);
    o.interpolation = config::get_string(c, "interpolation", o.interpolation, who);
    o.seed = RandomImageLayer<T>::seed_from(c, who);
    o.fill_value = config::get_number(c, "fill_value", 0.0, who);
    o.name = config::name(c, cls);
    return o;
  }
  /// A factor from a config: a number f ([-f, f]) or a pair [lo, hi].
  static FactorRange factor_from(const json& c, const char* key, const std::string& who) {
    const json& v = config::require(c, key, who);
    if (v.is_number()) {
      const double f = config::get_number(c, key, 0.0, who);
      return {-std::abs(f), std::abs(f)};
    }
    if (v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number())
      return {v[0].get<double>(), v[1].get<double>()};
    throw ValueError(who + ": '" + key + "' must be a number or a pair [lower, upper], got " + v.dump().substr(0, 80));
  }
  static void check_range(const FactorRange& f, const std::string& who, const char* what, double lo, double hi) {
    if (!(f.first <= f.second) || f.first < lo || f.second > hi)
      throw ValueError(who + ": " + what + " must be a range [lower, upper] within [" + json(lo).dump() + ", " +
                       json(hi).dump() + "], got [" + json(f.first).dump() + ", " + json(f.second).dump() + "]");
  }

 private:
  RandomTransformOptions opt_;
  ops::FillMode fill_ = ops::FillMode::Reflect;
  bool bilinear_ = true;
  std::vector<std::array<double, 8>> transforms_;  ///< of the last training forward (for backward)
};

/// Rotates each image by an angle drawn uniformly from factor * 2 pi (counter-clockwise positive).
template <class T = float>
class RandomRotation : public RandomAffineLayer<T> {
 public:
  KERAS_LAYER(RandomRotation)
  explicit RandomRotation(double factor, RandomTransformOptions o = {})
      : RandomRotation(FactorRange{-std::abs(factor), std::abs(factor)}, std::move(o)) {}
  RandomRotation(FactorRange factor, RandomTransformOptions o = {})
      : RandomAffineLayer<T>(std::move(o), "RandomRotation"), factor_(factor) {
    this->check_range(factor_, "RandomRotation '" + this->name() + "'", "factor", -1.0, 1.0);
  }
  FactorRange factor() const { return factor_; }
  json get_config() const override {
    json c = this->transform_config();
    c["factor"] = {factor_.first, factor_.second};
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("RandomRotation", c);
    return std::make_shared<RandomRotation>(RandomAffineLayer<T>::factor_from(c, "factor", who),
                                            RandomAffineLayer<T>::options_from(c, "RandomRotation"));
  }

 protected:
  void draw_transforms(Index n, Index h, Index w, std::vector<std::array<double, 8>>& out) override {
    out.resize(static_cast<std::size_t>(n));
    const double two_pi = 6.283185307179586;
    for (auto& t : out) t = ops::rotation_transform(this->rng_.uniform(factor_.first, factor_.second) * two_pi, h, w);
  }

 private:
  FactorRange factor_;
};

/// Zooms each image by 1 + a factor drawn from height_factor (and width_factor; by default the same
/// draw, keeping the aspect ratio). Positive zooms out, negative zooms in.
template <class T = float>
class RandomZoom : public RandomAffineLayer<T> {
 public:
  KERAS_LAYER(RandomZoom)
  explicit RandomZoom(double height_factor, std::optional<double> width_factor = std::nullopt,
                      RandomTransformOptions o = {})
      : RandomZoom(FactorRange{-std::abs(height_factor), std::abs(height_factor)},
                   width_factor
                       ? std::optional<FactorRange>(FactorRange{-std::abs(*width_factor), std::abs(*width_factor)})
                       : std::nullopt,
                   std::move(o)) {}
  RandomZoom(FactorRange height_factor, std::optional<FactorRange> width_factor, RandomTransformOptions o = {})
      : RandomAffineLayer<T>(std::move(o), "RandomZoom"), height_(height_factor), width_(width_factor) {
    const std::string who = "RandomZoom '" + this->name() + "'";
    this->check_range(height_, who, "height_factor", -1.0, std::numeric_limits<double>::max());
    if (width_) this->check_range(*width_, who, "width_factor", -1.0, std::numeric_limits<double>::max());
  }
  json get_config() const override {
    json c = this->transform_config();
    c["height_factor"] = {height_.first, height_.second};
    c["width_factor"] = width_ ? json{width_->first, width_->second} : json(nullptr);
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("RandomZoom", c);
    std::optional<FactorRange> wf;
    if (c.contains("width_factor") && !c["width_factor"].is_null())
      wf = RandomAffineLayer<T>::factor_from(c, "width_factor", who);
    return std::make_shared<RandomZoom>(RandomAffineLayer<T>::factor_from(c, "height_factor", who), wf,
                                        RandomAffineLayer<T>::options_from(c, "RandomZoom"));
  }

 protected:
  void draw_transforms(Index n, Index h, Index w, std::vector<std::array<double, 8>>& out) override {
    std::vector<double> zy(static_cast<std::size_t>(n)), zx;
    for (auto& z : zy) z = 1.0 + this->rng_.uniform(height_.first, height_.second);
    zx = zy;
    if (width_)
      for (auto& z : zx) z = 1.0 + this->rng_.uniform(width_->first, width_->second);
    out.resize(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = ops::zoom_transform(zx[i], zy[i], h, w);
  }

 private:
  FactorRange height_;
  std::optional<FactorRange> width_;
};

/// Shifts each image by fractions of its height and width drawn from height_factor and
/// width_factor (down and right positive).
template <class T = float>
class RandomTranslation : public RandomAffineLayer<T> {
 public:
  KERAS_LAYER(RandomTranslation)
  RandomTranslation(double height_factor, double width_factor, RandomTransformOptions o = {})
      : RandomTranslation(FactorRange{-std::abs(height_factor), std::abs(height_factor)},
                          FactorRange{-std::abs(width_factor), std::abs(width_factor)}, std::move(o)) {}
  RandomTranslation(FactorRange height_factor, FactorRange width_factor, RandomTransformOptions o = {})
      : RandomAffineLayer<T>(std::move(o), "RandomTranslation"), height_(height_factor), width_(width_factor) {
    const std::string who = "RandomTranslation '" + this->name() + "'";
    this->check_range(height_, who, "height_factor", -1.0, 1.0);
    this->check_range(width_, who, "width_factor", -1.0, 1.0);
  }
  json get_config() const override {
    json c = this->transform_config();
    c["height_factor"] = {height_.first, height_.second};
    c["width_factor"] = {width_.first, width_.second};
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("RandomTranslation", c);
    return std::make_shared<RandomTranslation>(RandomAffineLayer<T>::factor_from(c, "height_factor", who),
                                               RandomAffineLayer<T>::factor_from(c, "width_factor", who),
                                               RandomAffineLayer<T>::options_from(c, "RandomTranslation"));
  }

 protected:
  void draw_transforms(Index n, Index h, Index w, std::vector<std::array<double, 8>>& out) override {
    std::vector<double> dy(static_cast<std::size_t>(n)), dx(static_cast<std::size_t>(n));
    for (auto& d : dy) d = this->rng_.uniform(height_.first, height_.second) * static_cast<double>(h);
    for (auto& d : dx) d = this->rng_.uniform(width_.first, width_.second) * static_cast<double>(w);
    out.resize(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = ops::translation_transform(dx[i], dy[i]);
  }

 private:
  FactorRange height_, width_;
};

}  // namespace keras::layers
