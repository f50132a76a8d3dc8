// Frozen-backbone feature caching: the same seeded transfer-learning fit with cache_frozen on and
// off, timed in one process (the ratio is what counts on a shared machine), and the per-epoch
// losses compared. Usage: bench_cache [samples] [epochs]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <keras/keras.hpp>

using namespace keras;

namespace {
std::shared_ptr<Sequential<float>> make_model() {
  set_random_seed(1);
  // a MobileNet-like frozen base on 64x64 inputs, then the codelab's head
  auto in = Input<float>({64, 64, 3});
  auto x = layers::Conv2D(32, 3, {.strides = {2, 2}, .padding = "same", .use_bias = false})(in);
  x = layers::BatchNormalization()(x);
  x = layers::ReLU({.max_value = 6.0})(x);
  for (Index f : {64, 128, 256}) {
    x = layers::DepthwiseConv2D(3, {.strides = {2, 2}, .padding = "same", .use_bias = false})(x);
    x = layers::BatchNormalization()(x);
    x = layers::ReLU({.max_value = 6.0})(x);
    x = layers::Conv2D(f, 1, {.use_bias = false})(x);
    x = layers::BatchNormalization()(x);
    x = layers::ReLU({.max_value = 6.0})(x);
  }
  auto base = std::make_shared<Model<float>>(in, x, "base");
  base->set_trainable(false);
  auto m = std::make_shared<Sequential<float>>();
  m->add(layers::InputLayer({.shape = {64, 64, 3}}));
  m->add(base);
  m->add(layers::GlobalAveragePooling2D());
  m->add(layers::Dropout(0.2, {.seed = 3}));
  m->add(layers::Dense(5, {.activation = "softmax", .seed = 4}));
  m->compile("adam", "categorical_crossentropy", {"accuracy"});
  return m;
}
}  // namespace

int main(int argc, char** argv) {
  const Index n = argc > 1 ? std::atol(argv[1]) : 1024;
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 10;
  Tensor<float> x({n, 64, 64, 3}), y({n, 5});
  Random rng(7);
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1, 1));
  y.setZero();
  for (Index i = 0; i < n; ++i) y.at({i, static_cast<Index>(rng.index(5))}) = 1;
  double secs[2];
  std::vector<double> losses[2];
  for (int cached = 1; cached >= 0; --cached) {
    auto m = make_model();
    auto t0 = std::chrono::steady_clock::now();
    auto h = m->fit(x, y,
                    {.epochs = epochs,
                     .batch_size = 64,
                     .validation_split = 0.2,
                     .seed = 5,
                     .verbose = 0,
                     .cache_frozen = cached == 1});
    secs[cached] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    losses[cached] = h["loss"];
  }
  double max_rel = 0;
  for (int e = 0; e < epochs; ++e)
    max_rel = std::max(max_rel, std::abs(losses[1][e] - losses[0][e]) / std::max(1e-12, std::abs(losses[0][e])));
  std::printf("samples %lld, epochs %d, threads %d\n", static_cast<long long>(n), epochs, get_num_threads());
  std::printf("fit, cache_frozen=false: %8.2f s\n", secs[0]);
  std::printf("fit, cache_frozen=true:  %8.2f s\n", secs[1]);
  std::printf("speed-up: %.1fx; max relative difference of per-epoch losses: %.2e\n", secs[0] / secs[1], max_rel);
}
