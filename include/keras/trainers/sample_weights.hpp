// fit's class_weight and sample_weight, with Keras 3's semantics:
//  * class_weight {class: weight} becomes one weight per sample (data_adapter_utils.
//    class_weight_to_sample_weights): the class of a sample is argmax(y) when y's last axis is > 1
//    (one-hot), else round(y) (class ids, or 0/1 labels of a sigmoid); classes not in the map weigh 1.
//    Keras refuses class_weight and sample_weight together, and so do we.
//  * The loss with weights (keras/src/losses/loss.py, reduction "sum_over_batch_size"): the per-sample
//    losses (per position, for outputs with spatial axes) times the sample's weight, summed and divided
//    by their number -- not by the sum of the weights: mean_i(w_i * loss_i). Its gradient is the
//    unweighted one with each sample's rows scaled by w_i (each sample's loss depends on its own rows).
//  * Compiled metrics are not weighted (Keras 3's compile(metrics=...); only weighted_metrics are).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "../core/core.hpp"
#include "../losses/losses.hpp"

namespace keras::trainers {

/// Keras's class_weight_to_sample_weights for labels y of shape (n,), (n, 1) or (n, classes).
template <class T>
void class_weights_to_sample_weights(const Tensor<T>& y, const std::map<int, double>& class_weight, Tensor<T>& out) {
  if (y.rank() < 1 || y.rank() > 2)
    throw ShapeError("fit: class_weight needs labels of shape (samples,), (samples, 1) or (samples, classes), got " +
                     shape_str(y.shape()));
  const Index n = y.dim(0), c = y.rank() == 2 ? y.dim(1) : 1;
  out.resize({n});
  for (Index i = 0; i < n; ++i) {
    const T* row = y.data() + i * c;
    long cls = 0;
    if (c > 1) {
      for (Index k = 1; k < c; ++k)
        if (row[k] > row[cls]) cls = static_cast<long>(k);
    } else {
      cls = std::lround(static_cast<double>(row[0]));
    }
    auto it = class_weight.find(static_cast<int>(cls));
    out[i] = static_cast<T>(it == class_weight.end() ? 1.0 : it->second);
  }
}

/// Checks fit's sample_weight against n samples: shape (n,) or (n, 1).
template <class T>
void check_sample_weight(const Tensor<T>& sw, Index n, const char* what) {
  const bool ok = (sw.rank() == 1 && sw.dim(0) == n) || (sw.rank() == 2 && sw.dim(0) == n && sw.dim(1) == 1);
  if (!ok)
    throw ShapeError(std::string(what) + ": sample_weight must hold one weight per sample, shape (" +
                     std::to_string(n) + ",), got " + shape_str(sw.shape()));
}

/// The weighted batch loss mean_i(w_i * loss_i) and its gradient (see the header comment); `grad`
/// may be null. `rows` is a buffer reused between calls.
template <class T>
double weighted_loss(const losses::Loss<T>& loss, const Tensor<T>& y, const Tensor<T>& pred, const Tensor<T>& w,
                     Tensor<T>* grad, std::vector<Tensor<T>>& rows) {
  const Index n = pred.dim(0);
  if (w.size() != n)
    throw ShapeError("sample weights: " + std::to_string(w.size()) + " weights for a batch of " + std::to_string(n));
  if (grad) {
    loss.compute(y, pred, grad);
    const Index per = grad->size() / n;
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < per; ++j) (*grad)[i * per + j] *= w[i];
  }
  rows.resize(2);
  Shape ys = y.shape(), ps = pred.shape();
  ys[0] = ps[0] = 1;
  rows[0].resize(ys);
  rows[1].resize(ps);
  const Index yr = y.size() / n, pr = pred.size() / n;
  double total = 0.0;
  for (Index i = 0; i < n; ++i) {
    if (w[i] == T(0)) continue;
    std::copy(y.data() + i * yr, y.data() + (i + 1) * yr, rows[0].data());
    std::copy(pred.data() + i * pr, pred.data() + (i + 1) * pr, rows[1].data());
    total += static_cast<double>(w[i]) * loss.compute(rows[0], rows[1], nullptr);
  }
  return total / static_cast<double>(n);
}

}  // namespace keras::trainers
