// keras::applications::MobileNetV2: the exact tf.keras architecture (same layer names, same
// configs), so that Keras's ImageNet weights (converted with tools/keras_h5_to_tfjs.py) load
// by name. preprocess_input maps pixels [0, 255] to [-1, 1].
#pragma once
#include <cmath>

#include "../io/tfjs.hpp"
#include "../layers/batch_normalization.hpp"
#include "../layers/conv2d.hpp"
#include "../layers/depthwise_conv2d.hpp"
#include "../layers/merge.hpp"
#include "../layers/pooling.hpp"
#include "../layers/reshaping.hpp"

// The layer options below are designated initialisers that leave members at their defaults, which
// GCC before 14 reports under -Wextra (-Wmissing-field-initializers, GCC bug 96868): silenced here
// so that users' strict builds see no warning from this header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

namespace keras::applications {

struct MobileNetV2Options {
  Shape input_shape = {224, 224, 3};  ///< (rows, cols, 3)
  double alpha = 1.0;                 ///< width multiplier
  bool include_top = true;
  /// "" for random initialisation, or the path of a converted weights file (model.json or its
  /// folder; tools/keras_h5_to_tfjs.py converts Keras's .h5).
  std::string weights;
  std::string pooling;  ///< "", "avg" or "max" (include_top false only)
  Index classes = 1000;
  std::string classifier_activation = "softmax";
  std::string name;  ///< default: Keras's "mobilenetv2_<alpha>_<rows>"
};

namespace detail {
inline Index make_divisible(double v, Index divisor) {
  Index new_v = std::max<Index>(divisor, static_cast<Index>(v + divisor / 2.0) / divisor * divisor);
  if (new_v < 0.9 * v) new_v += divisor;
  return new_v;
}

template <class T>
KerasTensor<T> inverted_res_block(const KerasTensor<T>& inputs, Index expansion, Index stride, double alpha,
                                  Index filters, int block_id) {
  using namespace layers;
  Index in_channels = inputs.shape().back();
  Index pointwise_filters = make_divisible(static_cast<double>(static_cast<Index>(filters * alpha)), 8);
  std::string prefix = block_id ? "block_" + std::to_string(block_id) + "_" : "expanded_conv_";
  const BatchNormalizationOptions bn{.momentum = 0.999, .epsilon = 1e-3};
  auto with_name = [](BatchNormalizationOptions o, std::string n) {
    o.name = std::move(n);
    return o;
  };
  KerasTensor<T> x = inputs;
  if (block_id) {
    x = Conv2D<T>(expansion * in_channels, 1, {.padding = "same", .use_bias = false, .name = prefix + "expand"})(x);
    x = BatchNormalization<T>(with_name(bn, prefix + "expand_BN"))(x);
    x = ReLU<T>({.max_value = 6.0, .name = prefix + "expand_relu"})(x);
  }
  if (stride == 2) {
    // imagenet_utils.correct_pad(x, 3)
    Index h = x.shape()[1], w = x.shape()[2];
    Index adj_h = h < 0 ? 1 : 1 - h % 2, adj_w = w < 0 ? 1 : 1 - w % 2;
    x = ZeroPadding2D<T>(Padding2D({1 - adj_h, 1}, {1 - adj_w, 1}), {.name = prefix + "pad"})(x);
  }
  x = DepthwiseConv2D<T>(3, {.strides = {stride, stride},
                             .padding = stride == 1 ? "same" : "valid",
                             .use_bias = false,
                             .name = prefix + "depthwise"})(x);
  x = BatchNormalization<T>(with_name(bn, prefix + "depthwise_BN"))(x);
  x = ReLU<T>({.max_value = 6.0, .name = prefix + "depthwise_relu"})(x);
  x = Conv2D<T>(pointwise_filters, 1, {.padding = "same", .use_bias = false, .name = prefix + "project"})(x);
  x = BatchNormalization<T>(with_name(bn, prefix + "project_BN"))(x);
  if (in_channels == pointwise_filters && stride == 1) return Add<T>({.name = prefix + "add"})({inputs, x});
  return x;
}
}  // namespace detail

/// tf.keras.applications.MobileNetV2 as a Functional model.
template <class T = float>
std::shared_ptr<Model<T>> MobileNetV2(MobileNetV2Options o = {}) {
  using namespace layers;
  if (o.input_shape.size() != 3 || o.input_shape[2] != 3)
    throw ValueError("MobileNetV2: input_shape must be (rows, cols, 3), got " + shape_str(o.input_shape));
  if (o.input_shape[0] < 32 || o.input_shape[1] < 32)
    throw ValueError("MobileNetV2: input size must be at least 32x32, got " + shape_str(o.input_shape));
  if (o.alpha <= 0) throw ValueError("MobileNetV2: alpha must be positive");
  if (!o.pooling.empty() && o.pooling != "avg" && o.pooling != "max")
    throw ValueError("MobileNetV2: pooling must be \"\", \"avg\" or \"max\", got \"" + o.pooling + "\"");
  auto img_input = Input<T>(o.input_shape, "input_1");
  Index first = detail::make_divisible(32 * o.alpha, 8);
  const BatchNormalizationOptions bn{.momentum = 0.999, .epsilon = 1e-3};
  auto x = Conv2D<T>(first, 3, {.strides = {2, 2}, .padding = "same", .use_bias = false, .name = "Conv1"})(img_input);
  auto bn1 = bn;
  bn1.name = "bn_Conv1";
  x = BatchNormalization<T>(bn1)(x);
  x = ReLU<T>({.max_value = 6.0, .name = "Conv1_relu"})(x);
  struct B {
    Index filters, stride, expansion;
  };
  const B blocks[] = {{16, 1, 1}, {24, 2, 6},  {24, 1, 6},  {32, 2, 6},  {32, 1, 6}, {32, 1, 6},
                      {64, 2, 6}, {64, 1, 6},  {64, 1, 6},  {64, 1, 6},  {96, 1, 6}, {96, 1, 6},
                      {96, 1, 6}, {160, 2, 6}, {160, 1, 6}, {160, 1, 6}, {320, 1, 6}};
  for (int id = 0; id < 17; ++id)
    x = detail::inverted_res_block<T>(x, blocks[id].expansion, blocks[id].stride, o.alpha, blocks[id].filters, id);
  Index last = o.alpha > 1.0 ? detail::make_divisible(1280 * o.alpha, 8) : 1280;
  x = Conv2D<T>(last, 1, {.use_bias = false, .name = "Conv_1"})(x);
  auto bn2 = bn;
  bn2.name = "Conv_1_bn";
  x = BatchNormalization<T>(bn2)(x);
  x = ReLU<T>({.max_value = 6.0, .name = "out_relu"})(x);
  if (o.include_top) {
    x = GlobalAveragePooling2D<T>()(x);
    x = Dense<T>(o.classes, {.activation = o.classifier_activation, .name = "predictions"})(x);
  } else if (o.pooling == "avg") {
    x = GlobalAveragePooling2D<T>()(x);
  } else if (o.pooling == "max") {
    x = GlobalMaxPooling2D<T>()(x);
  }
  char alpha_s[16];
  std::snprintf(alpha_s, sizeof alpha_s, "%0.2f", o.alpha);
  std::string name =
      o.name.empty() ? "mobilenetv2_" + std::string(alpha_s) + "_" + std::to_string(o.input_shape[0]) : o.name;
  auto model = std::make_shared<Model<T>>(img_input, x, name);
  if (!o.weights.empty()) io::load_weights(*model, o.weights, /*allow_unused=*/false);
  return model;
}

namespace mobilenet_v2 {
/// Scales pixels from [0, 255] to [-1, 1] (x / 127.5 - 1), in place.
template <class T>
void preprocess_input_inplace(Tensor<T>& x) {
  x.array() = x.array() / static_cast<T>(127.5) - static_cast<T>(1);
}
/// Keras's preprocess_input: returns x / 127.5 - 1 (pixels [0, 255] -> [-1, 1]). (One overload
/// only: a second, in-place overload taking Tensor<T>& would be chosen for every non-const
/// argument and silently return void.)
template <class T>
[[nodiscard]] Tensor<T> preprocess_input(Tensor<T> x) {
  preprocess_input_inplace(x);
  return x;
}
}  // namespace mobilenet_v2

}  // namespace keras::applications

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
