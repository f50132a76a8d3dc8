// Trains a tiny model through the public API: proves the package's include dirs and flags work.
#include <iostream>
#include <keras/keras.hpp>

// Keras-style options ({.epochs = 200}) leave members at their defaults, which GCC < 14 reports
// under -Wextra (-Wmissing-field-initializers, GCC bug 96868). Silenced for this file only, after
// the includes: warnings located in kerascpp's headers are still reported (and fail -Werror).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

int main() {
  keras::Tensor<float> x({64, 2}), y({64, 1});
  for (keras::Index i = 0; i < 64; ++i) {
    x[2 * i] = static_cast<float>(i % 8) / 8.0f;
    x[2 * i + 1] = static_cast<float>(i / 8) / 8.0f;
    y[i] = x[2 * i] + 2 * x[2 * i + 1];
  }
  keras::Sequential<float> model;
  model.add(keras::layers::InputLayer({.shape = {2}}));
  model.add(keras::layers::Dense(1));
  model.compile(keras::optimizers::Adam<float>({.learning_rate = 0.05}), keras::losses::MeanSquaredError<float>());
  auto h = model.fit(x, y, {.epochs = 200, .batch_size = 16, .verbose = 0});
  std::cout << "loss " << h["loss"].front() << " -> " << h["loss"].back() << "\n";
  return h["loss"].back() < 0.01 ? 0 : 1;
}
