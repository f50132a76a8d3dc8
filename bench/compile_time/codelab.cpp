// tools/compile_time.sh (b): the codelab's first model as a user writes it (docs/getting_started.md,
// program 1, on random tensors instead of the photos so that it needs keras.hpp only): Flatten ->
// Dense(500, relu) -> Dense(50, relu) -> Dense(5, softmax), adam + categorical cross-entropy,
// fit, evaluate, predict, summary.
#include <iostream>
#include <keras/keras.hpp>
using namespace keras;

int main() {
  Random rng(1);
  Tensor<float> x({64, 32, 32, 3}), y({64, 5});
  y.setZero();
  for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rng.uniform(0, 1));
  for (Index i = 0; i < 64; ++i) y[i * 5 + i % 5] = 1.0f;
  Sequential<float> model({
      layers::Flatten({.input_shape = {32, 32, 3}}),
      layers::Dense(500, {.activation = "relu"}),
      layers::Dense(50, {.activation = "relu"}),
      layers::Dense(5, {.activation = "softmax"}),
  });
  model.compile("adam", "categorical_crossentropy", {"accuracy"});
  model.summary();
  History h = model.fit(x, y, {.epochs = 2, .batch_size = 16, .verbose = 0});
  Logs logs = model.evaluate(x, y);
  Tensor<float> p = model.predict(x);
  std::cout << "loss " << h["loss"].back() << ", evaluate accuracy " << logs["accuracy"] << ", p[0] " << p[0] << "\n";
}
