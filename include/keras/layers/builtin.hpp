// Every built-in layer, and the registry that knows them: layers::registry<T>() is
// Registry<T>::instance() with the built-in layers added for T on first use. Built-ins are
// registered here, lazily, rather than by a static initializer in each header: a registration
// instantiates the whole class (every virtual, every kernel), so eager float + double
// registrations made every file that includes keras.hpp compile all layers twice.
#pragma once
#include "activation.hpp"
#include "advanced_activations.hpp"
#include "batch_normalization.hpp"
#include "conv1d.hpp"
#include "conv2d.hpp"
#include "conv2d_transpose.hpp"
#include "dense.hpp"
#include "depthwise_conv2d.hpp"
#include "dropout.hpp"
#include "flatten.hpp"
#include "image_augmentation.hpp"
#include "initializers.hpp"
#include "input_layer.hpp"
#include "layer.hpp"
#include "merge.hpp"
#include "normalization.hpp"
#include "pooling.hpp"
#include "registry.hpp"
#include "resampling.hpp"
#include "separable_conv2d.hpp"
#include "reshaping.hpp"
// text and sequence layers
#include "embedding.hpp"
#include "recurrent.hpp"

namespace keras::layers {

/// The layer registry for scalar type T, with every built-in layer in it (load_model uses this).
/// A user layer registered under a built-in's name (KERAS_REGISTER_LAYER) takes precedence.
template <class T>
Registry<T>& registry() {
  static const bool once = [] {
    auto& r = Registry<T>::instance();
    auto add = [&r](const char* name, auto create) {
      if (!r.contains(name)) r.add(name, create);
    };
    add("InputLayer", [](const json& c) { return InputLayer<T>::from_config(c); });
    add("Dense", [](const json& c) { return Dense<T>::from_config(c); });
    add("Activation", [](const json& c) { return Activation<T>::from_config(c); });
    add("ReLU", [](const json& c) { return ReLU<T>::from_config(c); });
    add("Softmax", [](const json& c) { return Softmax<T>::from_config(c); });
    add("Dropout", [](const json& c) { return Dropout<T>::from_config(c); });
    add("Flatten", [](const json& c) { return Flatten<T>::from_config(c); });
    add("Reshape", [](const json& c) { return Reshape<T>::from_config(c); });
    add("ZeroPadding2D", [](const json& c) { return ZeroPadding2D<T>::from_config(c); });
    add("Rescaling", [](const json& c) { return Rescaling<T>::from_config(c); });
    add("Add", [](const json& c) { return Add<T>::from_config(c); });
    add("Concatenate", [](const json& c) { return Concatenate<T>::from_config(c); });
    add("Conv2D", [](const json& c) { return Conv2D<T>::from_config(c); });
    add("DepthwiseConv2D", [](const json& c) { return DepthwiseConv2D<T>::from_config(c); });
    add("BatchNormalization", [](const json& c) { return BatchNormalization<T>::from_config(c); });
    add("MaxPooling2D", [](const json& c) { return MaxPooling2D<T>::from_config(c); });
    add("AveragePooling2D", [](const json& c) { return AveragePooling2D<T>::from_config(c); });
    add("GlobalAveragePooling2D", [](const json& c) { return GlobalAveragePooling2D<T>::from_config(c); });
    add("GlobalMaxPooling2D", [](const json& c) { return GlobalMaxPooling2D<T>::from_config(c); });
    add("RandomFlip", [](const json& c) { return RandomFlip<T>::from_config(c); });
    add("RandomRotation", [](const json& c) { return RandomRotation<T>::from_config(c); });
    add("RandomZoom", [](const json& c) { return RandomZoom<T>::from_config(c); });
    add("RandomTranslation", [](const json& c) { return RandomTranslation<T>::from_config(c); });
    // issue 17: activations, merges, resampling and normalization layers
    add("LeakyReLU", [](const json& c) { return LeakyReLU<T>::from_config(c); });
    add("PReLU", [](const json& c) { return PReLU<T>::from_config(c); });
    add("ELU", [](const json& c) { return ELU<T>::from_config(c); });
    add("Multiply", [](const json& c) { return Multiply<T>::from_config(c); });
    add("Subtract", [](const json& c) { return Subtract<T>::from_config(c); });
    add("Average", [](const json& c) { return Average<T>::from_config(c); });
    add("Maximum", [](const json& c) { return Maximum<T>::from_config(c); });
    add("Minimum", [](const json& c) { return Minimum<T>::from_config(c); });
    add("UpSampling2D", [](const json& c) { return UpSampling2D<T>::from_config(c); });
    add("Cropping2D", [](const json& c) { return Cropping2D<T>::from_config(c); });
    add("Resizing", [](const json& c) { return Resizing<T>::from_config(c); });
    add("Normalization", [](const json& c) { return Normalization<T>::from_config(c); });
    add("LayerNormalization", [](const json& c) { return LayerNormalization<T>::from_config(c); });
    add("SeparableConv2D", [](const json& c) { return SeparableConv2D<T>::from_config(c); });
    add("Conv2DTranspose", [](const json& c) { return Conv2DTranspose<T>::from_config(c); });
    add("Conv1D", [](const json& c) { return Conv1D<T>::from_config(c); });
    add("MaxPooling1D", [](const json& c) { return MaxPooling1D<T>::from_config(c); });
    add("AveragePooling1D", [](const json& c) { return AveragePooling1D<T>::from_config(c); });
    add("GlobalAveragePooling1D", [](const json& c) { return GlobalAveragePooling1D<T>::from_config(c); });
    add("GlobalMaxPooling1D", [](const json& c) { return GlobalMaxPooling1D<T>::from_config(c); });
    // text and sequence layers
    add("Embedding", [](const json& c) { return Embedding<T>::from_config(c); });
    add("SimpleRNN", [](const json& c) { return SimpleRNN<T>::from_config(c); });
    add("GRU", [](const json& c) { return GRU<T>::from_config(c); });
    add("LSTM", [](const json& c) { return LSTM<T>::from_config(c); });
    return true;
  }();
  (void)once;
  return Registry<T>::instance();
}

}  // namespace keras::layers
