// Reshape(target_shape), ZeroPadding2D(padding) and Rescaling(scale, offset).
#pragma once
#include "../ops/padding.hpp"
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

/// Reshape to target_shape (without batch; one dimension may be -1).
template <class T = float>
class Reshape : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Reshape)
  explicit Reshape(Shape target_shape, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), target_(std::move(target_shape)) {
    Shape known;
    for (Index d : target_) {
      if (d == 0 || d < -1)
        throw ValueError("Reshape: target_shape dimensions must be positive or -1, got " + shape_str(target_));
      known.push_back(d < 0 ? 1 : d);
    }
    num_elements(known);  // throws past 2^48 elements, so the products below cannot overflow
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    Index n = 1;
    bool unknown_in = false;
    Shape known_in;
    for (std::size_t i = 1; i < in[0].size(); ++i) {
      if (in[0][i] < 0)
        unknown_in = true;
      else
        known_in.push_back(in[0][i]);
    }
    n = num_elements(known_in);
    Shape out{in[0][0]};
    int unknown = -1;
    Index known = 1;
    for (std::size_t i = 0; i < target_.size(); ++i) {
      if (target_[i] == -1) {
        if (unknown >= 0)
          throw ValueError("layer '" + this->name() + "' (Reshape): can only specify one unknown dimension in " +
                           shape_str(target_));
        unknown = static_cast<int>(i);
      } else
        known *= target_[i];
      out.push_back(target_[i]);
    }
    if (unknown_in) return out;
    if (unknown >= 0) {
      if (known == 0 || n % known)
        throw ShapeError("layer '" + this->name() +
                         "' (Reshape): total size of the new array must be unchanged, input_shape = " +
                         shape_str(in[0]) + ", output_shape = " + shape_str(target_));
      out[unknown + 1] = n / known;
    } else if (known != n) {
      throw ShapeError("layer '" + this->name() +
                       "' (Reshape): total size of the new array must be unchanged, input_shape = " + shape_str(in[0]) +
                       ", output_shape = " + shape_str(target_));
    }
    return out;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    Shape s = compute_output_shape({in[0]->shape()});
    y = *in[0];
    y.reshape(s);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    *dx[0] = dy;
    dx[0]->reshape(in[0]->shape());
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["target_shape"] = target_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("Reshape", c);
    const json& ts = config::require(c, "target_shape", who);
    if (!ts.is_array() || ts.empty() || ts.size() > 8)
      throw ValueError(who + ": 'target_shape' must be a list of 1 to 8 dimensions, got " + ts.dump().substr(0, 80));
    Shape t;
    for (auto& d : ts) {
      t.push_back(d.is_null() ? -1 : config::to_int(d, who, "target_shape", -1, config::kMaxDim));
      if (t.back() == 0)
        throw ValueError(who + ": 'target_shape' dimensions must be positive or -1, got " + ts.dump().substr(0, 80));
    }
    return std::make_shared<Reshape>(t, LayerOptions{config::name(c, "Reshape"), {}});
  }

 private:
  Shape target_;
};

/// ZeroPadding2D: ((top, bottom), (left, right)) zeros around the spatial axes (NHWC).
struct Padding2D {
  Index top = 1, bottom = 1, left = 1, right = 1;
  Padding2D() = default;
  Padding2D(Index p) : top(p), bottom(p), left(p), right(p) {}  // NOLINT
  Padding2D(Index h, Index w) : top(h), bottom(h), left(w), right(w) {}
  Padding2D(std::pair<Index, Index> hw, std::pair<Index, Index> lr)
      : top(hw.first), bottom(hw.second), left(lr.first), right(lr.second) {}
  json to_json() const { return json::array({json::array({top, bottom}), json::array({left, right})}); }
  /// From Keras's int, (h, w) or ((top, bottom), (left, right)), each in [0, 2^31 - 1]; anything
  /// else is refused (an empty or one-pair list used to be read out of bounds). `who`/`key` name
  /// the layer and the config key in the error.
  static Padding2D from_json(const json& p, const std::string& who, const std::string& key) {
    auto v = [&](const json& e) { return config::to_int(e, who, key, 0, config::kMaxDim); };
    auto pair = [&](const json& e) { return e.is_array() && e.size() == 2; };
    if (p.is_number()) return Padding2D(v(p));
    if (pair(p) && p[0].is_number() && p[1].is_number()) return Padding2D(v(p[0]), v(p[1]));
    if (pair(p) && pair(p[0]) && pair(p[1])) return Padding2D({v(p[0][0]), v(p[0][1])}, {v(p[1][0]), v(p[1][1])});
    throw ValueError(who + ": '" + key + "' must be an int, a pair of ints or a pair of (before, after) pairs, got " +
                     p.dump().substr(0, 80));
  }
};

template <class T = float>
class ZeroPadding2D : public Layer<T>, public ReentrantInference, public ZeroPaddingInference {
 public:
  KERAS_LAYER(ZeroPadding2D)
  explicit ZeroPadding2D(Padding2D p = {}, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), p_(p) {
    if (p.top < 0 || p.bottom < 0 || p.left < 0 || p.right < 0) throw ValueError("ZeroPadding2D: padding must be >= 0");
  }
  const Padding2D& padding() const { return p_; }
  std::array<Index, 4> zero_padding() const override { return {p_.top, p_.bottom, p_.left, p_.right}; }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 4);
    Shape s = in[0];
    if (s[1] >= 0) s[1] += p_.top + p_.bottom;
    if (s[2] >= 0) s[2] += p_.left + p_.right;
    return s;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    ops::zero_padding2d_forward(*in[0], p_.top, p_.bottom, p_.left, p_.right, y);
  }
  void backward(const typename Layer<T>::Inputs& /*in*/, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) ops::zero_padding2d_backward(dy, p_.top, p_.bottom, p_.left, p_.right, *dx[0]);
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["padding"] = p_.to_json();
    c["data_format"] = "channels_last";
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("ZeroPadding2D", c);
    config::check_channels_last(c, who);
    const Padding2D p = Padding2D::from_json(config::require(c, "padding", who), who, "padding");
    return std::make_shared<ZeroPadding2D>(p, LayerOptions{config::name(c, "ZeroPadding2D"), {}});
  }

 private:
  Padding2D p_;
};

/// Rescaling: y = x * scale + offset (e.g. scale 1/127.5, offset -1 maps [0,255] to [-1,1]).
template <class T = float>
class Rescaling : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Rescaling)
  explicit Rescaling(double scale, double offset = 0.0, LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), scale_(scale), offset_(offset) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    return in[0];
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    y.resize(in[0]->shape());
    y.array() = in[0]->array() * static_cast<T>(scale_) + static_cast<T>(offset_);
  }
  void backward(const typename Layer<T>::Inputs& /*in*/, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    dx[0]->resize(dy.shape());
    dx[0]->array() = dy.array() * static_cast<T>(scale_);
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["scale"] = scale_;
    c["offset"] = offset_;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("Rescaling", c);
    config::require(c, "scale", who);
    return std::make_shared<Rescaling>(config::get_number(c, "scale", 1.0, who),
                                       config::get_number(c, "offset", 0.0, who),
                                       LayerOptions{config::name(c, "Rescaling"), {}});
  }

 private:
  double scale_, offset_;
};

}  // namespace keras::layers
