// Pooling layers: MaxPooling2D, AveragePooling2D (ops/pooling.hpp), GlobalAveragePooling2D and
// GlobalMaxPooling2D (NHWC; reduce rows and cols).
#pragma once
#include <limits>

#include "../ops/pooling.hpp"
#include "conv2d.hpp"

namespace keras::layers {

struct Pooling2DOptions {
  std::optional<Size2> strides;  ///< default: pool_size
  std::string padding = "valid";
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

namespace detail {
/// MaxPooling2D / AveragePooling2D over [N, H, W, C] windows.
template <class T, bool Max>
class Pooling2D : public Layer<T>, public InferenceKernel<T> {
 public:
  Pooling2D(Size2 pool_size, Pooling2DOptions o) : Layer<T>(o.name, o.input_shape), pool_(pool_size), o_(std::move(o)) {
    check_positive(Max ? "MaxPooling2D" : "AveragePooling2D", "pool_size", pool_);
    if (o_.strides) check_positive(Max ? "MaxPooling2D" : "AveragePooling2D", "strides", *o_.strides);
    ops::parse_padding(o_.padding);
  }
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    return conv_output_shape(this->name(), this->class_name(), in[0], pool_, strides(), o_.padding, Size2(1),
                             in[0].size() == 4 ? in[0][3] : -1);
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    if (x.rank() != 4)
      throw ShapeError("layer '" + this->name() + "': expected a 4-d input, got " + shape_str(x.shape()));
    if (g_.in_h != x.dim(1) || g_.in_w != x.dim(2) || g_.in_c != x.dim(3))
      g_ = ops::pool_geometry(x.dim(1), x.dim(2), x.dim(3), pool_.h, pool_.w, strides().h, strides().w, o_.padding);
    if constexpr (Max)
      ops::max_pool2d_forward(g_, x, y);
    else
      ops::avg_pool2d_forward(g_, x, y);
  }
  /// Reentrant: local geometry.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    const Tensor<T>& x = *in.at(0);
    if (x.rank() != 4)
      throw ShapeError("layer '" + this->name() + "': expected a 4-d input, got " + shape_str(x.shape()));
    const auto g =
        ops::pool_geometry(x.dim(1), x.dim(2), x.dim(3), pool_.h, pool_.w, strides().h, strides().w, o_.padding);
    if constexpr (Max)
      ops::max_pool2d_forward(g, x, y);
    else
      ops::avg_pool2d_forward(g, x, y);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>&, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    if constexpr (Max)
      ops::max_pool2d_backward(g_, *in[0], dy, *dx[0]);
    else
      ops::avg_pool2d_backward(g_, dy, *dx[0]);
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["pool_size"] = pool_.to_json();
    c["strides"] = strides().to_json();
    c["padding"] = o_.padding;
    c["data_format"] = "channels_last";
    return c;
  }
  static Pooling2DOptions options_from_config(const json& c) {
    Pooling2DOptions o;
    const char* cls = Max ? "MaxPooling2D" : "AveragePooling2D";
    o.name = config::name(c, cls);
    const std::string who = config::where(cls, c);
    if (c.contains("strides") && !c["strides"].is_null()) o.strides = Size2::from_json(c["strides"], who, "strides");
    o.padding = config::get_string(c, "padding", "valid", who);
    if (config::get_string(c, "data_format", "channels_last", who) != "channels_last")
      throw ValueError("pooling layer '" + o.name + "': only data_format channels_last is supported");
    return o;
  }

 private:
  Size2 pool_;
  Pooling2DOptions o_;
  ops::Pool2DGeometry g_;
  Size2 strides() const { return o_.strides ? *o_.strides : pool_; }
};
}  // namespace detail

template <class T = float>
class MaxPooling2D : public detail::Pooling2D<T, true> {
 public:
  KERAS_LAYER(MaxPooling2D)
  explicit MaxPooling2D(Size2 pool_size = 2, Pooling2DOptions o = {})
      : detail::Pooling2D<T, true>(pool_size, std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    auto o = detail::Pooling2D<T, true>::options_from_config(c);
    const json pool =
        c.is_object() && c.contains("pool_size") && !c["pool_size"].is_null() ? c["pool_size"] : json::array({2, 2});
    return std::make_shared<MaxPooling2D>(Size2::from_json(pool, config::where("MaxPooling2D", c), "pool_size"), o);
  }
};

template <class T = float>
class AveragePooling2D : public detail::Pooling2D<T, false> {
 public:
  KERAS_LAYER(AveragePooling2D)
  explicit AveragePooling2D(Size2 pool_size = 2, Pooling2DOptions o = {})
      : detail::Pooling2D<T, false>(pool_size, std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    auto o = detail::Pooling2D<T, false>::options_from_config(c);
    const json pool =
        c.is_object() && c.contains("pool_size") && !c["pool_size"].is_null() ? c["pool_size"] : json::array({2, 2});
    return std::make_shared<AveragePooling2D>(Size2::from_json(pool, config::where("AveragePooling2D", c), "pool_size"),
                                              o);
  }
};

struct GlobalPoolingOptions {
  bool keepdims = false;
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

namespace detail {
/// Global average or max over the spatial axes of [N, H, W, C] (Rank 4) or [N, steps, C] (Rank 3).
template <class T, bool Max, int Rank = 4>
class GlobalPooling2D : public Layer<T>, public ReentrantInference {
 public:
  explicit GlobalPooling2D(GlobalPoolingOptions o) : Layer<T>(o.name, o.input_shape), keepdims_(o.keepdims) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], Rank);
    return keepdims_ ? kept(in[0][0], in[0][Rank - 1]) : Shape{in[0][0], in[0][Rank - 1]};
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    const Index N = x.dim(0), P = x.dim(1) * (Rank == 4 ? x.dim(2) : 1), C = x.dim(Rank - 1);
    y.resize(keepdims_ ? kept(N, C) : Shape{N, C});
    keras::parallel_for(N, 1, (N * P * C > 65536) ? get_num_threads() : 1, [&](Index n_begin, Index n_end) {
      for (Index n = n_begin; n < n_end; ++n) {
        T* out = y.data() + n * C;
        const T* xp = x.data() + n * P * C;
        for (Index c = 0; c < C; ++c) out[c] = Max ? -std::numeric_limits<T>::infinity() : T(0);
        for (Index p = 0; p < P; ++p)
          for (Index c = 0; c < C; ++c) {
            if constexpr (Max)
              out[c] = std::max(out[c], xp[p * C + c]);
            else
              out[c] += xp[p * C + c];
          }
        if (!Max)
          for (Index c = 0; c < C; ++c) out[c] /= static_cast<T>(P);
      }
    });
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    const Tensor<T>& x = *in.at(0);
    const Index N = x.dim(0), P = x.dim(1) * (Rank == 4 ? x.dim(2) : 1), C = x.dim(Rank - 1);
    dx[0]->resize(x.shape());
    if (Max) dx[0]->setZero();
    keras::parallel_for(N, 1, (N * P * C > 65536) ? get_num_threads() : 1, [&](Index n_begin, Index n_end) {
      for (Index n = n_begin; n < n_end; ++n) {
        const T* g = dy.data() + n * C;
        T* d = dx[0]->data() + n * P * C;
        if constexpr (Max) {  // gradient to the first maximum, as TF
          const T* xp = x.data() + n * P * C;
          const T* ym = y.data() + n * C;
          std::vector<char> done(C, 0);
          for (Index p = 0; p < P; ++p)
            for (Index c = 0; c < C; ++c)
              if (!done[c] && xp[p * C + c] == ym[c]) {
                d[p * C + c] = g[c];
                done[c] = 1;
              }
        } else {
          const T inv = T(1) / static_cast<T>(P);
          for (Index p = 0; p < P; ++p)
            for (Index c = 0; c < C; ++c) d[p * C + c] = g[c] * inv;
        }
      }
    });
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["data_format"] = "channels_last";
    c["keepdims"] = keepdims_;
    return c;
  }

 private:
  bool keepdims_;
  static Shape kept(Index n, Index c) { return Rank == 4 ? Shape{n, 1, 1, c} : Shape{n, 1, c}; }
};
}  // namespace detail

template <class T = float>
class GlobalAveragePooling2D : public detail::GlobalPooling2D<T, false> {
 public:
  KERAS_LAYER(GlobalAveragePooling2D)
  explicit GlobalAveragePooling2D(GlobalPoolingOptions o = {}) : detail::GlobalPooling2D<T, false>(std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<GlobalAveragePooling2D>(
        GlobalPoolingOptions{config::get_bool(c, "keepdims", false, config::where("GlobalAveragePooling2D", c)),
                             config::name(c, "GlobalAveragePooling2D"),
                             {}});
  }
};

template <class T = float>
class GlobalMaxPooling2D : public detail::GlobalPooling2D<T, true> {
 public:
  KERAS_LAYER(GlobalMaxPooling2D)
  explicit GlobalMaxPooling2D(GlobalPoolingOptions o = {}) : detail::GlobalPooling2D<T, true>(std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<GlobalMaxPooling2D>(
        GlobalPoolingOptions{config::get_bool(c, "keepdims", false, config::where("GlobalMaxPooling2D", c)),
                             config::name(c, "GlobalMaxPooling2D"),
                             {}});
  }
};

}  // namespace keras::layers
