// Optional interfaces a layer implements to take the engine's fast inference paths: batch slices
// run on several threads at once, and conv -> BatchNormalization -> ReLU -> Add chains fused into
// the convolution's epilogue (engine/fusion.hpp). A custom layer needs none of them: without them
// it runs layer by layer with forward(inputs, output, /*training=*/false), always correctly.
//
// The engine finds them with dynamic_cast once per node when it plans a graph, never by class name.
#pragma once
#include <array>
#include <vector>

#include "../core/tensor.hpp"
#include "../ops/activations.hpp"
#include "../ops/epilogue.hpp"

namespace keras::layers {

/// Marker: forward(inputs, output, false) may run concurrently from several threads on different
/// batch slices. It then touches no member state, and each sample's output depends only on that
/// sample. The engine splits a large inference batch across threads only when every layer of the
/// pass is reentrant.
class ReentrantInference {
 public:
  virtual ~ReentrantInference() = default;
};

/// A reentrant inference kernel separate from forward() (one that keeps nothing for backward, or
/// uses the calling thread's workspace). The engine calls it instead of forward(.., false).
template <class T>
class InferenceKernel : public ReentrantInference {
 public:
  virtual void forward_inference(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& output) = 0;
};

/// A convolution that can apply a fused epilogue (per-channel affine, clamp, residual add) to its
/// output while it writes it.
template <class T>
class FusableConv : public InferenceKernel<T> {
 public:
  /// False when the layer has its own activation (the epilogue would run before it).
  virtual bool accepts_epilogue() const = 0;
  virtual void forward_fused(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& output,
                             const ops::Epilogue<T>& ep) = 0;
  /// True when forward_fused_padded can read the unpadded input of a preceding zero padding
  /// (ZeroPaddingInference): the padded copy is then never written.
  virtual bool accepts_input_padding() const { return false; }
  /// forward_fused on the input zero-padded by `pad` (rows before/after, columns before/after),
  /// without materialising the padded tensor. Only called when accepts_input_padding().
  virtual void forward_fused_padded(const std::vector<const Tensor<T>*>& /*inputs*/, Tensor<T>& /*output*/,
                                    const ops::Epilogue<T>& /*ep*/, const std::array<Index, 4>& /*pad*/) {}
};

/// A layer that zero-pads the two spatial axes of an NHWC input (ZeroPadding2D): a following
/// convolution that accepts_input_padding() reads its input instead (engine/fusion.hpp).
class ZeroPaddingInference {
 public:
  virtual ~ZeroPaddingInference() = default;
  /// {top, bottom, left, right}
  virtual std::array<Index, 4> zero_padding() const = 0;
};

/// A convolution that also runs a fused per-channel affine + clamp epilogue in training passes:
/// conv -> frozen BatchNormalization -> [ReLU] chains then cost one pass over memory forward and
/// one backward (engine/fusion.hpp, engine/backward.hpp) instead of three each.
template <class T>
class FusableTrainingConv {
 public:
  virtual ~FusableTrainingConv() = default;
  /// forward(inputs, y, true) with the epilogue ep (scale, shift, clamp; never a residual) applied to y.
  virtual void forward_train_fused(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& y,
                                   const ops::Epilogue<T>& ep) = 0;
  /// backward() of that chain after forward_train_fused: y is the chain's output, dy d(loss)/d(y).
  virtual void backward_train_fused(const std::vector<const Tensor<T>*>& inputs, const Tensor<T>& y,
                                    const Tensor<T>& dy, const ops::Epilogue<T>& ep,
                                    const std::vector<Tensor<T>*>& dx) = 0;
};

/// A layer that applies the clamp after it (ReLU, ReLU6) to its own output in training passes
/// (BatchNormalization, batch statistics or frozen): the engine runs the pair as one layer, so the
/// unclamped output is never written and the backward pass makes one pass fewer over it.
template <class T>
class ClampFusableTraining {
 public:
  virtual ~ClampFusableTraining() = default;
  /// forward(inputs, y, true) with y clamped to [lo, hi] as it is written.
  virtual void forward_train_clamped(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& y, T lo, T hi) = 0;
  /// backward() of the pair after forward_train_clamped: y is the clamped output, dy d(loss)/d(y)
  /// (the clamp passes dy where lo < y < hi).
  virtual void backward_train_clamped(const std::vector<const Tensor<T>*>& inputs, const Tensor<T>& y,
                                      const Tensor<T>& dy, T lo, T hi, const std::vector<Tensor<T>*>& dx) = 0;
};

/// A per-channel affine map in inference mode (BatchNormalization): y = x * scale + shift.
template <class T>
class AffineInference {
 public:
  virtual ~AffineInference() = default;
  /// Fills scale and shift; false when the layer cannot be expressed so right now.
  virtual bool inference_affine(Tensor<T>& scale, Tensor<T>& shift) = 0;
  /// True when training passes also compute the inference affine and the layer has no variable to
  /// train (a frozen BatchNormalization): it can then fuse into a convolution in training too.
  virtual bool affine_in_training() const { return false; }
};

/// A clamp activation: y = min(max(x, lo), hi) (ReLU, ReLU6).
template <class T>
class ClampActivation {
 public:
  virtual ~ClampActivation() = default;
  /// Fills the range; false when the layer's current settings are not a plain clamp.
  virtual bool clamp_range(T& lo, T& hi) const = 0;
};

/// A layer whose output is softmax(z) or sigmoid(z) of logits z it computes (Dense with that
/// activation, Activation, Softmax). When such a layer is a model's output and the loss is the
/// matching cross-entropy, the trainer computes the loss from z, stably, and back-propagates
/// d(loss)/dz = p - y, as Keras does (its output._keras_logits): probabilities clipped at 1e-7
/// would have a zero gradient and a saturated softmax could never recover.
template <class T>
class LogitsOutput {
 public:
  virtual ~LogitsOutput() = default;
  /// Softmax or Sigmoid when the layer's output is that function of its logits; else Linear.
  virtual keras::Activation logits_activation() const = 0;
  /// The logits of the last forward() on inputs `in` (a training or layer-by-layer pass).
  virtual const Tensor<T>& logits(const std::vector<const Tensor<T>*>& in) const = 0;
  /// Reentrant inference: the logits only, without the activation.
  virtual void forward_logits(const std::vector<const Tensor<T>*>& in, Tensor<T>& z) = 0;
  /// backward() given d(loss)/d(logits) instead of d(loss)/d(output).
  virtual void backward_logits(const std::vector<const Tensor<T>*>& in, const Tensor<T>& dz,
                               const std::vector<Tensor<T>*>& dx) = 0;
};

/// Marker: the layer is the element-wise sum of its inputs (Add), fusable as a residual add.
class ElementwiseSum {
 public:
  virtual ~ElementwiseSum() = default;
};

/// A random layer whose training-mode output is one of a finite set of deterministic outcomes per
/// sample (RandomFlip: as is, or mirrored). fit() then caches the frozen part of a model after it
/// once per outcome and, at each step, draws every sample's outcome exactly as forward(training =
/// true) would have drawn it: training on the cache computes what uncached training computes.
template <class T>
class FiniteAugmentation {
 public:
  virtual ~FiniteAugmentation() = default;
  /// Number of outcomes; outcome 0 is the identity (what inference computes).
  virtual int num_outcomes() const = 0;
  /// The outcomes of a training batch of n samples, drawn from the layer's random stream as its
  /// forward(training = true) draws them (the stream advances the same way).
  virtual void draw_outcomes(Index n, std::vector<int>& outcomes) = 0;
  /// Until reset to 0, inference passes give every sample outcome k (the cache's passes).
  virtual void set_inference_outcome(int k) = 0;
};

}  // namespace keras::layers
