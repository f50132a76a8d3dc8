// BatchNormalization over the last (channel) axis, as tf.keras:
// - training (and the layer trainable): normalise with the batch's mean and (biased) variance,
//   update moving_mean/moving_variance with `momentum`;
// - inference, or a frozen layer (trainable false, TF 2 behaviour): use the moving statistics.
// Weights, in Keras order: gamma (scale), beta (center), moving_mean, moving_variance.
#pragma once
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "initializers.hpp"
#include "fast_paths.hpp"
#include "layer.hpp"
#include "registry.hpp"

namespace keras::layers {

struct BatchNormalizationOptions {
  int axis = -1;
  double momentum = 0.99;
  double epsilon = 1e-3;
  bool center = true;
  bool scale = true;
  std::string name;
  Shape input_shape;  ///< per-sample input shape (Keras's legacy input_shape; see LayerOptions)
};

template <class T = float>
class BatchNormalization : public Layer<T>,
                           public InferenceKernel<T>,
                           public AffineInference<T>,
                           public ClampFusableTraining<T> {
 public:
  KERAS_LAYER(BatchNormalization)
  explicit BatchNormalization(BatchNormalizationOptions o = {}) : Layer<T>(o.name, o.input_shape), o_(o) {}

  Shape compute_output_shape(const std::vector<Shape>& in) const override {
    this->expect_inputs(in, 1);
    if (in[0].size() < 2 || in[0].back() < 0)
      throw ShapeError("layer '" + this->name() + "' (BatchNormalization): needs a known channel axis, got " +
                       shape_str(in[0]));
    if (o_.axis != -1 && o_.axis != static_cast<int>(in[0].size()) - 1)
      throw ValueError("layer '" + this->name() + "' (BatchNormalization): only the last axis is supported, got axis " +
                       std::to_string(o_.axis));
    return in[0];
  }
  /// A frozen BatchNormalization always uses its moving statistics.
  bool cacheable() const override { return !this->trainable(); }
  Variable<T>* gamma() { return o_.scale ? this->variables_[0].get() : nullptr; }
  Variable<T>* beta() { return o_.center ? this->variables_[o_.scale ? 1 : 0].get() : nullptr; }
  Variable<T>& moving_mean() { return *this->variables_[this->variables_.size() - 2]; }
  Variable<T>& moving_variance() { return *this->variables_.back(); }

  void forward(const typename Layer<T>::Inputs& in, Tensor<T>& y, bool training) override {
    forward_impl(*in.at(0), y, training, nullptr);
  }
  /// BN -> ReLU in a training pass (engine/fusion.hpp): the clamp applied as y is written.
  void forward_train_clamped(const typename Layer<T>::Inputs& in, Tensor<T>& y, T lo, T hi) override {
    const T range[2] = {lo, hi};
    forward_impl(*in.at(0), y, true, range);
  }
  void backward(const typename Layer<T>::Inputs& in, const Tensor<T>& /*y*/, const Tensor<T>& dy,
                const typename Layer<T>::GradInputs& dx) override {
    backward_impl(*in.at(0), dy, dx, nullptr, T(0), T(0));
  }
  /// The pair's backward: the clamp's gradient (dy where lo < y < hi, else 0) taken inside the
  /// BN's own passes over dy.
  void backward_train_clamped(const typename Layer<T>::Inputs& in, const Tensor<T>& y, const Tensor<T>& dy, T lo, T hi,
                              const typename Layer<T>::GradInputs& dx) override {
    backward_impl(*in.at(0), dy, dx, y.data(), lo, hi);
  }

  /// Reentrant: moving statistics folded into a local scale and shift.
  void forward_inference(const typename Layer<T>::Inputs& in, Tensor<T>& y) override {
    Tensor<T> a, b;
    inference_affine(a, b);
    apply_affine(*in.at(0), a, b, y);
  }

  /// Frozen: training passes use the moving statistics too, and nothing is trained.
  bool affine_in_training() const override { return !this->trainable(); }
  /// Inference mode (moving statistics) as y = x * scale + shift.
  bool inference_affine(Tensor<T>& scale, Tensor<T>& shift) override {
    if (!this->built()) return false;
    const Index C = moving_mean().value.size();
    scale.resize({C});
    shift.resize({C});
    // runs before every fused inference pass (engine/fusion.hpp refresh): pointers hoisted so that
    // the loop vectorises (one vector sqrt and divide per packet of channels)
    const T* __restrict g = gamma() ? gamma()->value.data() : nullptr;
    const T* __restrict b = beta() ? beta()->value.data() : nullptr;
    const T* __restrict mean = moving_mean().value.data();
    const T* __restrict var = moving_variance().value.data();
    T* __restrict sc = scale.data();
    T* __restrict sh = shift.data();
    const T eps = static_cast<T>(o_.epsilon);
    // Branch-free loops. No simd pragma on the sqrt: with errno-setting math (the default) clang
    // cannot vectorise it and -Wpass-failed would fire; GCC vectorises it anyway.
    for (Index c = 0; c < C; ++c) sc[c] = T(1) / std::sqrt(var[c] + eps);
    if (g)
#pragma omp simd
      for (Index c = 0; c < C; ++c) sc[c] = g[c] * sc[c];
    if (b)
#pragma omp simd
      for (Index c = 0; c < C; ++c) sh[c] = b[c] - mean[c] * sc[c];
    else
#pragma omp simd
      for (Index c = 0; c < C; ++c) sh[c] = T(0) - mean[c] * sc[c];
    return true;
  }

  json get_config() const override {
    json c = Layer<T>::get_config();
    c["axis"] = o_.axis;
    c["momentum"] = o_.momentum;
    c["epsilon"] = o_.epsilon;
    c["center"] = o_.center;
    c["scale"] = o_.scale;
    c["beta_initializer"] = initializers::Initializer("zeros").to_json();
    c["gamma_initializer"] = initializers::Initializer("ones").to_json();
    c["moving_mean_initializer"] = initializers::Initializer("zeros").to_json();
    c["moving_variance_initializer"] = initializers::Initializer("ones").to_json();
    for (const char* k : {"beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"})
      c[k] = nullptr;
    return c;
  }
  static std::shared_ptr<Layer<T>> from_config(const json& c) {
    BatchNormalizationOptions o;
    o.name = config::name(c, "BatchNormalization");
    const std::string who = "BatchNormalization '" + o.name + "'";
    if (c.contains("axis") && !c["axis"].is_null()) {
      auto& a = c["axis"];
      if (a.is_array() && a.size() != 1)
        throw ValueError(who + ": several axes are not supported, got " + a.dump().substr(0, 80));
      o.axis = static_cast<int>(config::to_int(a.is_array() ? a[0] : a, who, "axis", -9, 9));
    }
    o.momentum = config::get_number(c, "momentum", 0.99, who, 0.0, 1.0);
    o.epsilon = config::get_number(c, "epsilon", 1e-3, who, 0.0);
    o.center = config::get_bool(c, "center", true, who);
    o.scale = config::get_bool(c, "scale", true, who);
    return std::make_shared<BatchNormalization>(o);
  }

 protected:
  void build_variables(const std::vector<Shape>& in) override {
    Index C = in[0].back();
    if (o_.axis >= 0) o_.axis = -1;  // validated in compute_output_shape: it is the last axis
    if (o_.scale) this->add_weight("gamma", {C}).value.setConstant(T(1));
    if (o_.center) this->add_weight("beta", {C});
    this->add_weight("moving_mean", {C}, false);
    this->add_weight("moving_variance", {C}, false).value.setConstant(T(1));
  }

 private:
  /// clamp: nullptr, or {lo, hi} applied to the output.
  void forward_impl(const Tensor<T>& x, Tensor<T>& y, bool training, const T* clamp) {
    const Index C = x.dim(-1), M = x.size() / C;
    y.resize(x.shape());
    batch_mode_ = training && this->trainable();
    mean_.resize({C});
    inv_std_.resize({C});
    if (batch_mode_) {
      batch_moments(x, M, C);
      const T mom = static_cast<T>(o_.momentum);
      moving_mean().value.array() = moving_mean().value.array() * mom + mean_.array() * (T(1) - mom);
      moving_variance().value.array() = moving_variance().value.array() * mom + var_.array() * (T(1) - mom);
      inv_std_.array() = (var_.array() + static_cast<T>(o_.epsilon)).rsqrt();
    } else {
      mean_ = moving_mean().value;
      inv_std_.array() = (moving_variance().value.array() + static_cast<T>(o_.epsilon)).rsqrt();
    }
    // y = x * a + b with a = gamma * inv_std, b = beta - mean * a (vectorised over channels)
    a_.resize({C});
    b_.resize({C});
    for (Index c = 0; c < C; ++c) {
      T g = gamma() ? gamma()->value[c] : T(1);
      T be = beta() ? beta()->value[c] : T(0);
      a_[c] = g * inv_std_[c];
      b_[c] = be - mean_[c] * a_[c];
    }
    apply_affine(x, a_, b_, y, clamp);
  }

  /// y_mask (nullptr: none): the output of a fused clamp [lo, hi]. dy then counts only where
  /// lo < y < hi (the clamp's gradient), read inside each of the BN's passes over dy.
  void backward_impl(const Tensor<T>& x, const Tensor<T>& dy, const typename Layer<T>::GradInputs& dx, const T* y_mask,
                     T lo, T hi) {
    if (y_mask)
      backward_impl(x, dy, dx, std::true_type{}, y_mask, lo, hi);
    else
      backward_impl(x, dy, dx, std::false_type{}, y_mask, lo, hi);
  }
  template <class Masked>
  void backward_impl(const Tensor<T>& x, const Tensor<T>& dy, const typename Layer<T>::GradInputs& dx, Masked,
                     const T* ymask, T lo, T hi) {
    const Index C = x.dim(-1), M = x.size() / C;
    // g(i): the gradient reaching the BN's output, dy[i] (times the clamp's 0/1 when Masked). Both
    // loads unconditional and the 0/1 a product, so that the loops stay vectorised (a select
    // between a float and 0 before the sums' conversion to double kept GCC's loop scalar).
    auto g = [=](const T* __restrict dyp, const T* __restrict yp, Index i) {
      const T v = dyp[i];
      if constexpr (Masked::value) {
        const T yv = yp[i];
        return v * static_cast<T>((yv > lo) & (yv < hi));
      } else {
        return v;
      }
    };
    // sums over rows of g and g * xhat, xhat = (x - mean) * inv_std; needed for the batch-mode
    // input gradient and for gamma/beta (a frozen layer's input gradient is g * a alone)
    if (batch_mode_ || this->needs_variable_grads()) {
      column_sums(M, C, [&](Index r0, Index r1, double* __restrict s, double* __restrict q) {
        const T* __restrict m = mean_.data();
        const T* __restrict xp = x.data();
        const T* __restrict dyp = dy.data();
        const T* __restrict yp = ymask;
        for (Index r = r0; r < r1; ++r) {
#pragma omp simd
          for (Index c = 0; c < C; ++c) {
            const double gv = static_cast<double>(g(dyp, yp, r * C + c));
            s[c] += gv;
            q[c] += gv * (static_cast<double>(xp[r * C + c]) - static_cast<double>(m[c]));
          }
        }
      });
      sum_dy_.resize({C});
      sum_dy_xhat_.resize({C});
      for (Index c = 0; c < C; ++c) {
        sum_dy_[c] = static_cast<T>(sums_[c]);
        sum_dy_xhat_[c] = static_cast<T>(sums_[C + c] * static_cast<double>(inv_std_[c]));
      }
    }
    if (this->needs_variable_grads()) {
      if (gamma()) gamma()->grad.array() += sum_dy_xhat_.array();
      if (beta()) beta()->grad.array() += sum_dy_.array();
    }
    if (!dx.at(0)) return;
    dx[0]->resize(x.shape());
    T* __restrict dxp = dx[0]->data();
    const T* __restrict xp = x.data();
    const T* __restrict gp = dy.data();
    const T* __restrict a = a_.data();
    const bool par = M * C > 65536;
    if (!batch_mode_) {
      // statistics are constants: dx = g * gamma * inv_std
      keras::parallel_for(M, 1, par ? get_num_threads() : 1, [dxp, gp, ymask, a, C, g](Index r_begin, Index r_end) {
        for (Index r = r_begin; r < r_end; ++r) {
#pragma omp simd
          for (Index c = 0; c < C; ++c) dxp[r * C + c] = g(gp, ymask, r * C + c) * a[c];
        }
      });
      return;
    }
    // dx = a * (g - mean(g) - xhat * mean(g * xhat)) = a * g - k1 - (x - mean) * k2 with
    // k1 = a * mean(g), k2 = a * inv_std * mean(g * xhat)
    const T inv_m = T(1) / static_cast<T>(M);
    k1_.resize({C});
    k2_.resize({C});
    for (Index c = 0; c < C; ++c) {
      k1_[c] = a_[c] * sum_dy_[c] * inv_m;
      k2_[c] = a_[c] * inv_std_[c] * sum_dy_xhat_[c] * inv_m;
    }
    const T* __restrict k1 = k1_.data();
    const T* __restrict k2 = k2_.data();
    const T* __restrict m = mean_.data();
    keras::parallel_for(M, 1, par ? get_num_threads() : 1,
                        [dxp, gp, ymask, xp, a, k1, k2, m, C, g](Index r_begin, Index r_end) {
                          for (Index r = r_begin; r < r_end; ++r) {
#pragma omp simd
                            for (Index c = 0; c < C; ++c)
                              dxp[r * C + c] = a[c] * g(gp, ymask, r * C + c) - k1[c] - (xp[r * C + c] - m[c]) * k2[c];
                          }
                        });
  }

  BatchNormalizationOptions o_;
  bool batch_mode_ = false;
  Tensor<T> mean_, var_, inv_std_, a_, b_, sum_dy_, sum_dy_xhat_, k1_, k2_;
  std::vector<double> partial_, sums_, shift_;  // column_sums workspaces (kept: no per-batch allocation)

  /// y = x * scale + shift, clamped to [clamp[0], clamp[1]] when clamp is not nullptr.
  static void apply_affine(const Tensor<T>& x, const Tensor<T>& scale, const Tensor<T>& shift, Tensor<T>& y,
                           const T* clamp = nullptr) {
    const Index C = x.dim(-1), M = x.size() / C;
    y.resize(x.shape());
    const T* xp = x.data();
    T* yp = y.data();
    const T* a = scale.data();
    const T* b = shift.data();
    const bool clamped = clamp != nullptr;
    const T lo = clamped ? clamp[0] : T(0), hi = clamped ? clamp[1] : T(0);
    keras::parallel_for(M, 1, (M * C > 65536) ? get_num_threads() : 1, [=](Index r_begin, Index r_end) {
      for (Index r = r_begin; r < r_end; ++r) {
        const T* xr = xp + r * C;
        T* yr = yp + r * C;
        if (clamped) {
#pragma omp simd
          for (Index c = 0; c < C; ++c) yr[c] = std::min(std::max(xr[c] * a[c] + b[c], lo), hi);
        } else {
#pragma omp simd
          for (Index c = 0; c < C; ++c) yr[c] = xr[c] * a[c] + b[c];
        }
      }
    });
  }

  /// Per-channel sums over the M rows of [M, C] data, in double, split into fixed chunks of rows
  /// (their size depends on C only) that the threads share; the chunks' partial sums are added in
  /// chunk order, so the result does not depend on the number of threads.
  /// body(r0, r1, s, q) accumulates rows [r0, r1) into two zeroed length-C arrays s and q; the
  /// totals land in sums_[0, C) and sums_[C, 2C).
  template <class Body>
  void column_sums(Index M, Index C, Body&& body) {
    const Index rows = std::max<Index>(4, 16384 / std::max<Index>(C, 1));
    const Index chunks = (M + rows - 1) / rows;
    partial_.assign(static_cast<std::size_t>(chunks * 2 * C), 0.0);
    double* part = partial_.data();
    keras::parallel_for(chunks, 1, (M * C > 65536) ? get_num_threads() : 1, [&](Index k_begin, Index k_end) {
      for (Index k = k_begin; k < k_end; ++k)
        body(k * rows, std::min(M, (k + 1) * rows), part + k * 2 * C, part + k * 2 * C + C);
    });
    sums_.assign(static_cast<std::size_t>(2 * C), 0.0);
    for (Index k = 0; k < chunks; ++k)
      for (Index c = 0; c < 2 * C; ++c) sums_[c] += part[k * 2 * C + c];
  }

  /// Batch mean and biased variance in one pass: sums of d = x - x[0] and d^2 in double (shifting by
  /// the first row keeps E[d^2] - E[d]^2 free of cancellation when the mean is large).
  void batch_moments(const Tensor<T>& x, Index M, Index C) {
    var_.resize({C});
    shift_.assign(x.data(), x.data() + C);
    column_sums(M, C, [&](Index r0, Index r1, double* __restrict s, double* __restrict q) {
      const double* __restrict sh = shift_.data();
      for (Index r = r0; r < r1; ++r) {
        const T* __restrict xr = x.data() + r * C;
#pragma omp simd
        for (Index c = 0; c < C; ++c) {
          const double d = static_cast<double>(xr[c]) - sh[c];
          s[c] += d;
          q[c] += d * d;
        }
      }
    });
    for (Index c = 0; c < C; ++c) {
      const double md = sums_[c] / static_cast<double>(M);
      mean_[c] = static_cast<T>(shift_[c] + md);
      var_[c] = static_cast<T>(std::max(0.0, sums_[C + c] / static_cast<double>(M) - md * md));
    }
  }
};

}  // namespace keras::layers
