// A user's strict build: every public header (keras/all.hpp, the layer checker, the version) with
// its templates instantiated, compiled with -Wall -Wextra -Werror by tests/consumer (through CMake
// and through pkg-config). A warning from one of our headers fails the build.
#include <keras/all.hpp>
#include <keras/testing/layer_check.hpp>
#include <keras/version.hpp>

#include <filesystem>
#include <iostream>

static_assert(KERASCPP_VERSION == KERASCPP_VERSION_MAJOR * 10000 + KERASCPP_VERSION_MINOR * 100 + KERASCPP_VERSION_PATCH);

// This file's own Keras-style options ({.activation = "softmax"}) leave members at their defaults,
// which GCC < 14 reports under -Wextra (GCC bug 96868). Silenced for this file only: the pragma
// comes after the includes, so warnings located in our headers are still reported.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

int main(int argc, char** argv) {
  using namespace keras;
  namespace fs = std::filesystem;
  const fs::path dir = argc > 1 ? argv[1] : "strict_out";
  fs::create_directories(dir);
  set_random_seed(1);

  // Transfer learning on a small MobileNetV2 (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU,
  // ZeroPadding2D, Add, pooling), frozen, with a trainable head: the feature cache, fit's callbacks.
  auto base = applications::MobileNetV2<float>({.input_shape = {32, 32, 3}, .alpha = 0.35, .include_top = false, .pooling = "avg"});
  base->set_trainable(false);
  auto in = Input<float>({32, 32, 3}, "image");
  auto x = (*base)(in);
  auto out = layers::Dense(3, {.activation = "softmax", .name = "probs"})(x);
  Model<float> model(in, out, "strict");
  model.compile(optimizers::Adam<float>({.learning_rate = 1e-2}), losses::CategoricalCrossentropy<float>(), {"accuracy"});
  Tensor<float> xs({12, 32, 32, 3}), ys({12, 3});
  Random rng(2);
  for (auto& v : xs) v = static_cast<float>(rng.uniform(-1, 1));
  for (Index i = 0; i < 12; ++i) ys[i * 3 + i % 3] = 1;
  FitOptions<float> fo;
  fo.epochs = 2;
  fo.batch_size = 4;
  fo.validation_split = 0.25;
  fo.verbose = 0;
  fo.callbacks = {std::make_shared<callbacks::EarlyStopping<float>>(callbacks::EarlyStoppingOptions{.patience = 3}),
                  std::make_shared<callbacks::CSVLogger<float>>((dir / "history.csv").string()),
                  std::make_shared<callbacks::ModelCheckpoint<float>>((dir / "checkpoint").string())};
  auto history = model.fit(xs, ys, fo);

  // Save and load (the registry instantiates every built-in layer), .npy files.
  models::save_model(model, (dir / "model").string());
  auto loaded = models::load_model<float>((dir / "model").string());
  auto p = model.predict(xs), q = loaded->predict(xs);
  io::save_npy((dir / "p.npy").string(), p);
  auto p2 = io::load_npy<float>((dir / "p.npy").string());
  float diff = 0;
  for (Index i = 0; i < p.size(); ++i) diff = std::max({diff, std::abs(p[i] - q[i]), std::abs(p[i] - p2[i])});

  // The layer checker users run on their own layers.
  layers::Dense<double> dense(4, {.activation = "tanh", .name = "d"});
  Tensor<double> dx({5, 3});
  for (auto& v : dx) v = rng.uniform(-1, 1);
  auto report = testing::check_layer(dense, {dx});

  std::cout << "kerascpp " << KERASCPP_VERSION_STRING << ": " << history["loss"].size() << " epochs, save/load difference " << diff
            << ", layer check " << (report.ok() ? "ok" : report.str()) << "\n";
  return diff < 1e-6f && report.ok() && history["loss"].size() == 2 ? 0 : 1;
}
