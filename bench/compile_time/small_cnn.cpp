// tools/compile_time.sh (c): a small CNN (the one-file program of issue 13): Conv2D,
// MaxPooling2D, Flatten, Dense, compile, fit, summary.
#include <iostream>
#include <keras/keras.hpp>
using namespace keras;

int main() {
  Random rng(1);
  Tensor<float> x({32, 28, 28, 1}), y({32, 10});
  y.setZero();
  for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rng.uniform(0, 1));
  for (Index i = 0; i < 32; ++i) y[i * 10 + i % 10] = 1.0f;
  Sequential<float> model({
      layers::Conv2D(8, 3, {.activation = "relu", .input_shape = {28, 28, 1}}),
      layers::MaxPooling2D(2),
      layers::Flatten(),
      layers::Dense(10, {.activation = "softmax"}),
  });
  model.compile("adam", "categorical_crossentropy", {"accuracy"});
  model.summary();
  History h = model.fit(x, y, {.epochs = 1, .batch_size = 8, .verbose = 0});
  std::cout << "loss " << h["loss"].back() << "\n";
}
