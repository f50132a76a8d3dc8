// Helpers shared by the benchmarks that build a MobileNetV2 with random weights.
#pragma once
#include <keras/keras.hpp>

namespace {

/// Random BN statistics of sane magnitude (gamma ~ 1, beta ~ 0, mean ~ 0, variance ~ 1).
void randomise_bn(keras::Model<float>& m, keras::Random& rng) {
  for (auto& l : m.layers()) {
    auto* bn = dynamic_cast<keras::layers::BatchNormalization<float>*>(l.get());
    if (!bn) continue;
    for (keras::Index c = 0; c < bn->moving_mean().value.size(); ++c) {
      if (bn->gamma()) bn->gamma()->value[c] = static_cast<float>(rng.uniform(0.5, 1.5));
      if (bn->beta()) bn->beta()->value[c] = static_cast<float>(rng.uniform(-0.2, 0.2));
      bn->moving_mean().value[c] = static_cast<float>(rng.uniform(-0.2, 0.2));
      bn->moving_variance().value[c] = static_cast<float>(rng.uniform(0.5, 2.0));
    }
  }
}

}  // namespace
