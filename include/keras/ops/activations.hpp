// Element-wise activations (and softmax) by Keras name, forward and backward.
//
// Semantics follow Keras 3 (keras/src/activations/activations.py, keras/src/backend/tensorflow/nn.py):
//   linear        x
//   relu          max(x, 0)                              (gradient 0 at x == 0, as tf.nn.relu)
//   relu6         min(max(x, 0), 6)                      (gradient 0 at 0 and at 6, as tf.nn.relu6)
//   leaky_relu    x > 0 ? x : 0.2 x                      (Keras 3 default negative_slope 0.2)
//   sigmoid       1 / (1 + exp(-x))                      (evaluated without overflow)
//   tanh          tanh(x)
//   softmax       exp(x - max) / sum(exp(x - max)) over the LAST axis
//   softplus      log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))
//   softsign      x / (1 + |x|)
//   elu           x > 0 ? x : exp(x) - 1                 (alpha 1)
//   selu          scale * (x > 0 ? x : alpha (exp(x) - 1)), alpha 1.6732632423543772, scale 1.0507009873554805
//   swish / silu  x * sigmoid(x)
//   gelu          0.5 x (1 + erf(x / sqrt(2)))           (Keras default approximate=False)
//   hard_sigmoid  relu6(x + 3) / 6                       (Keras 3; tf.keras 2.x / TF.js used clip(0.2 x + 0.5, 0, 1))
//   hard_silu / hard_swish  x * hard_sigmoid(x)
//   exponential   exp(x)
//
// Aliasing: activation_forward(id, x, x) and activation_backward(id, x, y, dy, dy) (in place) are allowed.
// Tensors with more than kActivationParallelThreshold elements are processed with OpenMP.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "../core/error.hpp"
#include "../core/tensor.hpp"
#include "../core/threading.hpp"

namespace keras {

enum class Activation {
  Linear,
  ReLU,
  ReLU6,
  LeakyReLU,
  Sigmoid,
  Tanh,
  Softmax,
  Softplus,
  Softsign,
  ELU,
  SELU,
  Swish,
  GELU,
  HardSigmoid,
  HardSilu,
  Exponential,
};

inline constexpr Index kActivationParallelThreshold = Index(1) << 15;

namespace detail {
struct ActivationName {
  const char* name;
  Activation id;
};
inline constexpr ActivationName kActivationNames[] = {
    {"linear", Activation::Linear},
    {"relu", Activation::ReLU},
    {"relu6", Activation::ReLU6},
    {"leaky_relu", Activation::LeakyReLU},
    {"sigmoid", Activation::Sigmoid},
    {"tanh", Activation::Tanh},
    {"softmax", Activation::Softmax},
    {"softplus", Activation::Softplus},
    {"softsign", Activation::Softsign},
    {"elu", Activation::ELU},
    {"selu", Activation::SELU},
    {"swish", Activation::Swish},
    {"silu", Activation::Swish},
    {"gelu", Activation::GELU},
    {"hard_sigmoid", Activation::HardSigmoid},
    {"hard_silu", Activation::HardSilu},
    {"hard_swish", Activation::HardSilu},
    {"exponential", Activation::Exponential},
};
inline constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
inline constexpr double kSeluScale = 1.0507009873554804934193349852946;
inline constexpr double kLeakyReluSlope = 0.2;

template <class T>
inline T stable_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}

/// y[i] = f(x[i]) over n elements (parallel for large n).
template <class T, class F>
inline void map_elements(const T* x, T* y, Index n, F f) {
  keras::parallel_for(n, 1, (n > kActivationParallelThreshold) ? keras::get_num_threads() : 1,
                      [=](Index i_begin, Index i_end) {
                        for (Index i = i_begin; i < i_end; ++i) y[i] = f(x[i]);
                      });
}
/// dx[i] = g(x[i], y[i], dy[i]).
template <class T, class G>
inline void map_grad(const T* x, const T* y, const T* dy, T* dx, Index n, G g) {
  keras::parallel_for(n, 1, (n > kActivationParallelThreshold) ? keras::get_num_threads() : 1,
                      [=](Index i_begin, Index i_end) {
                        for (Index i = i_begin; i < i_end; ++i) dx[i] = g(x[i], y[i], dy[i]);
                      });
}

inline void check_same_shape(const char* what, const Shape& a, const Shape& b) {
  if (a != b) throw ShapeError(std::string(what) + ": shapes " + shape_str(a) + " and " + shape_str(b) + " differ");
}
}  // namespace detail

/// The activation with the given Keras name ("relu", "softmax", "swish", ...). An empty name means "linear"
/// (Keras's activation=None). Throws ValueError "Unknown activation: 'foo'. Valid names: ..." otherwise.
inline Activation activation_from_name(const std::string& name) {
  if (name.empty()) return Activation::Linear;
  for (const auto& e : detail::kActivationNames)
    if (name == e.name) return e.id;
  std::string valid;
  for (const auto& e : detail::kActivationNames) {
    if (!valid.empty()) valid += ", ";
    valid += e.name;
  }
  throw ValueError("Unknown activation: '" + name + "'. Valid names: " + valid);
}

/// The canonical Keras name of an activation (the first listed alias: "swish", "hard_silu").
inline std::string activation_name(Activation id) {
  for (const auto& e : detail::kActivationNames)
    if (e.id == id) return e.name;
  return "linear";
}

/// True when the activation's backward pass reads x (otherwise it only needs y and dy, so a layer may
/// drop its input). Linear, sigmoid, tanh, softmax, elu and exponential need only y.
inline bool activation_backward_needs_input(Activation id) {
  switch (id) {
    case Activation::Linear:
    case Activation::Sigmoid:
    case Activation::Tanh:
    case Activation::Softmax:
    case Activation::Exponential:
      return false;
    default:
      return true;
  }
}

/// Softmax over the last axis of x, numerically stable (max subtracted). y is resized to x's shape.
template <class T>
void softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
  if (&y != &x) y.resize(x.shape());
  if (x.size() == 0) return;
  const Index cols = x.shape().empty() ? 1 : x.shape().back();
  const Index rows = cols ? x.size() / cols : 0;
  const T* xp = x.data();
  T* yp = y.data();
  keras::parallel_for(rows, 1, (x.size() > kActivationParallelThreshold) ? keras::get_num_threads() : 1,
                      [=](Index r_begin, Index r_end) {
                        for (Index r = r_begin; r < r_end; ++r) {
                          const T* xr = xp + r * cols;
                          T* yr = yp + r * cols;
                          T m = xr[0];
                          for (Index c = 1; c < cols; ++c) m = xr[c] > m ? xr[c] : m;
                          T s = 0;
                          for (Index c = 0; c < cols; ++c) {
                            yr[c] = std::exp(xr[c] - m);
                            s += yr[c];
                          }
                          const T inv = T(1) / s;
                          for (Index c = 0; c < cols; ++c) yr[c] *= inv;
                        }
                      });
}

/// dx = y * (dy - sum(dy * y)) row by row over the last axis.
template <class T>
void softmax_backward(const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
  detail::check_same_shape("softmax_backward", y.shape(), dy.shape());
  if (&dx != &dy) dx.resize(y.shape());
  if (y.size() == 0) return;
  const Index cols = y.shape().empty() ? 1 : y.shape().back();
  const Index rows = cols ? y.size() / cols : 0;
  keras::parallel_for(rows, 1, (y.size() > kActivationParallelThreshold) ? keras::get_num_threads() : 1,
                      [&, cols](Index r_begin, Index r_end) {
                        for (Index r = r_begin; r < r_end; ++r) {
                          const T* yr = y.data() + r * cols;
                          const T* gr = dy.data() + r * cols;
                          T* dr = dx.data() + r * cols;
                          T dot = 0;
                          for (Index c = 0; c < cols; ++c) dot += gr[c] * yr[c];
                          for (Index c = 0; c < cols; ++c) dr[c] = yr[c] * (gr[c] - dot);
                        }
                      });
}

/// y = activation(x); y is resized to x's shape (y may be x).
// Long for a reason: one case per Keras activation, each a one-line formula side by side.
template <class T>
void activation_forward(Activation id, const Tensor<T>& x, Tensor<T>& y) {
  if (id == Activation::Softmax) return softmax_forward(x, y);
  if (&y != &x) y.resize(x.shape());
  const Index n = x.size();
  const T* xp = x.data();
  T* yp = y.data();
  using detail::map_elements;
  switch (id) {
    case Activation::Linear:
      if (&y != &x) std::copy(xp, xp + n, yp);
      break;
    case Activation::ReLU:
      map_elements(xp, yp, n, [](T v) { return v > T(0) ? v : T(0); });
      break;
    case Activation::ReLU6:
      map_elements(xp, yp, n, [](T v) { return v > T(0) ? (v < T(6) ? v : T(6)) : T(0); });
      break;
    case Activation::LeakyReLU:
      map_elements(xp, yp, n, [](T v) { return v > T(0) ? v : T(detail::kLeakyReluSlope) * v; });
      break;
    case Activation::Sigmoid:
      map_elements(xp, yp, n, [](T v) { return detail::stable_sigmoid(v); });
      break;
    case Activation::Tanh:
      map_elements(xp, yp, n, [](T v) { return std::tanh(v); });
      break;
    case Activation::Softplus:
      map_elements(xp, yp, n, [](T v) { return (v > T(0) ? v : T(0)) + std::log1p(std::exp(-std::abs(v))); });
      break;
    case Activation::Softsign:
      map_elements(xp, yp, n, [](T v) { return v / (T(1) + std::abs(v)); });
      break;
    case Activation::ELU:
      map_elements(xp, yp, n, [](T v) { return v > T(0) ? v : std::expm1(v); });
      break;
    case Activation::SELU:
      map_elements(xp, yp, n,
                   [](T v) { return T(detail::kSeluScale) * (v > T(0) ? v : T(detail::kSeluAlpha) * std::expm1(v)); });
      break;
    case Activation::Swish:
      map_elements(xp, yp, n, [](T v) { return v * detail::stable_sigmoid(v); });
      break;
    case Activation::GELU:
      map_elements(xp, yp, n, [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752440))); });
      break;
    case Activation::HardSigmoid:
      map_elements(xp, yp, n, [](T v) {
        T r = v + T(3);
        r = r > T(0) ? (r < T(6) ? r : T(6)) : T(0);
        return r / T(6);
      });
      break;
    case Activation::HardSilu:
      map_elements(xp, yp, n, [](T v) {
        T r = v + T(3);
        r = r > T(0) ? (r < T(6) ? r : T(6)) : T(0);
        return v * r / T(6);
      });
      break;
    case Activation::Exponential:
      map_elements(xp, yp, n, [](T v) { return std::exp(v); });
      break;
    case Activation::Softmax:
      break;  // handled above
  }
}

/// dx = dy * activation'(x). x and y are the forward input and output (y = activation(x)); dx is resized
/// (dx may be dy). When activation_backward_needs_input(id) is false, x is not read and may be empty.
// Long for a reason: one case per activation, each derivative next to the others (as forward).
template <class T>
void activation_backward(Activation id, const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
  if (id == Activation::Softmax) return softmax_backward(y, dy, dx);
  const bool need_x = activation_backward_needs_input(id);
  const Tensor<T>& ref = need_x ? x : y;
  detail::check_same_shape("activation_backward", ref.shape(), dy.shape());
  if (&dx != &dy) dx.resize(dy.shape());
  const Index n = dy.size();
  const T* xp = need_x ? x.data() : y.data();
  const T* yp = need_x ? (y.size() == n ? y.data() : x.data()) : y.data();
  const T* gp = dy.data();
  T* dp = dx.data();
  using detail::map_grad;
  switch (id) {
    case Activation::Linear:
      if (&dx != &dy) std::copy(gp, gp + n, dp);
      break;
    case Activation::ReLU:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) { return v > T(0) ? g : T(0); });
      break;
    case Activation::ReLU6:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) { return (v > T(0) && v < T(6)) ? g : T(0); });
      break;
    case Activation::LeakyReLU:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) { return v > T(0) ? g : T(detail::kLeakyReluSlope) * g; });
      break;
    case Activation::Sigmoid:
      map_grad(xp, yp, gp, dp, n, [](T, T s, T g) { return g * s * (T(1) - s); });
      break;
    case Activation::Tanh:
      map_grad(xp, yp, gp, dp, n, [](T, T t, T g) { return g * (T(1) - t * t); });
      break;
    case Activation::Softplus:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) { return g * detail::stable_sigmoid(v); });
      break;
    case Activation::Softsign:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) {
        T d = T(1) + std::abs(v);
        return g / (d * d);
      });
      break;
    case Activation::ELU:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) { return v > T(0) ? g : g * std::exp(v); });
      break;
    case Activation::SELU:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) {
        return v > T(0) ? T(detail::kSeluScale) * g : T(detail::kSeluScale * detail::kSeluAlpha) * std::exp(v) * g;
      });
      break;
    case Activation::Swish:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) {
        T s = detail::stable_sigmoid(v);
        return g * (s + v * s * (T(1) - s));
      });
      break;
    case Activation::GELU:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) {
        const T cdf = T(0.5) * (T(1) + std::erf(v * T(0.70710678118654752440)));
        const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * v * v);
        return g * (cdf + v * pdf);
      });
      break;
    case Activation::HardSigmoid:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) { return (v > T(-3) && v < T(3)) ? g / T(6) : T(0); });
      break;
    case Activation::HardSilu:
      map_grad(xp, yp, gp, dp, n, [](T v, T, T g) {
        if (v <= T(-3)) return T(0);
        if (v >= T(3)) return g;
        return g * (T(2) * v + T(3)) / T(6);  // d/dv [v (v + 3) / 6]
      });
      break;
    case Activation::Exponential:
      map_grad(xp, yp, gp, dp, n, [](T, T e, T g) { return g * e; });
      break;
    case Activation::Softmax:
      break;  // handled above
  }
}

// ---------------------------------------------------------------------------------------------------------
// The generalized ReLU of the Keras ReLU layer / keras.activations.relu:
//   f(x) = max_value                     for x >= max_value
//        = x                             for threshold < x < max_value
//        = negative_slope * (x - threshold)  otherwise
// (Keras's docstring writes threshold <= x; its implementation uses x > threshold, which only matters at
// x == threshold with threshold != 0, where we follow the implementation and return 0.)
// max_value = +infinity means "no upper bound" (Keras max_value=None).
// Gradient: 0 for x >= max_value, 1 for threshold < x < max_value, negative_slope otherwise.

struct ReluParams {
  double max_value = std::numeric_limits<double>::infinity();
  double negative_slope = 0.0;
  double threshold = 0.0;
};

/// Throws ValueError like Keras's ReLU layer for negative max_value or negative_slope.
inline void validate_relu_params(const ReluParams& p) {
  if (std::isnan(p.max_value) || p.max_value < 0)
    throw ValueError("max_value of a ReLU layer cannot be a negative value. Received: " + std::to_string(p.max_value));
  if (std::isnan(p.negative_slope) || p.negative_slope < 0)
    throw ValueError("negative_slope of a ReLU layer cannot be a negative value. Received: " +
                     std::to_string(p.negative_slope));
  if (std::isnan(p.threshold)) throw ValueError("threshold of a ReLU layer cannot be NaN");
}

template <class T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y, double max_value = std::numeric_limits<double>::infinity(),
                  double negative_slope = 0.0, double threshold = 0.0) {
  validate_relu_params({max_value, negative_slope, threshold});
  if (&y != &x) y.resize(x.shape());
  const bool bounded = std::isfinite(max_value);
  const T mx = bounded ? T(max_value) : std::numeric_limits<T>::infinity();
  const T slope = T(negative_slope), th = T(threshold);
  const Index n = x.size();
  const T* xp = x.data();
  T* yp = y.data();
  if (slope == T(0) && th == T(0)) {
    // compare-and-select form: vectorises to a max and a min per packet (std::min/std::max on the
    // temporary T(0) did not vectorise inside the simd loop); NaN propagates as with std::max/min
    keras::parallel_for(n, 1, (n > 262144) ? keras::get_num_threads() : 1, [=](Index i_begin, Index i_end) {
#pragma omp simd
      for (Index i = i_begin; i < i_end; ++i) {
        T v = xp[i];
        v = v < T(0) ? T(0) : v;
        yp[i] = mx < v ? mx : v;
      }
    });
  } else {
    detail::map_elements(xp, yp, n, [mx, slope, th](T v) {
      if (v >= mx) return mx;
      if (v > th) return v;
      return slope * (v - th);
    });
  }
}

template <class T>
void relu_backward(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dx,
                   double max_value = std::numeric_limits<double>::infinity(), double negative_slope = 0.0,
                   double threshold = 0.0) {
  detail::check_same_shape("relu_backward", x.shape(), dy.shape());
  if (&dx != &dy) dx.resize(dy.shape());
  const T mx = std::isfinite(max_value) ? T(max_value) : std::numeric_limits<T>::infinity();
  const T slope = T(negative_slope), th = T(threshold);
  if (slope == T(0) && th == T(0)) {
    const Index n = dy.size();
    const T* xp = x.data();
    const T* gp = dy.data();
    T* dp = dx.data();
    keras::parallel_for(n, 1, (n > 262144) ? keras::get_num_threads() : 1, [=](Index i_begin, Index i_end) {
#pragma omp simd
      for (Index i = i_begin; i < i_end; ++i) dp[i] = (xp[i] > T(0) && xp[i] < mx) ? gp[i] : T(0);
    });
    return;
  }
  detail::map_grad(x.data(), x.data(), dy.data(), dx.data(), dy.size(), [mx, slope, th](T v, T, T g) {
    if (v >= mx) return T(0);
    if (v > th) return g;
    return slope * g;
  });
}

template <class T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y, const ReluParams& p) {
  relu_forward(x, y, p.max_value, p.negative_slope, p.threshold);
}
template <class T>
void relu_backward(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dx, const ReluParams& p) {
  relu_backward(x, dy, dx, p.max_value, p.negative_slope, p.threshold);
}

}  // namespace keras
