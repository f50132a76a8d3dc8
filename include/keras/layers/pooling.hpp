// Pooling layers: MaxPooling2D, AveragePooling2D (ops/pooling.hpp), GlobalAveragePooling2D and
// GlobalMaxPooling2D (NHWC; reduce rows and cols).
#pragma once
#include <limits>

#include "conv2d.hpp"

namespace keras::layers {

struct GlobalPoolingOptions {
  bool keepdims = false;
  std::string name;
};

namespace detail {
/// Global average or max over the spatial axes of [N, H, W, C].
template <class T, bool Max>
class GlobalPooling2D : public Layer<T> {
 public:
  explicit GlobalPooling2D(GlobalPoolingOptions o) : Layer<T>(o.name), keepdims_(o.keepdims) {}
  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    this->expect_rank(in[0], 4);
    return keepdims_ ? Shape{in[0][0], 1, 1, in[0][3]} : Shape{in[0][0], in[0][3]};
  }
  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool) override {
    const Tensor<T>& x = *in.at(0);
    const Index N = x.dim(0), P = x.dim(1) * x.dim(2), C = x.dim(3);
    y.resize(keepdims_ ? Shape{N, 1, 1, C} : Shape{N, C});
#pragma omp parallel for schedule(static) num_threads(get_num_threads()) if (N * P * C > 65536)
    for (Index n = 0; n < N; ++n) {
      T* out = y.data() + n * C;
      const T* xp = x.data() + n * P * C;
      for (Index c = 0; c < C; ++c) out[c] = Max ? -std::numeric_limits<T>::infinity() : T(0);
      for (Index p = 0; p < P; ++p)
        for (Index c = 0; c < C; ++c) {
          if constexpr (Max) out[c] = std::max(out[c], xp[p * C + c]);
          else out[c] += xp[p * C + c];
        }
      if (!Max)
        for (Index c = 0; c < C; ++c) out[c] /= static_cast<T>(P);
    }
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    if (!dx.at(0)) return;
    const Tensor<T>& x = *in.at(0);
    const Index N = x.dim(0), P = x.dim(1) * x.dim(2), C = x.dim(3);
    dx[0]->resize(x.shape());
    if (Max) dx[0]->setZero();
#pragma omp parallel for schedule(static) num_threads(get_num_threads()) if (N * P * C > 65536)
    for (Index n = 0; n < N; ++n) {
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
  }
  json get_config() const override {
    json c = Layer<T>::get_config();
    c["data_format"] = "channels_last";
    c["keepdims"] = keepdims_;
    return c;
  }

 private:
  bool keepdims_;
};
}  // namespace detail

template <class T = float>
class GlobalAveragePooling2D : public detail::GlobalPooling2D<T, false> {
 public:
  KERAS_LAYER(GlobalAveragePooling2D)
  explicit GlobalAveragePooling2D(GlobalPoolingOptions o = {}) : detail::GlobalPooling2D<T, false>(std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<GlobalAveragePooling2D>(GlobalPoolingOptions{c.value("keepdims", false), c.value("name", "")});
  }
};

template <class T = float>
class GlobalMaxPooling2D : public detail::GlobalPooling2D<T, true> {
 public:
  KERAS_LAYER(GlobalMaxPooling2D)
  explicit GlobalMaxPooling2D(GlobalPoolingOptions o = {}) : detail::GlobalPooling2D<T, true>(std::move(o)) {}
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    return std::make_shared<GlobalMaxPooling2D>(GlobalPoolingOptions{c.value("keepdims", false), c.value("name", "")});
  }
};

KERAS_REGISTER_LAYER(GlobalAveragePooling2D)
KERAS_REGISTER_LAYER(GlobalMaxPooling2D)

}  // namespace keras::layers
