// A user's strict build: every public header (keras/all.hpp, the layer checker, the version) with
// its templates instantiated, compiled with -Wall -Wextra -Werror by tests/consumer (through CMake
// and through pkg-config). A warning from one of our headers fails the build.
#include <keras/all.hpp>
#include <keras/testing/layer_check.hpp>
#include <keras/version.hpp>

#include <filesystem>
#include <iostream>

static_assert(KERASCPP_VERSION ==
              KERASCPP_VERSION_MAJOR * 10000 + KERASCPP_VERSION_MINOR * 100 + KERASCPP_VERSION_PATCH);

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
  auto base = applications::MobileNetV2<float>(
      {.input_shape = {32, 32, 3}, .alpha = 0.35, .include_top = false, .pooling = "avg"});
  base->set_trainable(false);
  auto in = Input<float>({32, 32, 3}, "image");
  auto x = (*base)(in);
  auto out = layers::Dense(3, {.activation = "softmax", .name = "probs"})(x);
  Model<float> model(in, out, "strict");
  model.compile(optimizers::Adam<float>({.learning_rate = 1e-2}), losses::CategoricalCrossentropy<float>(),
                {"accuracy"});
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

  // Keras's training habits (their templates instantiated under -Werror): a learning-rate schedule,
  // the confusion metrics, class / sample weights, checkpoint formats, weights-only saves, a
  // compiled reload, evaluate / predict with options, several inputs and outputs.
  Sequential<float> small("habits");
  small.add(layers::InputLayer({.shape = {4}}));
  small.add(layers::Dense(3, {.activation = "softmax", .name = "p"}));
  small.compile(optimizers::SGD<float>(
                    {.learning_rate = optimizers::schedules::CosineDecay(
                         0.1, 10, {.alpha = 0.1, .name = "CosineDecay", .warmup_target = 0.2, .warmup_steps = 2})}),
                "categorical_crossentropy", {"precision", "recall", "auc", "top_k_categorical_accuracy", "accuracy"});
  Tensor<float> hx({6, 4}), hy({6, 3}, 0.f);
  for (auto& v : hx) v = static_cast<float>(rng.uniform(-1, 1));
  for (Index i = 0; i < 6; ++i) hy[i * 3 + i % 3] = 1;
  FitOptions<float> ho;
  ho.epochs = 2;
  ho.batch_size = 3;
  ho.verbose = 0;
  ho.class_weight = {{0, 2.0}};
  ho.callbacks = {std::make_shared<callbacks::ModelCheckpoint<float>>(
      (dir / "ck-{epoch:02d}-{loss:.3f}").string(),
      callbacks::ModelCheckpointOptions{.monitor = "loss",
                                        .verbose = 0,
                                        .save_best_only = true,
                                        .save_weights_only = true,
                                        .mode = "min",
                                        .initial_value_threshold = std::nullopt})};
  small.fit(hx, hy, ho);
  ho.class_weight.clear();
  ho.sample_weight = Tensor<float>({6}, 1.f);
  ho.validation_split = 0.5;
  small.fit(hx, hy, ho);
  models::save_weights(small, (dir / "habits_weights").string());
  models::load_weights(small, (dir / "habits_weights").string());
  models::save_model(small, (dir / "habits").string());
  auto habits = models::load_model<float>((dir / "habits").string());
  const Logs hl = habits->evaluate(
      hx, hy,
      EvaluateOptions<float>{.batch_size = 2, .verbose = 0, .sample_weight = ho.sample_weight, .callbacks = {}});
  const Tensor<float> hp = habits->predict(hx, PredictOptions<float>{.batch_size = 2, .verbose = 0, .callbacks = {}});
  optimizers::SGD<float> steps({.learning_rate = optimizers::schedules::PiecewiseConstantDecay({5}, {0.1, 0.01}),
                                .momentum = 0.0,
                                .nesterov = false,
                                .weight_decay = 0.0,
                                .clipnorm = 0.0,
                                .clipvalue = 0.0,
                                .global_clipnorm = 0.0});
  optimizers::SGD<float> decay({.learning_rate = optimizers::schedules::ExponentialDecay(
                                    0.1, 5, 0.5, {.staircase = true, .name = "ExponentialDecay"}),
                                .momentum = 0.0,
                                .nesterov = false,
                                .weight_decay = 0.0,
                                .clipnorm = 0.0,
                                .clipvalue = 0.0,
                                .global_clipnorm = 0.0});
  auto i1 = Input<float>({4}, "i1"), i2 = Input<float>({2}, "i2");
  auto joined = layers::Concatenate()({i1, i2});
  Model<float> two_heads({i1, i2}, {layers::Dense(1, {.name = "h1"})(joined), layers::Dense(2, {.name = "h2"})(joined)},
                         "two_heads");
  two_heads.compile("adam", "mse", {"mse"});
  Tensor<float> h2x({6, 2}, 0.5f), h2y({6, 2}, 0.25f), h1y({6, 1}, 1.f);
  FitOptions<float> mo;
  mo.epochs = 1;
  mo.verbose = 0;
  two_heads.fit(std::vector<Tensor<float>>{hx, h2x}, std::vector<Tensor<float>>{h1y, h2y}, mo);
  const auto heads = two_heads.predict(std::vector<Tensor<float>>{hx, h2x});
  const bool habits_ok =
      hl.count("auc") == 1 && hp.dim(0) == 6 && heads.size() == 2 &&
      steps.learning_rate() > decay.learning_rate() * 0.5 &&
      two_heads.evaluate(std::vector<Tensor<float>>{hx, h2x}, std::vector<Tensor<float>>{h1y, h2y}).count("h2_mse") ==
          1;

  std::cout << "kerascpp " << KERASCPP_VERSION_STRING << ": " << history["loss"].size()
            << " epochs, save/load difference " << diff << ", layer check " << (report.ok() ? "ok" : report.str())
            << "\n";
  return diff < 1e-6f && report.ok() && history["loss"].size() == 2 && habits_ok ? 0 : 1;
}
