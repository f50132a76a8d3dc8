// MobileNetV2's top blocks (block_13 ... out_relu + GlobalAveragePooling2D + Dense(5, softmax)),
// the sub-network the flowers fine-tuning trains: shared by bench_top_blocks and
// bench_distributed.
#pragma once
#include <keras/applications/mobilenet_v2.hpp>
#include <keras/keras.hpp>

#include <memory>

namespace bench {

using keras::Index;

struct TopBlocks {
  std::shared_ptr<keras::Model<float>> backbone;  ///< block_13 input -> out_relu (weights load into it)
  std::shared_ptr<keras::Model<float>> model;     ///< the same layers + GAP + Dense(5, softmax)
};

/// The graph of applications::MobileNetV2 from block_13 on, with Keras's layer names.
inline TopBlocks make_top_blocks(Index hw) {
  using namespace keras::layers;
  namespace app = keras::applications::detail;
  auto in = keras::Input<float>({hw, hw, 96}, "block_12_add");
  auto x = app::inverted_res_block<float>(in, 6, 2, 1.0, 160, 13);
  x = app::inverted_res_block<float>(x, 6, 1, 1.0, 160, 14);
  x = app::inverted_res_block<float>(x, 6, 1, 1.0, 160, 15);
  x = app::inverted_res_block<float>(x, 6, 1, 1.0, 320, 16);
  x = Conv2D<float>(1280, 1, {.use_bias = false, .name = "Conv_1"})(x);
  x = BatchNormalization<float>({.momentum = 0.999, .epsilon = 1e-3, .name = "Conv_1_bn"})(x);
  x = ReLU<float>({.max_value = 6.0, .name = "out_relu"})(x);
  TopBlocks t;
  t.backbone = std::make_shared<keras::Model<float>>(in, x, "top_blocks");
  auto p = GlobalAveragePooling2D<float>()(x);
  auto out = Dense<float>(5, {.activation = "softmax", .name = "head"})(p);
  t.model = std::make_shared<keras::Model<float>>(in, out, "top_blocks_head");
  return t;
}

inline void randomise_bn(keras::Model<float>& m, keras::Random& rng) {
  for (auto& l : m.layers())
    if (auto* bn = dynamic_cast<keras::layers::BatchNormalization<float>*>(l.get()))
      for (Index c = 0; c < bn->moving_mean().value.size(); ++c) {
        bn->gamma()->value[c] = static_cast<float>(rng.uniform(0.5, 1.5));
        bn->beta()->value[c] = static_cast<float>(rng.uniform(-0.2, 0.2));
        bn->moving_mean().value[c] = static_cast<float>(rng.uniform(-0.2, 0.2));
        bn->moving_variance().value[c] = static_cast<float>(rng.uniform(0.5, 2.0));
      }
}

}  // namespace bench
