// Spatial resampling of NHWC images: UpSampling2D(size, interpolation), Cropping2D(cropping) and
// Resizing(height, width, interpolation, crop_to_aspect_ratio). Interpolation is tf.image.resize's
// (half-pixel centers, ops/resize.hpp), as Keras; "nearest" and "bilinear" only.
#pragma once
#include "../ops/resize.hpp"
#include "conv2d.hpp"
#include "reshaping.hpp"

namespace keras::layers {

namespace detail {
/// "nearest" -> false, "bilinear" -> true; anything else is refused naming the layer.
inline bool bilinear_from(const std::string& interpolation, const std::string& who) {
  if (interpolation == "nearest") return false;
  if (interpolation == "bilinear") return true;
  throw ValueError(who + ": interpolation '" + interpolation + "' is not supported (supported: 'nearest', 'bilinear')");
}
}  // namespace detail

struct UpSampling2DOptions {
  std::string interpolation = "nearest";
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

/// UpSampling2D: repeats rows size.h times and columns size.w times ("nearest"), or resizes
/// bilinearly to (h * size.h, w * size.w) as Keras (TF.js 4.22's bilinear uses corner-aligned
/// sampling instead, half_pixel_centers=false).
template <class T = float>
class UpSampling2D : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(UpSampling2D)
  explicit UpSampling2D(Size2 size = 2, UpSampling2DOptions o = {})
      : Layer<T>(o.name, o.input_shape),
        size_(size),
        o_(std::move(o)),
        bilinear_(detail::bilinear_from(o_.interpolation, "UpSampling2D")) {
    detail::check_positive("UpSampling2D", "size", size_);
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 4);
    Shape s = in[0];
    if (s[1] >= 0) s[1] *= size_.h;
    if (s[2] >= 0) s[2] *= size_.w;
    return s;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    ops::resize_forward(x, window(x.shape()), x.dim(1) * size_.h, x.dim(2) * size_.w, bilinear_, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) ops::resize_backward(in[0]->shape(), window(in[0]->shape()), dy, bilinear_, *dx[0]);
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["size"] = size_.to_json();
    c["data_format"] = "channels_last";
    c["interpolation"] = o_.interpolation;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("UpSampling2D", c);
    config::check_channels_last(c, who);
    UpSampling2DOptions o{config::get_string(c, "interpolation", "nearest", who), config::name(c, "UpSampling2D"), {}};
    detail::bilinear_from(o.interpolation, who);
    const json size = c.is_object() && c.contains("size") && !c["size"].is_null() ? c["size"] : json::array({2, 2});
    return std::make_shared<UpSampling2D>(Size2::from_json(size, who, "size"), o);
  }

 private:
  Size2 size_;
  UpSampling2DOptions o_;
  bool bilinear_;
  static ops::ResizeWindow window(const Shape& x) { return {0, 0, x[1], x[2]}; }
};

/// Cropping2D: removes ((top, bottom), (left, right)) rows and columns (Padding2D's layout).
template <class T = float>
class Cropping2D : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Cropping2D)
  explicit Cropping2D(Padding2D cropping = Padding2D(0), LayerOptions o = {})
      : Layer<T>(std::move(o.name), std::move(o.input_shape)), p_(cropping) {
    if (p_.top < 0 || p_.bottom < 0 || p_.left < 0 || p_.right < 0)
      throw ValueError("Cropping2D: cropping must be >= 0");
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 4);
    Shape s = in[0];
    for (int d : {1, 2}) {
      const Index crop = d == 1 ? p_.top + p_.bottom : p_.left + p_.right;
      if (s[d] >= 0 && s[d] - crop <= 0)
        throw ValueError("layer '" + this->name() + "' (Cropping2D): cropping " + std::to_string(crop) +
                         " leaves nothing of input " + shape_str(in[0]));
      if (s[d] >= 0) s[d] -= crop;
    }
    return s;
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in[0];
    Shape s = compute_output_shape({x.shape()});
    y.resize(s);
    const Index C = x.dim(3), W = x.dim(2), row = s[2] * C;
    for (Index n = 0; n < s[0]; ++n)
      for (Index h = 0; h < s[1]; ++h) {
        const T* src = x.data() + ((n * x.dim(1) + h + p_.top) * W + p_.left) * C;
        std::copy(src, src + row, y.data() + (n * s[1] + h) * row);
      }
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    const Shape& xs = in[0]->shape();
    dx[0]->resize(xs);
    dx[0]->setZero();
    const Index C = xs[3], W = xs[2], row = dy.dim(2) * C;
    for (Index n = 0; n < dy.dim(0); ++n)
      for (Index h = 0; h < dy.dim(1); ++h) {
        const T* src = dy.data() + (n * dy.dim(1) + h) * row;
        std::copy(src, src + row, dx[0]->data() + ((n * xs[1] + h + p_.top) * W + p_.left) * C);
      }
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["cropping"] = p_.to_json();
    c["data_format"] = "channels_last";
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("Cropping2D", c);
    config::check_channels_last(c, who);
    const Padding2D p =
        Padding2D::from_json(c.is_object() && c.contains("cropping") ? c["cropping"] : json(0), who, "cropping");
    return std::make_shared<Cropping2D>(p, LayerOptions{config::name(c, "Cropping2D"), {}});
  }

 private:
  Padding2D p_;
};

struct ResizingOptions {
  std::string interpolation = "bilinear";
  bool crop_to_aspect_ratio = false;
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

/// Resizing: tf.image.resize to (height, width); with crop_to_aspect_ratio the largest centred
/// window of the target aspect ratio is resized (Keras's smart_resize). TF.js 4.22's Resizing
/// samples with align_corners instead (and ignores the crop), so it differs from Keras.
template <class T = float>
class Resizing : public Layer<T>, public ReentrantInference {
 public:
  KERAS_LAYER(Resizing)
  Resizing(Index height, Index width, ResizingOptions o = {})
      : Layer<T>(o.name, o.input_shape),
        h_(height),
        w_(width),
        o_(std::move(o)),
        bilinear_(detail::bilinear_from(o_.interpolation, "Resizing")) {
    detail::check_positive("Resizing", "height and width", Size2(h_, w_));
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 4);
    return {in[0][0], h_, w_, in[0][3]};
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    ops::resize_forward(*in[0], window(in[0]->shape()), h_, w_, bilinear_, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (dx.at(0)) ops::resize_backward(in[0]->shape(), window(in[0]->shape()), dy, bilinear_, *dx[0]);
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["height"] = h_;
    c["width"] = w_;
    c["interpolation"] = o_.interpolation;
    c["crop_to_aspect_ratio"] = o_.crop_to_aspect_ratio;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    const std::string who = config::where("Resizing", c);
    config::check_channels_last(c, who);
    if (config::get_bool(c, "pad_to_aspect_ratio", false, who))
      throw ValueError(who + ": pad_to_aspect_ratio=True is not supported");
    ResizingOptions o{config::get_string(c, "interpolation", "bilinear", who),
                      config::get_bool(c, "crop_to_aspect_ratio", false, who),
                      config::name(c, "Resizing"),
                      {}};
    detail::bilinear_from(o.interpolation, who);
    return std::make_shared<Resizing>(
        config::to_int(config::require(c, "height", who), who, "height", 1, config::kMaxDim),
        config::to_int(config::require(c, "width", who), who, "width", 1, config::kMaxDim), o);
  }

 private:
  Index h_, w_;
  ResizingOptions o_;
  bool bilinear_;
  ops::ResizeWindow window(const Shape& x) const {
    const Index H = x[1], W = x[2];
    if (!o_.crop_to_aspect_ratio) return {0, 0, H, W};
    const Index ch = std::min<Index>(H, static_cast<Index>(static_cast<double>(W) * h_ / w_));
    const Index cw = std::min<Index>(W, static_cast<Index>(static_cast<double>(H) * w_ / h_));
    return {(H - ch) / 2, (W - cw) / 2, std::max<Index>(ch, 1), std::max<Index>(cw, 1)};
  }
};

}  // namespace keras::layers
